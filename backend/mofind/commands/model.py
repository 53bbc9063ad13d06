"""`mofind model import-official CKPT --stats DIR --out MODEL_DIR`: the paper's checkpoints as a MoFind model.

The written folder is used like the shipped one: `mofind index/query/serve --model MODEL_DIR`. Released
MotionColBert weights are CC BY-NC 4.0; the folder's `provenance.json` says so.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "Manage model folders (import the paper's released MotionColBert checkpoints)."
DTYPES = ("float16", "float32")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    imp = sub.add_parser("import-official", help="convert an official MotionColBert .pt into a model folder",
                         description="Convert an official MotionColBert checkpoint (a plain torch state dict, "
                                     "loaded tensors-only) and its Mean_angle.npy/Std_angle.npy into a model "
                                     "folder for --model.")
    imp.add_argument("checkpoint", type=Path, help="the released .pt file")
    imp.add_argument("--stats", type=Path, required=True,
                     help="folder holding that checkpoint's Mean_angle.npy and Std_angle.npy")
    imp.add_argument("--out", type=Path, required=True, help="model folder to write (created)")
    imp.add_argument("--config", default="official",
                     help="registered architecture of the checkpoint (default: official = ViT-B/16 + DistilBERT)")
    imp.add_argument("--tokenizer", default=None,
                     help="tokenizer folder or name (default: the config's; distilbert-base-uncased's vocabulary "
                          "ships offline with MoFind)")
    imp.add_argument("--dtype", choices=DTYPES, default="float16", help="storage precision (default float16)")
    imp.add_argument("--force", action="store_true", help="overwrite a non-empty --out folder")


def run(args: argparse.Namespace) -> int:
    out: Path = args.out
    if out.exists() and any(out.iterdir()) and not args.force:
        print(f"mofind model: {out} is not empty; choose another --out or pass --force", file=sys.stderr)
        return 2
    import torch

    from mofind.model.checkpoint import CheckpointError, import_official
    from mofind.model.inference import Encoder

    try:
        import_official(args.checkpoint, args.stats, out, config=args.config, tokenizer=args.tokenizer,
                        dtype=getattr(torch, args.dtype))
        encoder = Encoder.load(out)  # proves the folder loads the way index/query/serve will load it
    except (CheckpointError, FileNotFoundError, ValueError) as exc:
        print(f"mofind model: {exc}", file=sys.stderr)
        return 2
    print(f"wrote {out} (config {encoder.config.name}, model hash {encoder.model_hash}); "
          f"use it with: mofind index|query|serve --model {out}")
    return 0
