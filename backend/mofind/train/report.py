"""Validation report for a model trained on labelled takes: the numbers a model card needs.

Beyond the All / batch-32 protocols (`mofind.eval.protocols`) it breaks text->motion R@1 down by label, so a
model that retrieves "waves" well but confuses the left and the right hand is visible, and it runs free-form
queries (wording absent from the caption templates) to check that the text side generalises.

    python -m mofind.train.report --model model_weights --out report.json
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

# Free-form queries describing Bandai validation takes, written by hand with words the caption templates never use
# (every query has at least two content words outside the template vocabulary: `template_overlap` checks it and
# the report prints it), and the content each should find. They were written before the model was evaluated on
# them and were never tuned on.
FREE_FORM_QUERIES = (
    ("a fellow flicks his right palm to greet a neighbour", "wave-right-hand"),
    ("somebody salutes a passing friend by flapping the right wrist", "wave-right-hand"),
    ("bye bye gesture made with the right palm", "wave-right-hand"),
    ("an elegant lady shakes her right palm at a buddy", "wave-right-hand"),
    ("a lady shakes her left palm at a buddy far away", "wave-left-hand"),
    ("with the left palm, somebody signals farewell to a crowd", "wave-left-hand"),
    ("flapping the left wrist in salutation", "wave-left-hand"),
    ("a cheerful teen flicks the left palm to say hi", "wave-left-hand"),
    ("a cheering fan flails both limbs wildly", "wave-both-hands"),
    ("somebody flaps two palms frantically like at a concert", "wave-both-hands"),
    ("excitedly signalling a rescue helicopter with both palms", "wave-both-hands"),
    ("a pupil elevates the left palm to ask the teacher something", "raise-up-left-hand"),
    ("reaching skyward using only the left limb", "raise-up-left-hand"),
    ("an aged woman extends her left fist toward the ceiling", "raise-up-left-hand"),
    ("volunteering by sticking the left palm high", "raise-up-left-hand"),
    ("a student extends the right palm toward the ceiling", "raise-up-right-hand"),
    ("right fist pointed at the sky", "raise-up-right-hand"),
    ("somebody swears an oath with the right palm elevated", "raise-up-right-hand"),
    ("a tall man stretches his right limb skyward", "raise-up-right-hand"),
    ("surrendering with both palms elevated", "raise-up-both-hands"),
    ("a celebration with both fists thrust skyward", "raise-up-both-hands"),
    ("stretching both limbs toward the ceiling", "raise-up-both-hands"),
    ("a pedestrian goes ahead at an unhurried tempo", "walk"),
    ("an old gentleman shuffles ahead unhurriedly", "walk"),
    ("marching onward calmly", "walk"),
    ("a woman saunters down a hallway", "walk"),
    ("a hiker bends her path toward the left side", "walk-turn-left"),
    ("someone pivots anticlockwise mid stroll", "walk-turn-left"),
    ("a pedestrian swerves leftwards during the stroll", "walk-turn-left"),
    ("a hiker swerves clockwise halfway through", "walk-turn-right"),
    ("ambling, then bending the route toward the right side", "walk-turn-right"),
    ("a pedestrian curls off rightwards while strolling", "walk-turn-right"),
    ("a sprinter bolts along the track", "run"),
    ("someone hurries at full speed", "run"),
    ("a marathoner trots briskly onward", "run"),
    ("scurrying fast like late for a bus", "run"),
)
MIN_NEW_WORDS = 2
SIDE_GROUPS = {"left hand (wave + raise)": ("wave-left-hand", "raise-up-left-hand"),
               "right hand (wave + raise)": ("wave-right-hand", "raise-up-right-hand"),
               "turn left": ("walk-turn-left",), "turn right": ("walk-turn-right",)}
SIDED_CONTENTS = ("wave-left-hand", "wave-right-hand", "raise-up-left-hand", "raise-up-right-hand",
                  "walk-turn-left", "walk-turn-right")


@dataclass
class Gallery:
    """An embedded validation split plus each item's labels."""

    embedded: object  # mofind.eval.protocols.EmbeddedSet
    labels: list[dict[str, str]]


def template_overlap(queries=FREE_FORM_QUERIES, templates=None) -> dict:
    """How much of each free-form query the caption templates already contain (content words, i.e. without the
    skiplist's function words): per query the template words and the new words, and the overall fraction."""
    from mofind.model.skiplist import SKIP_WORDS
    from mofind.model.vocabulary import words_of

    from .bandai import TEMPLATES
    from .captions import CaptionTemplates

    vocabulary = (templates or CaptionTemplates.load(TEMPLATES)).vocabulary()
    rows, seen, known = [], 0, 0
    for query, _ in queries:
        content = [w for w in words_of(query) if w not in SKIP_WORDS]
        rows.append({"query": query, "template_words": [w for w in content if w in vocabulary],
                     "new_words": [w for w in content if w not in vocabulary]})
        seen += len(content)
        known += len(rows[-1]["template_words"])
    return {"queries": rows, "content_word_overlap": known / max(seen, 1),
            "min_new_words": min(len(r["new_words"]) for r in rows)}


