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

# Free-form Bandai queries with wording the templates never use, and the content each should find.
FREE_FORM_QUERIES: tuple[tuple[str, str], ...] = (
    ("a guy waving hi with his right hand", "wave-right-hand"),
    ("somebody says bye by waving the right palm", "wave-right-hand"),
    ("a woman flaps her left hand to say hello", "wave-left-hand"),
    ("person waving at a friend using the left hand only", "wave-left-hand"),
    ("a man shoots his right arm straight up", "raise-up-right-hand"),
    ("someone puts up the right hand to volunteer", "raise-up-right-hand"),
    ("a student raises the left arm to answer", "raise-up-left-hand"),
    ("the left hand goes up above the head and stays there", "raise-up-left-hand"),
    ("a fan waves both arms wildly above the head", "wave-both-hands"),
    ("someone hoists both arms toward the sky", "raise-up-both-hands"),
    ("a person strolls and rounds a corner to the left", "walk-turn-left"),
    ("walking, the man curves off to his right", "walk-turn-right"),
    ("a jogger running ahead", "run"),
    ("an old man shuffling forward on foot", "walk"),
)
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


def build_report(encoder, dataset, *, ties: str = "pessimistic") -> dict:
    """All numbers for one model on one labelled validation dataset (`MotionTextDataset`, train=False)."""
    from mofind.eval.protocols import embed_dataset, protocol_all, protocol_batches, score_matrix

    gallery = Gallery(embed_dataset(encoder, dataset), [s.label_dict for s in dataset.segments])
    report = {"items": len(dataset), "scorings": {}}
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
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m mofind.train.report", description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=None,
                        help="shipped model folder (default: mofind.paths.model_dir())")
    parser.add_argument("--out", type=Path, default=None, help="write the report as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the model-card tables here")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args(argv)

    import torch

    from mofind.model.inference import Encoder

    from .bandai import HELD_OUT, TEMPLATES, ensure_extracted
    from .captions import CaptionTemplates
    from .data import MotionTextDataset, labelled_folder_segments, split_by_take
    from .feature_cache import FeatureCache

    torch.set_num_threads(args.threads)
    encoder = Encoder.load(args.model)
    templates = CaptionTemplates.load(TEMPLATES)
    segments, _ = labelled_folder_segments(ensure_extracted(), templates)
    _, val = split_by_take(segments, held_out=HELD_OUT)
    features, failed = FeatureCache().build(sorted({s.path for s in val}))
    dataset = MotionTextDataset(val, features, encoder.stats, encoder.window_frames, templates=templates, train=False,
                                window_invariant=encoder.config.motion.window_invariant)
    report = build_report(encoder, dataset)
    text = markdown(report)
    print(text)
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    if args.markdown:
        args.markdown.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
