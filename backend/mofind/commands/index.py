"""`mofind index PATH... --index DIR`: add motion files and folders to an index (resumable).

Folders are searched recursively for BVH files and HumanML3D / KIT-ML `new_joints/*.npy`. Files already
indexed with the same content are skipped, so rerunning after an interruption resumes where it stopped.
Every file that fails is listed with its reason at the end; the rest is indexed. Exit status: 0 when all
files were indexed or skipped, 1 when some failed, 2 when the index could not be opened at all.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "Index motion files or folders into a MoFind index directory."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", type=Path, metavar="PATH", help="motion files or folders")
    parser.add_argument("--index", type=Path, default=None,
                        help="index folder (default: mofind.paths.default_index_dir(), $MOFIND_INDEX)")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped weights)")
    parser.add_argument("--workers", type=int, default=None,
                        help="parsing processes (default: a quarter of the CPU cores, at least 1; 0 parses in "
                             "this process)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for encoding (default: the cores the parsing processes leave free)")
    parser.add_argument("--commit-every", type=int, default=None, metavar="N",
                        help="commit after every N new clips (default 256)")
    parser.add_argument("--no-recursive", action="store_true", help="do not descend into sub-folders")
    parser.add_argument("--remove", nargs="+", metavar="CLIP_ID", default=None, help="remove clips by id")
    parser.add_argument("--remove-prefix", metavar="PATH", default=None, help="remove clips under this path")
    parser.add_argument("--compact", action="store_true", help="rewrite chunks to drop removed clips")
    parser.add_argument("--json", action="store_true", help="print the final report as JSON on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from mofind.index.build import DEFAULT_COMMIT_EVERY, build_index, default_workers, encoder_threads
    from mofind.index.encoders import ModelUnavailableError, load_encoder
    from mofind.index.manifest import IndexSpec, IndexStoreError
    from mofind.index.store import IndexWriter
    from mofind.paths import default_index_dir

    index_dir = args.index or default_index_dir()
    if not args.paths and args.remove is None and args.remove_prefix is None and not args.compact:
        print("mofind index: give PATH... to index, or --remove/--remove-prefix/--compact", file=sys.stderr)
        return 2
    workers = default_workers() if args.workers is None else args.workers
    import torch

    torch.set_num_threads(args.threads or encoder_threads(workers))
    try:
        encoder = load_encoder(args.model)
        report = None
        if args.paths:
            report = build_index(args.paths, index_dir, encoder, workers=workers,
                                 recursive=not args.no_recursive,
                                 commit_every=args.commit_every or DEFAULT_COMMIT_EVERY,
                                 progress=not args.quiet and not args.json)
        maintenance = {}
        if args.remove is not None or args.remove_prefix is not None or args.compact:
            with IndexWriter(index_dir, IndexSpec.from_encoder(encoder), create=False) as writer:
                removed = writer.remove(args.remove or [])
                if args.remove_prefix is not None:
                    removed += writer.remove_prefix(str(Path(args.remove_prefix).expanduser().resolve()))
                maintenance["removed"] = removed
                if args.compact:
                    maintenance["compaction"] = writer.compact()
                maintenance["clips_in_index"] = len(writer.reader)
    except (IndexStoreError, ModelUnavailableError) as exc:
        print(f"mofind index: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\nmofind index: interrupted; finished clips were committed, rerun the same command to resume",
              file=sys.stderr)
        return 130
    summary = (report.to_dict() if report is not None else {}) | maintenance | {"index": str(index_dir)}
    if args.json:
        print(json.dumps(summary, indent=1))
    else:
        _print_report(summary)
    return 1 if report is not None and report.failed else 0


def _print_report(summary: dict) -> None:
    if "files" in summary:
        rate = summary.get("ten_second_takes_per_second")
        print(f"indexed {summary['indexed']} clips ({summary['windows']} windows), skipped {summary['skipped']} "
              f"unchanged, {len(summary['failed'])} failed, in {summary['elapsed']:.1f} s"
              + (f" ({rate:.1f} ten-second takes/s)" if rate else ""))
        for failure in summary["failed"]:
            print(f"  FAILED {failure['path']}: {failure['error']}")
        if summary.get("cancelled"):
            print("cancelled: rerun the same command to resume")
    if "removed" in summary:
        print(f"removed {summary['removed']} clips")
    if "compaction" in summary:
        c = summary["compaction"]
        print(f"compacted {c['chunks_before']} chunks into {c['chunks_after']}")
    print(f"{summary['index']}: {summary['clips_in_index']} clips")
