"""`mofind model ACTION`: make and maintain model folders.

  * `mofind model import-official CKPT --stats DIR --out MODEL_DIR`: the paper's checkpoints as a MoFind model.
    The written folder is used like the shipped one: `mofind index/query/serve --model MODEL_DIR`. Released
    MotionColBert weights are CC BY-NC 4.0; the folder's `provenance.json` says so.
  * `mofind model vocabulary --model DIR [--templates FILE ...]`: write `vocabulary.json`, the words of every
    caption the templates can produce (what a labelled-folder model was trained on with motion);
  * `mofind model calibrate --model DIR`: fit `calibration.json` (confidence per result, no-good-match flag)
    on the Bandai validation takes and report the flag's precision and recall (`mofind.quality.fit`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "Manage model folders: import the paper's checkpoints, vocabulary, match-quality calibration."
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

    vocabulary = sub.add_parser("vocabulary", help="write vocabulary.json from caption templates",
                                description="Write MODEL_DIR/vocabulary.json: the words of every caption the "
                                            "given caption-template files can produce.")
    vocabulary.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped one)")
    vocabulary.add_argument("--templates", type=Path, action="append", default=None,
                            help="caption template file (repeatable; default: the packaged Bandai templates)")

    calibrate = sub.add_parser("calibrate", help="fit calibration.json on Bandai validation takes",
                               description="Fit MODEL_DIR/calibration.json (per-result confidence and the "
                                           "no-good-match flag) on the Bandai validation split and report the "
                                           "flag's precision and recall on held-out queries. Needs ../shared.")
    calibrate.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped one)")
    calibrate.add_argument("--index", type=Path, default=None,
                           help="where to index the validation takes (default: a cache folder per model hash)")
    calibrate.add_argument("--json", action="store_true", help="print the written calibration as JSON")


def run(args: argparse.Namespace) -> int:
    if args.action == "import-official":
        return _import_official(args)
    from mofind.paths import model_dir

    folder = args.model or model_dir()
    if not folder.is_dir():
        print(f"mofind model: {folder} is not a folder", file=sys.stderr)
        return 2
    return _vocabulary(folder, args) if args.action == "vocabulary" else _calibrate(folder, args)


def _import_official(args: argparse.Namespace) -> int:
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


def _vocabulary(folder: Path, args: argparse.Namespace) -> int:
    from mofind.model.vocabulary import build_vocabulary, template_texts, write_vocabulary
    from mofind.train.bandai import TEMPLATES
    from mofind.train.captions import CaptionTemplateError, CaptionTemplates

    try:
        sources = {f"templates/{path.name} (phrasings, mirrored)": template_texts(CaptionTemplates.load(path))
                   for path in (args.templates or [TEMPLATES])}
    except CaptionTemplateError as exc:
        print(f"mofind model: {exc}", file=sys.stderr)
        return 2
    vocabulary = build_vocabulary(sources)
    path = write_vocabulary(folder, vocabulary)
    print(f"wrote {path}: {len(vocabulary['words'])} words")
    return 0


def _calibrate(folder: Path, args: argparse.Namespace) -> int:
    from mofind.index.encoders import ModelUnavailableError
    from mofind.quality.fit import calibrate

    try:
        calibration = calibrate(folder, index_dir=args.index, log=(lambda *_: None) if args.json else print)
    except (FileNotFoundError, ValueError, ModelUnavailableError) as exc:
        print(f"mofind model: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(calibration.to_dict(), indent=1))
    return 0
