"""Agreement of the describer with labelled data: `python -m mofind.describe.report [--json] [--part tune|report|all]`.

Bandai dev takes (labels in the file names): the named hand on one-hand wave/raise takes, the turn
direction on walk-turn takes, run vs walk. Thresholds were tuned on the first half of each
content x style group (by take number, `part="tune"`); the numbers to quote come from the other half
(`part="report"`). cmu-captioned takes (never tuned on): whether a 10 s window of the take mentions what
the CMU description names, and whether the clause kinds match words of the HumanML3D captions.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections import defaultdict

import numpy as np

from .describer import Description, describe_motion

FPS = 20.0
WINDOW_S, STRIDE_S = 10.0, 5.0
ONE_HAND = re.compile(r"^(wave|raise-up)-(left|right)-hand$")
BOTH_HANDS = re.compile(r"^(wave|raise-up)-both-hands$")
ARM_KINDS = ("raise_arm", "wave")
GAIT_KINDS = ("walk", "jog", "run")
# words of a CMU description / HumanML3D caption -> clause kinds that agree with them
KEYWORDS: dict[str, tuple[str, ...]] = {
    "walk": ("walk",), "run": ("run", "jog"), "jog": ("jog", "run"), "jump": ("jump",), "kick": ("kick",),
    "sit": ("sit",), "squat": ("squat",), "wave": ("wave",), "turn": ("turn", "spin"), "spin": ("spin", "turn"),
    "punch": ("punch",), "step": ("step", "walk"), "raise": ("raise_arm",), "lie": ("lie",), "crouch": ("squat",),
    "bend": ("bend",), "reach": ("reach",), "martial": ("punch", "kick"),
}
# a word and its inflections ("waves", "waving", "ran", "sat", "lying")
_WORD = {key: re.compile(rf"\b({key}\w*)\b") for key in KEYWORDS}
_WORD.update({"wave": re.compile(r"\bwav(e|es|ed|ing)\b"), "run": re.compile(r"\b(run|runs|running|ran)\b"),
              "sit": re.compile(r"\b(sit|sits|sitting|sat|seated)\b"), "lie": re.compile(r"\b(lie|lies|lying|lay)\b"),
              "spin": re.compile(r"\b(spin|spins|spinning|spun|twirl\w*)\b"),
              "raise": re.compile(r"\b(rais(e|es|ed|ing)|lift(s|ed|ing)?)\b"),
              "step": re.compile(r"\b(step|steps|stepped|stepping)\b"),
              "crouch": re.compile(r"\bcrouch\w*\b")})


def bandai_split(names: list[str]) -> dict[str, str]:
    """take name -> "tune" (first half of its content x style group by take number) or "report"."""
    groups: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name in sorted(names):
        _, content, style, _ = name.split("_")
        groups[(content, style)].append(name)
    part = {}
    for members in groups.values():
        for i, name in enumerate(members):
            part[name] = "tune" if i < len(members) // 2 else "report"
    return part


def score_bandai(name: str, d: Description) -> dict[str, bool]:
    """Checks that apply to this take (by its content label) -> passed."""
    content = name.split("_")[1]
    out = {}
    arm_sides = {_side(p) for p in d.phrases if p.kind in ARM_KINDS}
    one = ONE_HAND.match(content)
    if one:
        out["hand"] = arm_sides == {one.group(2)}
    if BOTH_HANDS.match(content):
        out["both_hands"] = arm_sides == {"both"} or arm_sides == {"left", "right"}
    if content.startswith("walk-turn-"):
        turns = {p.text.split()[-1] for p in d.phrases if p.kind in ("turn", "spin")}
        turns = {t for t in turns if t in ("left", "right")}
        out["turn"] = turns == {content.rsplit("-", 1)[1]}
    if content in ("walk", "run"):
        gaits = [p for p in d.phrases if p.kind in GAIT_KINDS]
        if gaits:
            longest = max(gaits, key=lambda p: p.end_s - p.start_s).kind
            out["run_vs_walk"] = ("walk" if longest == "walk" else "run") == content
        else:
            out["run_vs_walk"] = False
    return out


def _side(p) -> str:
    left, right = any(x.startswith("l_") for x in p.parts), any(x.startswith("r_") for x in p.parts)
    return "both" if left and right else "left" if left else "right"


def bandai_report(part: str = "report") -> dict:
    from mofind.io import load_motion
    from mofind.train.bandai import ensure_extracted

    files = sorted(ensure_extracted().glob("*.bvh"))
    split = bandai_split([f.stem for f in files])
    tallies: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    by_style: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    failures: dict[str, list[str]] = defaultdict(list)
    for f in files:
        if part != "all" and split[f.stem] != part:
            continue
        d = describe_motion(load_motion(f, fps=FPS).joints, FPS)
        for check, ok in score_bandai(f.stem, d).items():
            tallies[check][0] += ok
            tallies[check][1] += 1
            by_style[f"{check}/{f.stem.split('_')[2]}"][0] += ok
            by_style[f"{check}/{f.stem.split('_')[2]}"][1] += 1
            if not ok and len(failures[check]) < 5:
                failures[check].append(f"{f.stem}: {d.sentence}")
    return {"part": part, "checks": {k: _rate(v) for k, v in sorted(tallies.items())},
            "by_style": {k: _rate(v) for k, v in sorted(by_style.items())}, "examples_of_failures": dict(failures)}


def mentions(text: str, key: str) -> bool:
    return bool(_WORD[key].search(text.lower()))


def windows(joints: np.ndarray, fps: float = FPS) -> list[tuple[float, Description]]:
    """Descriptions of 10 s windows every 5 s (the way training sees takes); (start_s, description)."""
    size, stride = int(WINDOW_S * fps), int(STRIDE_S * fps)
    starts = range(0, max(len(joints) - size, 0) + 1, stride)
    return [(s / fps, describe_motion(joints[s:s + size], fps)) for s in starts]


def cmu_report() -> dict:
    from mofind.train.cmu import load_takes

    per_key: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    per_category: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    captions: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    sentences: dict[str, str] = {}
    for take in load_takes():
        joints = take.load(fps=FPS).joints
        descs = windows(joints)
        kinds = {p.kind for _, d in descs for p in d.phrases}
        sentences[take.take_id] = descs[0][1].sentence
        label = f"{take.description} / {take.category}"
        keys = [key for key in KEYWORDS if mentions(label, key)]
        if "dance" in label.lower():
            keys.append("dance")
        for key in keys:
            ok = key != "dance" and bool(kinds & set(KEYWORDS[key]))
            per_key[key][0] += ok
            per_key[key][1] += 1
            per_category[f"{take.category}: {key}"][0] += ok
            per_category[f"{take.category}: {key}"][1] += 1
        for seg in take.segments:
            a, b = int(seg.start_s * FPS), int(np.ceil(seg.end_s * FPS))
            if b - a < 4:
                continue
            seg_kinds = {p.kind for p in describe_motion(joints[a:b], FPS).phrases}
            for key in KEYWORDS:
                if any(mentions(t, key) for t in seg.texts):
                    captions[key][0] += bool(seg_kinds & set(KEYWORDS[key]))
                    captions[key][1] += 1
    return {"cmu_label_recall": {k: _rate(v) for k, v in sorted(per_key.items())},
            "cmu_by_category": {k: _rate(v) for k, v in sorted(per_category.items())},
            "humanml3d_caption_recall": {k: _rate(v) for k, v in sorted(captions.items())},
            "first_window_sentences": sentences}


def _rate(v: list[int]) -> dict:
    return {"agree": v[0], "of": v[1], "rate": round(v[0] / v[1], 4) if v[1] else None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mofind.describe.report", description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=("tune", "report", "all"), default="report",
                        help="Bandai takes to score (default: the half not used for tuning)")
    parser.add_argument("--skip-cmu", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    try:
        result = {"bandai": bandai_report(args.part)}
        if not args.skip_cmu:
            result["cmu"] = cmu_report()
    except FileNotFoundError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result, indent=1))
        return 0
    for section, body in result.items():
        for table, rows in body.items():
            if table in ("part",):
                print(f"[{section}] part: {rows}")
                continue
            print(f"[{section}] {table}")
            for key, value in rows.items():
                if isinstance(value, dict) and "rate" in value:
                    rate = "n/a" if value["rate"] is None else f"{100 * value['rate']:.1f}%"
                    print(f"  {key:40s} {value['agree']:4d}/{value['of']:<4d} {rate}")
                elif isinstance(value, list):
                    for line in value:
                        print(f"  {key}: {line}")
                else:
                    print(f"  {key}: {value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
