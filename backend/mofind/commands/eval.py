"""`mofind eval --model DIR --data SPEC [--global-baseline]`: retrieval metrics, both directions.

Protocols: "all" (whole gallery, identical-caption ground truth) and "batch32" (groups of 32). Metrics:
R@1/2/3/5/10 and MedR for text->motion and motion->text. With `--global-baseline` the same embeddings are also
scored by mean-pooled cosine, so the MaxSim vs global ablation is one command on identical data.
Writes `<out>/eval.json` and `<out>/eval.md` (default out: the model folder) and prints the table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

from . import add_text_precision

HELP = "Evaluate retrieval (All and batch-32 protocols, both directions)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--model", type=Path, help="shipped model folder (e.g. RUN_DIR/model)")
    source.add_argument("--official", type=Path, help="a released MotionColBert .pt (needs --stats)")
    parser.add_argument("--stats", type=Path, help="folder with Mean_angle.npy/Std_angle.npy for --official")
    parser.add_argument("--official-config", default="official", help="model config of the --official checkpoint")
    parser.add_argument("--data", required=True, help="bandai | humanml3d:DIR | kitml:DIR | DIR (with --templates)")
    parser.add_argument("--templates", type=Path, help="caption template JSON for a labelled BVH folder")
    parser.add_argument("--split", default="val", help="split to evaluate (val; test for HumanML3D/KIT-ML)")
    parser.add_argument("--protocols", default="all,batch32", help="comma list of: all, batch32")
    parser.add_argument("--global-baseline", action="store_true", help="also score with mean-pooled cosine")
    parser.add_argument("--ties", default="pessimistic", choices=["pessimistic", "optimistic", "expected"])
    parser.add_argument("--device", default="cpu")
    add_text_precision(parser)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, help="folder for eval.json / eval.md (default: the model folder)")
    parser.add_argument("--quiet", action="store_true")


def load_encoder(args: argparse.Namespace):
    from mofind.model.inference import Encoder

    if args.model is not None:
        return Encoder.load(args.model, device=args.device, text_precision=args.text_precision)
    from mofind.model.checkpoint import load_official

    if args.stats is None:
        raise ValueError("--official needs --stats DIR (Mean_angle.npy / Std_angle.npy of that checkpoint)")
    bundle = load_official(args.official, args.stats, config=args.official_config)
    return Encoder(bundle.model, bundle.tokenizer, bundle.stats, bundle.config, device=args.device,
                   model_hash=bundle.model_hash, text_precision=args.text_precision)


def evaluation_set(args: argparse.Namespace, encoder):
    """The requested split, normalised with the model's own stats, first window + canonical caption per item."""
    from .train import prepare_data

    split = args.split
    prepared = prepare_data(args.data, encoder.window_frames, templates=args.templates, workers=args.workers,
                            val_split="val" if split == "train" else split, quiet=args.quiet,
                            window_invariant=encoder.config.motion.window_invariant)
    dataset = prepared.train if split == "train" else prepared.val
    return dataclasses.replace(dataset, train=False, stats=encoder.stats)


def run(args: argparse.Namespace) -> int:
    from mofind.eval.protocols import embed_dataset, evaluate_embedded, markdown_table

    protocols = [p.strip() for p in args.protocols.split(",") if p.strip()]
    encoder = load_encoder(args)
    dataset = evaluation_set(args, encoder)
    if len(dataset) == 0:
        print(f"error: the {args.split!r} split of {args.data} is empty", file=sys.stderr)
        return 1
    embedded = embed_dataset(encoder, dataset)
    scorings = ["maxsim"] + (["global"] if args.global_baseline else [])
    results = {scoring: evaluate_embedded(embedded, use_patch_mask=encoder.uses_patch_mask, scoring=scoring,
                                          protocols=protocols, ties=args.ties) for scoring in scorings}
    report = {"model": str(args.model or args.official), "model_hash": encoder.model_hash,
              "config": encoder.config.name, "text_precision": encoder.text_precision, "data": args.data,
              "split": args.split, "items": len(dataset),
              "distinct_captions": len(set(embedded.captions)), "ties": args.ties, "results": results}
    labels = {"maxsim": "MaxSim", "global": "Global (mean-pooled)"}
    rows = {f"{labels[s]} / {p}": metrics for s, by_protocol in results.items() for p, metrics in by_protocol.items()}
    table = markdown_table(rows)
    out = args.out or args.model or Path(".")
    out.mkdir(parents=True, exist_ok=True)
    (out / "eval.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    header = (f"# Retrieval on {args.data} ({args.split}, {len(dataset)} items, "
              f"{report['distinct_captions']} distinct captions), model {encoder.config.name} {encoder.model_hash}, "
              f"text tower {encoder.text_precision}\n\n")
    (out / "eval.md").write_text(header + table + "\n", encoding="utf-8")
    print(header + table)
    return 0
