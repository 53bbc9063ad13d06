"""What relaxed prompts (quality/relax.py) do to answers, measured on real takes with the shipped model.

    python -m bench.eval_relax [--out bench/results/relax.md]

Seven libraries, one per Bandai style, each of the Bandai validation takes of that style only (`mofind.train`
split, held-out takes included: the model never trained on them). Prompts: a person of *another* style doing
one of the ten actions, written for this check in words that are not the caption templates' ("a sleepy lady
waves hello with the left hand"), so no take shows the whole prompt. Each prompt is searched through the real
`Backend.search` handler with `relax` false and true; a search is right when its first take has the prompt's
action. Reported per library and in all: right without and with relaxation, prompts flagged, relaxed, fixed
(wrong -> right) and broken (right -> wrong), at names_weight 0 (motion only: a library of anonymous takes)
and at the default.

Then free-form text: the HumanML3D captions of the held-out captioned CMU takes (`corpus.cmu_split`), each against
a library of all 82 CMU takes of ../shared/data/cmu-captioned; a search finds its take at rank 1 or in the
first 5, motion only, without and with relaxation.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from mofind.index.text_match import DEFAULT_NAMES_WEIGHT

SUBJECTS = {"elderly": ("an old lady", "a weary old woman"), "exhausted": ("a tired guy", "a sleepy lady"),
            "youthful": ("a little kid", "a young lady"), "masculine": ("a strong guy", "a burly guy"),
            "feminine": ("an elegant lady", "a graceful girl"), "active": ("an energetic guy", "a sporty lady")}
ACTIONS = {"wave-both-hands": "waves with both arms over the head", "wave-left-hand": "waves hello with the left hand",
           "wave-right-hand": "waves the right hand at a friend", "raise-up-both-hands": "lifts both arms up high",
           "raise-up-left-hand": "lifts the left arm straight up",
           "raise-up-right-hand": "puts the right arm up in the air", "run": "jogs forward",
           "walk": "walks straight ahead", "walk-turn-left": "walks and turns to the left",
           "walk-turn-right": "walks forward then turns right"}
STYLES = ("active", "normal", "feminine", "youthful", "exhausted", "masculine", "elderly")


def style_libraries(work: Path, encoder) -> dict[str, Path]:
    """Style -> an index of the validation takes of that style."""
    from mofind.index.build import build_index
    from mofind.train.bandai import HELD_OUT, TEMPLATES, ensure_extracted
    from mofind.train.captions import CaptionTemplates
    from mofind.train.data import labelled_folder_segments, split_by_take

    segments, _ = labelled_folder_segments(ensure_extracted(), CaptionTemplates.load(TEMPLATES))
    _, validation = split_by_take(segments, held_out=HELD_OUT)
    indexes = {}
    for style in STYLES:
        folder = work / style
        folder.mkdir(parents=True)
        for segment in validation:
            if segment.label_dict["style"] == style:
                shutil.copy(segment.path, folder / segment.path.name)
        build_index([folder], work / f"{style}-index", encoder, workers=0)
        indexes[style] = work / f"{style}-index"
    return indexes


def evaluate(backend, style: str, names_weight: float) -> Counter:
    counts = Counter()
    for other, subjects in SUBJECTS.items():
        if other == style:
            continue
        for subject in subjects:
            for action, phrase in ACTIONS.items():
                replies = {relax: backend.search({"query": f"{subject} {phrase}", "k": 5, "thumbnails": False,
                                                   "names_weight": names_weight, "relax": relax})[0]
                           for relax in (False, True)}
                plain, relaxed = (replies[r]["results"][0]["labels"][0] == action for r in (False, True))
                counts.update(prompts=1, right=plain, right_relaxed=relaxed,
                              flagged=replies[False]["quality"]["no_good_match"])
                if replies[True]["quality"]["relaxed"] is not None:
                    counts.update(relaxed=1, fixed=relaxed and not plain, broken=plain and not relaxed)
    return counts


def cmu_rows(work: Path, encoder) -> str:
    """R@1 / R@5 of held-out CMU captions, without and with relaxed prompts (names_weight 0)."""
    from mofind.index.build import build_index
    from mofind.paths import model_dir
    from mofind.server.handlers import Backend
    from mofind.train import cmu
    from mofind.train.corpus import cmu_split

    takes = cmu.load_takes()
    _, validation = cmu_split(takes)
    build_index([take.bvh for take in takes], work / "cmu-index", encoder, workers=0)
    backend = Backend(work / "cmu-index", encoder, model_dir=model_dir())
    counts = Counter()
    try:
        for take in validation:
            for text in (text for segment in take.segments for text in segment.texts):
                for relax in (False, True):
                    reply = backend.search({"query": text, "k": 5, "thumbnails": False, "names_weight": 0.0,
                                            "relax": relax})[0]
                    found = [Path(hit["source"]).stem for hit in reply["results"]]
                    counts.update({f"r1_{relax}": found[:1] == [take.take_id], f"r5_{relax}": take.take_id in found})
                    if relax:
                        counts.update(captions=1, relaxed=reply["quality"]["relaxed"] is not None)
                    else:
                        counts.update(flagged=reply["quality"]["no_good_match"])
    finally:
        backend.stop()
    return ("\n| captions | takes | R@1 | R@1 relaxed | R@5 | R@5 relaxed | flagged | relaxed |\n|---|---|---|---|---|---|---|---|\n"
            f"| {counts['captions']} | {sum(1 for t in validation if t.segments)} | {counts['r1_False']} | "
            f"{counts['r1_True']} | {counts['r5_False']} | {counts['r5_True']} | {counts['flagged']} | "
            f"{counts['relaxed']} |\n")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=None, help="also write the markdown table here")
    args = parser.parse_args()
    from mofind.model.inference import Encoder
    from mofind.paths import model_dir
    from mofind.server.handlers import Backend

    encoder = Encoder.load()
    columns = ("prompts", "right", "right_relaxed", "flagged", "relaxed", "fixed", "broken")
    lines = ["| names_weight | library | " + " | ".join(columns) + " |", "|" + "---|" * (len(columns) + 2)]
    with tempfile.TemporaryDirectory(prefix="mofind-relax-") as work:
        indexes = style_libraries(Path(work), encoder)
        for weight in (0.0, DEFAULT_NAMES_WEIGHT):
            total = Counter()
            for style, index in indexes.items():
                backend = Backend(index, encoder, model_dir=model_dir())
                try:
                    counts = evaluate(backend, style, weight)
                finally:
                    backend.stop()
                total.update(counts)
                lines.append(f"| {weight:g} | {style} takes | " + " | ".join(str(counts[c]) for c in columns) + " |")
            lines.append(f"| {weight:g} | **all** | " + " | ".join(f"**{total[c]}**" for c in columns) + " |")
        free_form = cmu_rows(Path(work), encoder)
    table = (f"`python -m bench.eval_relax`, shipped model {encoder.model_hash} (text tower "
             f"{encoder.text_precision}): how often the first take has the "
             "prompt's action, without and with relaxed prompts\n\n" + "\n".join(lines) + "\n"
             "\nHeld-out CMU takes' HumanML3D captions against all 82 CMU takes (motion only): the caption's take "
             "at rank 1 / in the first 5\n" + free_form)
    print(table)
    if args.out:
        args.out.write_text(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
