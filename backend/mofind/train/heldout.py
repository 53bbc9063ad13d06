"""Held-out numbers beyond the Bandai protocols: open-vocabulary retrieval on CMU takes and localisation probes.

- `cmu_retrieval`: text->motion R@1/5/10 with the HumanML3D captions of the held-out cmu-captioned takes
  (`corpus.cmu_split`): every caption ranks the held-out captioned segments (and, in the harder variant, the
  Bandai validation takes as distractors too); a segment scores as search scores a take, by its best
  half-overlapping window. Chance is k / gallery size.
- `bandai_probes` / `cmu_probes`: the captions and windows `mofind.eval.localisation` judges.
"""

from __future__ import annotations

import numpy as np

from mofind.eval.localisation import Probe

ONE_HAND = {"wave-left-hand": "left", "raise-up-left-hand": "left", "wave-right-hand": "right",
            "raise-up-right-hand": "right"}
LOCOMOTION_CONTENTS = ("walk", "run", "walk-turn-left", "walk-turn-right")
LOCOMOTION_CATEGORIES = ("walk", "run")


def windows(joints: np.ndarray, size: int) -> list[np.ndarray]:
    """Half-overlapping windows of a take, as the index cuts them."""
    step = size // 2
    return [joints[s:s + size] for s in range(0, max(1, len(joints) - size + step), step)]


def encode_segment(encoder, joints: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    encoded = encoder.encode_motions(windows(joints, encoder.window_frames))
    return np.stack([p for p, _ in encoded]), np.stack([v for _, v in encoded])


def segment_scores(encoder, tokens: list[np.ndarray], gallery: list[tuple[np.ndarray, np.ndarray]]) -> np.ndarray:
    """(queries, gallery items) MaxSim, each item scored by its best window."""
    from mofind.eval.protocols import pad_tokens
    from mofind.model.maxsim import maxsim

    text, mask = pad_tokens(tokens, encoder.dim)
    out = np.zeros((len(tokens), len(gallery)))
    for j, (patches, valid) in enumerate(gallery):
        scores = maxsim(text, mask, patches, valid if encoder.uses_patch_mask else None)
        out[:, j] = scores.max(1)
    return out


def recall(scores: np.ndarray, truth: list[int], ks=(1, 5, 10)) -> dict:
    """R@k (%) of each query's true item (pessimistic ties), MedR, and the chance level of each R@k."""
    ranks = np.array([int((row > row[t]).sum() + (row == row[t]).sum()) for row, t in zip(scores, truth)])
    n = scores.shape[1]
    out = {f"t2m_r{k}": 100 * float(np.mean(ranks <= k)) for k in ks}
    out.update({f"chance_r{k}": 100 * min(1.0, k / n) for k in ks})
    out.update({"t2m_medr": float(np.median(ranks)), "queries": len(truth), "gallery": n})
    return out


def cmu_segments(takes, fps: float = 20.0):
    """(take, segment, joints) of every HumanML3D segment of the given takes that loads."""
    out = []
    for take in takes:
        if not take.segments:
            continue
        try:
            joints = np.asarray(take.load(fps).joints, np.float32)
        except ValueError:
            continue
        for segment in take.segments:
            start, end = int(round(segment.start_s * fps)), int(round(segment.end_s * fps))
            if end - start >= 16:
                out.append((take, segment, joints[start:end]))
    return out


def cmu_retrieval(encoder, takes, distractors: list[tuple[np.ndarray, np.ndarray]] = ()) -> dict:
    """Open-vocabulary text->motion on held-out CMU segments; with `distractors` (encoded motions) added to the
    gallery as a second variant."""
    segments = cmu_segments(takes, encoder.fps)
    gallery = [encode_segment(encoder, joints) for _, _, joints in segments]
    queries, truth, ids = [], [], []
    for index, (take, segment, _) in enumerate(segments):
        for text in segment.texts:
            queries.append(text)
            truth.append(index)
        ids.append(f"{take.take_id}@{segment.start_s:g}-{segment.end_s:g}s")
    tokens = [t for t, _ in encoder.encode_texts(queries)]
    out = {"segments": ids, "captioned_takes": sorted({take.take_id for take, _, _ in segments}),
           "cmu_only": recall(segment_scores(encoder, tokens, gallery), truth)}
    if distractors:
        out["with_bandai_distractors"] = recall(segment_scores(encoder, tokens, gallery + list(distractors)), truth)
    return out


def bandai_probes(embedded, labels: list[dict], captions: list[str], free_form) -> list[Probe]:
    """One-hand and walk/run validation takes against their own caption and the free-form queries of their
    content (`free_form`: (query, content) pairs)."""
    by_content: dict[str, list[str]] = {}
    for query, content in free_form:
        by_content.setdefault(content, []).append(query)
    probes = []
    for i, label in enumerate(labels):
        content = label.get("content")
        if content in ONE_HAND:
            kind, side = "arm_side", ONE_HAND[content]
        elif content in LOCOMOTION_CONTENTS:
            kind, side = "locomotion_leg", None
        else:
            continue
        patches, valid = embedded.patches[i], embedded.patch_valid[i]
        probes.append(Probe(captions[i], patches, valid, kind, side, "bandai template caption"))
        probes.extend(Probe(q, patches, valid, kind, side, "bandai free-form") for q in by_content.get(content, ()))
    return probes


def cmu_probes(encoder, takes) -> list[Probe]:
    """Held-out CMU walk/run segments against their HumanML3D captions (locomotion verbs -> legs); each caption
    probes the segment's best window for it."""
    probes = []
    for take, segment, joints in cmu_segments([t for t in takes if t.category in LOCOMOTION_CATEGORIES],
                                              encoder.fps):
        patches, valid = encode_segment(encoder, joints)
        for text, (tokens, _) in zip(segment.texts, encoder.encode_texts(list(segment.texts))):
            best = int(np.argmax([(tokens @ p[v].T).max(1).mean() for p, v in zip(patches, valid)]))
            probes.append(Probe(text, patches[best], valid[best], "locomotion_leg", None,
                                "cmu humanml3d caption"))
    return probes
