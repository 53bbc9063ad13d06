"""`mofind train --data SPEC --out RUN_DIR [--config train.json]`: train a retrieval model, resumably.

`--data` names a training source:
  bandai                 the Bandai dev archive in shared/data with the packaged caption templates
  all                    the shipped model's corpus: Bandai + shared/data/cmu-captioned, label, describer and
                         human captions mixed (`mofind.train.corpus`; shares from the config's "corpus")
  humanml3d:DIR          a HumanML3D folder (its train/val split files)
  kitml:DIR              a KIT-ML folder
  DIR --templates FILE   a labelled BVH folder captioned from file names by a template file
  DIR --describe         an unlabelled BVH folder captioned by the kinematic describer (`mofind.describe`);
                         with "init_from" in the config this adapts an existing model to a studio's library
Re-running the same command continues an interrupted run from RUN_DIR/state.pt (use --restart to start over).
The best epoch on the validation split is written to RUN_DIR/model in the shipped format.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

HELP = "Train a model (InfoNCE + MLM) on HumanML3D, KIT-ML or a labelled BVH folder."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True,
                        help="bandai | all | humanml3d:DIR | kitml:DIR | DIR (with --templates)")
    parser.add_argument("--templates", type=Path, help="caption template JSON for a labelled BVH folder")
    parser.add_argument("--describe", action="store_true",
                        help="caption an unlabelled BVH folder with the kinematic describer")
    parser.add_argument("--out", type=Path, required=True, help="run folder (created; resumed when it exists)")
    parser.add_argument("--config", type=Path, help="TrainConfig JSON (defaults: compact model, 30 epochs)")
    parser.add_argument("--model", help="registered model config name, overrides the config file's model")
    parser.add_argument("--epochs", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--device", help="cpu, cuda, cuda:1 or auto")
    parser.add_argument("--precision", choices=["fp32", "bf16"])
    parser.add_argument("--max-steps-per-epoch", type=int)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--workers", type=int, default=2, help="processes for feature extraction")
    parser.add_argument("--restart", action="store_true", help="ignore RUN_DIR/state.pt and train from scratch")
    parser.add_argument("--allow-download", action="store_true",
                        help="let configs that name hub weights (timm / Hugging Face) download them")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def train_config_from_args(args: argparse.Namespace):
    from mofind.train.loop import TrainConfig

    config = TrainConfig.load(args.config) if args.config else TrainConfig()
    overrides = {"model": args.model, "epochs": args.epochs, "batch_size": args.batch_size, "device": args.device,
                 "precision": args.precision, "max_steps_per_epoch": args.max_steps_per_epoch, "seed": args.seed}
    data = {**vars(config), **{k: v for k, v in overrides.items() if v is not None}}
    return TrainConfig.from_dict(data)


def prepare_data(spec: str, frames: int, *, templates: Path | None = None, workers: int = 2, seed: int = 0,
                 val_split: str = "val", quiet: bool = False, window_invariant: bool = False,
                 corpus: dict | None = None, stats=None, describe: bool = False):
    """`--data` spec -> `mofind.train.data.PreparedData` (train / val datasets + stats fit on train)."""
    from mofind.train import data

    progress = None if quiet else _progress_printer("features")
    common = dict(workers=workers, seed=seed, progress=progress, window_invariant=window_invariant)
    kind, _, rest = spec.partition(":")
    if spec == "bandai":
        return data.prepare_bandai(frames, **common)
    if spec == "all":
        from mofind.train.corpus import CorpusShares, prepare_corpus

        return prepare_corpus(frames, shares=CorpusShares(**(corpus or {})), stats=stats, **common)
    if kind in ("humanml3d", "kitml") and rest:
        return data.prepare_text_folder(Path(rest), frames, kind=kind, val_split=val_split, **common)
    folder = Path(spec)
    if not folder.is_dir():
        raise FileNotFoundError(f"--data {spec}: not 'bandai', 'humanml3d:DIR', 'kitml:DIR' or an existing folder")
    if describe:
        from mofind.train.corpus import prepare_described_folder

        return prepare_described_folder(folder, frames, stats=stats, **common)
    if templates is None:
        raise ValueError(f"--data {spec}: a BVH folder needs --templates FILE (labels in the file names) or "
                         "--describe (captions from the describer)")
    return data.prepare_labelled_folder(folder, templates, frames, **common)


def _init_stats(config):
    """A run that starts from a shipped model (`init_from`) keeps that model's angle statistics (`--data all`,
    `--describe`)."""
    if not config.init_from:
        return None
    from mofind.features.normalize import AngleStats

    return AngleStats.load(config.init_from)


def _progress_printer(label: str):
    def report(done: int, total: int) -> None:
        if done == total or done % 50 == 0:
            print(f"\r{label}: {done}/{total}", end="\n" if done == total else "", file=sys.stderr, flush=True)
    return report


def run(args: argparse.Namespace) -> int:
    from mofind.train.loop import Trainer

    config = train_config_from_args(args)
    motion = config.model_config().motion
    prepared = prepare_data(args.data, motion.frames, templates=args.templates, workers=args.workers,
                            seed=config.seed, quiet=args.quiet, window_invariant=motion.window_invariant,
                            corpus=config.corpus, stats=_init_stats(config), describe=args.describe)
    if prepared.failed:
        print(f"{len(prepared.failed)} file(s) could not be read, e.g. {next(iter(prepared.failed.values()))}",
              file=sys.stderr)
    print(f"train items: {len(prepared.train)}, validation items: {len(prepared.val)}", file=sys.stderr)
    if hasattr(prepared.train, "describe_sources"):
        print("per epoch: " + "; ".join(prepared.train.describe_sources()), file=sys.stderr)
    trainer = Trainer(config, prepared.train, prepared.val, prepared.stats, args.out, progress=not args.quiet,
                      allow_download=args.allow_download, mlm_exclude=getattr(prepared, "heldout_texts", ()))
    result = trainer.fit(resume=not args.restart)
    print(f"done: {result.epochs_done} epochs, best epoch {result.best_epoch} "
          f"(mean R@5 {result.best_score}), model in {args.out / 'model'}")
    return 0
