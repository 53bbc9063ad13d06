"""How much the library's own words help search (text_match.py), measured on real takes with the shipped model.

    python -m bench.eval_names [--out bench/results/names.md]

Two libraries, each indexed twice from the same motion files:
  * Bandai validation takes (`mofind.train` split, held-out takes included): anonymised (`0001.bvh` ...) and
    under their own names (`dataset-2_walk_normal_001.bvh`). Query: the canonical template caption of each take
    ("a person walks normally", ...); a hit is right when it has the query's action and style (the action alone
    is found at rank 1 for every query, with or without names).
  * ../shared/data/cmu-captioned: anonymised (`0001.bvh`), and under their CMU ids with the CMU descriptions as
    a `descriptions.csv` sidecar table (the HumanML3D captions are not given to the index: they are the queries).
    Query: every HumanML3D caption of the 34 captioned takes; a hit is right when it is that take.
For each: recall@1/@5/@10 at names_weight 0 (MaxSim only) and at the default, and whether the anonymised
library's ranking is exactly the motion-only ranking.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import tempfile
from pathlib import Path

from mofind.index.build import build_index
from mofind.index.search import Searcher
from mofind.index.store import IndexReader
from mofind.index.text_match import DEFAULT_NAMES_WEIGHT

KS = (1, 5, 10)


def bandai_library(work: Path) -> tuple[Path, Path, list[tuple[str, set[str]]]]:
    """(anonymised folder, named folder, [(query, names of right takes)])."""
    from mofind.train.bandai import HELD_OUT, TEMPLATES, ensure_extracted
    from mofind.train.captions import CaptionTemplates
    from mofind.train.data import labelled_folder_segments, split_by_take

    templates = CaptionTemplates.load(TEMPLATES)
    segments, _ = labelled_folder_segments(ensure_extracted(), templates)
    _, val = split_by_take(segments, held_out=HELD_OUT)
    takes = sorted({s.path: s for s in val}.values(), key=lambda s: s.take_id)
    anonymous, named = work / "bandai-anon" / "takes", work / "bandai-named" / "takes"
    anonymous.mkdir(parents=True)
    named.mkdir(parents=True)
    labels_of, queries = {}, []
    for number, segment in enumerate(takes):
        shutil.copy(segment.path, anonymous / f"{number:04d}.bvh")
        shutil.copy(segment.path, named / segment.path.name)
        labels_of[number] = segment.label_dict
    for number, segment in enumerate(takes):
        right = {n for n, labels in labels_of.items() if labels == segment.label_dict}
        queries.append((templates.canonical(segment.label_dict), right))
    names = {number: segment.path.name for number, segment in enumerate(takes)}
    return anonymous, named, [(q, {f"{n:04d}.bvh" for n in r} | {names[n] for n in r}) for q, r in queries]


def cmu_library(work: Path) -> tuple[Path, Path, list[tuple[str, set[str]]]]:
    from mofind.train.cmu import load_takes

    takes = load_takes()
    anonymous, named = work / "cmu-anon" / "takes", work / "cmu-named" / "takes"
    anonymous.mkdir(parents=True)
    named.mkdir(parents=True)
    queries = []
    with open(named / "descriptions.csv", "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["file", "description"])
        for number, take in enumerate(takes):
            shutil.copy(take.bvh, anonymous / f"{number:04d}.bvh")
            shutil.copy(take.bvh, named / take.bvh.name)
            writer.writerow([take.bvh.name, take.description])
            for segment in take.segments:
                queries += [(text, {f"{number:04d}.bvh", take.bvh.name}) for text in segment.texts]
    return anonymous, named, queries


def recalls(searcher: Searcher, queries, weight: float) -> tuple[dict[int, float], list]:
    hits_per_query = searcher.search([q for q, _ in queries], k=max(KS), names_weight=weight)
    out = {k: 0.0 for k in KS}
    for (_, right), hits in zip(queries, hits_per_query):
        names = [Path(h.source).name for h in hits]
        for k in KS:
            out[k] += any(n in right for n in names[:k]) / len(queries)
    return out, [[(h.clip_id, h.start_frame, h.score) for h in hits] for hits in hits_per_query]


def evaluate(name: str, library, encoder, work: Path) -> list[str]:
    anonymous, named, queries = library(work)
    rows = []
    exact = None
    for label, folder in (("anonymised names", anonymous), ("own names" if name == "Bandai" else
                                                          "CMU ids + descriptions table", named)):
        build_index([folder.parent], work / f"index-{folder.parent.name}", encoder, workers=0)
        searcher = Searcher(IndexReader.open(work / f"index-{folder.parent.name}"), encoder)
        base, base_rank = recalls(searcher, queries, 0.0)
        fused, fused_rank = recalls(searcher, queries, DEFAULT_NAMES_WEIGHT)
        if folder is anonymous:
            exact = base_rank == fused_rank
        rows.append(f"| {name} | {label} | {len(queries)} | "
                    + " | ".join(f"{base[k]:.3f} → {fused[k]:.3f}" for k in KS) + " |")
    rows.append(f"| {name} | anonymised ranking identical to MaxSim-only | | {'yes' if exact else 'NO'} | | |")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--only", choices=("bandai", "cmu"), default=None)
    args = parser.parse_args(argv)
    import torch

    from mofind.model.inference import Encoder

    torch.set_num_threads(2)
    encoder = Encoder.load()
    lines = [f"names_weight 0 → {DEFAULT_NAMES_WEIGHT} (recall of a right take among the first k results)", "",
             "| library | file names | queries | R@1 | R@5 | R@10 |", "|---|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, library in (("Bandai", bandai_library), ("CMU", cmu_library)):
            if args.only and args.only != name.lower():
                continue
            lines += evaluate(name, library, encoder, Path(tmp) / name)
    text = "\n".join(lines)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
