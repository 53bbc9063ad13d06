"""Do explanations point at the right body part? Two validation metrics for the model card.

`explain` shows, for every query word, its best patch (token -> argmax patch of the MaxSim). On a take where one
hand waves or rises, the side and limb words ("left", "hand", "arm", "waves", "raises"...) should land on that
side's arm (shoulder or elbow column); on a walk or run, locomotion verbs ("walks", "runs", "jogs"...) should
land on a leg part (hip, knee or ankle). Chance is 2/14 and 6/14 of the columns.

A word split into word pieces is judged by its first piece. Words the model's skiplist removes never appear
(they have no patch), so they cannot count either way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

ARM_WORDS = frozenset("""left right hand hands arm arms palm wave waves waving waved raise raises raising raised
lift lifts lifting lifted""".split())
LOCOMOTION_WORDS = frozenset("""walk walks walking walked run runs running ran jog jogs jogging jogged step steps
stepping stepped stride strides striding strode stroll strolls strolling strolled sprint sprints sprinting
sprinted march marches marching amble ambles ambling pace paces pacing shuffle shuffles shuffling trot trots
trotting hike hikes hiking""".split())
ARM_PARTS = {"left": ("l_shoulder", "l_elbow"), "right": ("r_shoulder", "r_elbow")}
LEG_PARTS = ("r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle")
CHANCE = {"arm_side": 2 / 14, "locomotion_leg": 6 / 14}


@dataclass(frozen=True)
class Probe:
    """One caption against one motion window, and what its words should localise to.

    kind: "arm_side" (side = "left"/"right": the take moves that hand) or "locomotion_leg".
    """

    caption: str
    patches: np.ndarray  # (P, D)
    valid: np.ndarray  # (P,) bool
    kind: str
    side: str | None = None
    source: str = ""


def whole_words(words: Sequence[str]) -> list[tuple[int, str]]:
    """Word pieces -> (index of the first piece, whole word): ["jog", "##s"] -> [(0, "jogs")]."""
    out: list[tuple[int, str]] = []
    for index, piece in enumerate(words):
        if piece.startswith("##") and out:
            first, word = out[-1]
            out[-1] = (first, word + piece[2:])
        else:
            out.append((index, piece))
    return out


def judge(tokens: np.ndarray, words: Sequence[str], probe: Probe, part_names: Sequence[str]) -> list[dict]:
    """Per counted word of the caption: its best patch's part and whether that part is a correct one."""
    if probe.kind == "arm_side":
        vocabulary, correct = ARM_WORDS, set(ARM_PARTS[probe.side])
    elif probe.kind == "locomotion_leg":
        vocabulary, correct = LOCOMOTION_WORDS, set(LEG_PARTS)
    else:
        raise ValueError(f"unknown probe kind {probe.kind!r}")
    cols = len(part_names)
    sims = tokens @ probe.patches.T
    sims[:, ~probe.valid] = -np.inf
    out = []
    for index, word in whole_words(words):
        if word not in vocabulary:
            continue
        part = part_names[int(np.argmax(sims[index])) % cols]
        out.append({"word": word, "part": part, "hit": part in correct})
    return out


def localisation(encoder, probes: Sequence[Probe]) -> dict:
    """Fraction of counted words on a correct part, per probe kind and per (kind, source), with word counts."""
    encoded = encoder.encode_texts([probe.caption for probe in probes])
    tally: dict[str, list[bool]] = {}
    misses: dict[str, dict[str, int]] = {}
    for probe, (tokens, words) in zip(probes, encoded):
        for verdict in judge(tokens, words, probe, encoder.part_names):
            for key in (probe.kind, f"{probe.kind}/{probe.source}" if probe.source else None):
                if key:
                    tally.setdefault(key, []).append(verdict["hit"])
            if not verdict["hit"]:
                parts = misses.setdefault(probe.kind, {})
                parts[verdict["part"]] = parts.get(verdict["part"], 0) + 1
    out = {key: {"fraction": float(np.mean(hits)), "words": len(hits)} for key, hits in sorted(tally.items())}
    for kind, chance in CHANCE.items():
        if kind in out:
            out[kind]["chance"] = chance
            out[kind]["misses_by_part"] = dict(sorted(misses.get(kind, {}).items(), key=lambda kv: -kv[1]))
    return out