def side_of(content: str) -> str | None:
    words = set(re.findall(r"[a-z]+", content))
    return "left" if "left" in words else "right" if "right" in words else None


def label_breakdown(scores: np.ndarray, captions: list[str], labels: list[dict[str, str]], key: str = "content",
                    values=SIDED_CONTENTS) -> dict[str, dict[str, float]]:
    """Per label value: text->motion R@1 (identical-caption ground truth, as the All protocol), how often the
    top-1 motion has the right `key` label, and how often it is at least on the right side (left/right)."""
    top1 = scores.argmax(axis=1)
    out = {}
    for value in values:
        rows = [i for i, item in enumerate(labels) if item.get(key) == value]
        if not rows:
            continue
        r1 = np.mean([captions[top1[i]] == captions[i] for i in rows])
        same_label = np.mean([labels[top1[i]].get(key) == value for i in rows])
        same_side = np.mean([side_of(labels[top1[i]].get(key, "")) == side_of(value) for i in rows])
        out[value] = {"queries": len(rows), "t2m_r1": 100 * float(r1), f"{key}_top1": 100 * float(same_label),
                      "side_top1": 100 * float(same_side)}
    return out


def pooled(breakdown: dict[str, dict[str, float]], groups=SIDE_GROUPS) -> dict[str, dict[str, float]]:
    """Query-weighted means of `label_breakdown` rows over groups of labels (e.g. every left-hand content)."""
    out = {}
    for name, members in groups.items():
        rows = [breakdown[m] for m in members if m in breakdown]
        n = sum(r["queries"] for r in rows)
        if n:
            out[name] = {"queries": n, **{k: sum(r[k] * r["queries"] for r in rows) / n
                                          for k in rows[0] if k != "queries"}}
    return out


def free_form(encoder, gallery: Gallery, scoring: str, queries=FREE_FORM_QUERIES) -> list[dict]:
    """Rank the gallery for each free-form query; report the contents of the top 5."""
    from mofind.eval.protocols import EmbeddedSet, score_matrix

    tokens = [t for t, _ in encoder.encode_texts([q for q, _ in queries])]
    probe = EmbeddedSet(tokens, gallery.embedded.patches, gallery.embedded.patch_valid,
                        [q for q, _ in queries], [q for q, _ in queries])
    scores = score_matrix(probe, use_patch_mask=encoder.uses_patch_mask, scoring=scoring)
    results = []
    for (query, expected), row in zip(queries, scores):
        top = np.argsort(-row, kind="stable")[:5]
        contents = [gallery.labels[j]["content"] for j in top]
        results.append({"query": query, "expected": expected, "top5": contents,
                        "top1_ok": contents[0] == expected, "top5_hits": sum(c == expected for c in contents)})
    return results


def build_report(encoder, dataset, *, ties: str = "pessimistic", cmu_takes=None) -> dict:
    """All numbers for one model on one labelled validation dataset (`MotionTextDataset`, train=False); with
    `cmu_takes` (held-out CMU records) also open-vocabulary retrieval on their HumanML3D captions, and the
    localisation of explanations (`mofind.eval.localisation`) on both."""
    from mofind.eval.localisation import localisation
    from mofind.eval.protocols import embed_dataset, protocol_all, protocol_batches, score_matrix

    from .heldout import bandai_probes, cmu_probes, cmu_retrieval

    gallery = Gallery(embed_dataset(encoder, dataset), [s.label_dict for s in dataset.segments])
    report = {"items": len(dataset), "free_form_template_overlap": template_overlap(), "scorings": {}}
    probes = bandai_probes(gallery.embedded, gallery.labels, gallery.embedded.captions, FREE_FORM_QUERIES)
    if cmu_takes:
        probes += cmu_probes(encoder, cmu_takes)
        distractors = list(zip(gallery.embedded.patches[:, None], gallery.embedded.patch_valid[:, None]))
        report["cmu_humanml3d"] = cmu_retrieval(encoder, cmu_takes, distractors)
    report["localisation"] = localisation(encoder, probes)
    for scoring in ("maxsim", "global"):
        scores = score_matrix(gallery.embedded, use_patch_mask=encoder.uses_patch_mask, scoring=scoring)
        captions = gallery.embedded.captions
        queries = free_form(encoder, gallery, scoring)
        by_content = label_breakdown(scores, captions, gallery.labels, "content",
                                     sorted({item["content"] for item in gallery.labels}))
        report["scorings"][scoring] = {
            "all": protocol_all(scores, captions, ties=ties),
            "batch32": protocol_batches(scores, captions, 32, ties=ties) if len(captions) >= 32 else None,
            "by_content": by_content,
            "by_side": pooled(by_content),
            "free_form": queries,
            "free_form_top1": 100 * float(np.mean([q["top1_ok"] for q in queries])),
            "free_form_top5_precision": 100 * float(np.mean([q["top5_hits"] / 5 for q in queries])),
        }
    return report


def markdown(report: dict) -> str:
    """The model-card tables: protocols, left/right breakdown, free-form queries."""
    from mofind.eval.protocols import markdown_table

    scorings = report["scorings"]
    first = next(iter(scorings.values()))
    lines = [f"Validation split: {report['items']} takes.", "",
             markdown_table({f"{s} / {p}": scorings[s][p] for s in scorings for p in ("all", "batch32")
                             if scorings[s][p]})]
    for table, title in (("by_side", "contents pooled (text->motion)"), ("by_content", "content (text->motion)")):
        header = " | ".join(f"{s} R@1 | {s} content@1 | {s} side@1" for s in scorings)
        lines += ["", f"| {title} | queries | {header} |", "|---|---|" + "---|---|---|" * len(scorings)]
        for label, row0 in first[table].items():
            cells = [f"{s[table][label][k]:.1f}" for s in scorings.values()
                     for k in ("t2m_r1", "content_top1", "side_top1")]
            lines.append(f"| {label} | {row0['queries']} | " + " | ".join(cells) + " |")
    lines += ["", "| free-form query (not in the templates) | expected | " + " | ".join(
        f"{s} top-5 contents" for s in scorings) + " |", "|---|---|" + "---|" * len(scorings)]
    per_scoring = [s["free_form"] for s in scorings.values()]
    for rows in zip(*per_scoring):
        lines.append(f"| {rows[0]['query']} | {rows[0]['expected']} | " + " | ".join(
            ("**ok** " if r["top1_ok"] else "") + ", ".join(r["top5"]) for r in rows) + " |")
    lines.append("| top-1 correct / top-5 precision | | " + " | ".join(
        f"{s['free_form_top1']:.0f}% / {s['free_form_top5_precision']:.0f}%" for s in scorings.values()) + " |")
    if "cmu_humanml3d" in report:
        lines += ["", "| held-out CMU, HumanML3D captions | queries | gallery | R@1 | R@5 | R@10 | MedR |"
                  " chance R@1 / R@5 / R@10 |", "|---|---|---|---|---|---|---|---|"]
        for variant, row in report["cmu_humanml3d"].items():
            if isinstance(row, dict):
                lines.append(f"| {variant} | {row['queries']} | {row['gallery']} | {row['t2m_r1']:.1f} | "
                             f"{row['t2m_r5']:.1f} | {row['t2m_r10']:.1f} | {row['t2m_medr']:.1f} | "
                             f"{row['chance_r1']:.1f} / {row['chance_r5']:.1f} / {row['chance_r10']:.1f} |")
    if "localisation" in report:
        lines += ["", "| localisation (word's best patch on the right part) | words | fraction | chance |",
                  "|---|---|---|---|"]
        for key, row in report["localisation"].items():
            chance = f"{row['chance']:.2f}" if "chance" in row else ""
            lines.append(f"| {key} | {row['words']} | {row['fraction']:.2f} | {chance} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mofind.train.report", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="shipped model folder (default: mofind.paths.model_dir())")
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the model-card tables here")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-cmu", action="store_true", help="skip the held-out CMU numbers")
    args = parser.parse_args(argv)

    import torch

    from mofind.model.inference import Encoder

    from .bandai import HELD_OUT, TEMPLATES, ensure_extracted
    from .captions import CaptionTemplates
    from .data import MotionTextDataset, labelled_folder_segments, split_by_take
    from .feature_cache import FeatureCache

    torch.set_num_threads(args.threads)
    encoder = Encoder.load(args.model)
    overlap = template_overlap()
    print(f"free-form queries: {len(FREE_FORM_QUERIES)}, content words also in the templates: "
          f"{100 * overlap['content_word_overlap']:.0f} %, fewest new words in one query: {overlap['min_new_words']}")
    templates = CaptionTemplates.load(TEMPLATES)
    segments, _ = labelled_folder_segments(ensure_extracted(), templates)
    _, val = split_by_take(segments, held_out=HELD_OUT)
    features, failed = FeatureCache().build(sorted({s.path for s in val}))
    dataset = MotionTextDataset(val, features, encoder.stats, encoder.window_frames, templates=templates, train=False,
                                window_invariant=encoder.config.motion.window_invariant)
    from .cmu import load_takes
    from .corpus import cmu_split

    report = build_report(encoder, dataset, cmu_takes=None if args.no_cmu else cmu_split(load_takes())[1])
    text = markdown(report)
    print(text)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
