"""`mofind index PATH... --index DIR`: add motion files and folders to an index (resumable).

Folders are searched recursively for BVH files and HumanML3D / KIT-ML `new_joints/*.npy`. Files already
indexed with the same content are skipped, so rerunning after an interruption resumes where it stopped.
Every file that fails is listed with its reason at the end; the rest is indexed. Exit status: 0 when all
files were indexed or skipped, 1 when some failed, 2 when the index could not be opened or written (a full
disk: the message says so, committed clips are kept, and `--json` still prints the report). Motion files are
parsed under the caps of `[limits]` in mofind.toml (docs/security.md).
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
                             "this process); with --cluster: Ray workers that parse and encode (default: one per "
                             "GPU of the cluster, else one per CPU but one)")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads for encoding (default: the cores the parsing processes leave free)")
    parser.add_argument("--commit-every", type=int, default=None, metavar="N",
                        help="commit after every N new clips (default 256)")
    parser.add_argument("--no-recursive", action="store_true", help="do not descend into sub-folders")
    parser.add_argument("--remove", nargs="+", metavar="CLIP_ID", default=None, help="remove clips by id")
    parser.add_argument("--remove-prefix", metavar="PATH", default=None, help="remove clips under this path")
    parser.add_argument("--compact", action="store_true", help="rewrite chunks to drop removed clips")
    parser.add_argument("--prune", action="store_true",
                        help="remove clips whose source files no longer exist (moved files are found again by "
                             "content hash when their new folder is indexed)")
    parser.add_argument("--verify", action="store_true",
                        help="check the manifest, codec and every chunk's checksum and structure; exit 1 if damaged")
    parser.add_argument("--repair", action="store_true",
                        help="re-encode the clips of damaged chunks from their source files, drop those whose "
                             "files are gone, move the damaged files to quarantine/")
    parser.add_argument("--cluster", metavar="ADDRESS", default=None,
                        help="parse and encode on this Ray cluster (HOST:PORT or 'auto'; needs the 'cluster' extra). "
                             "Every node must see the files and the index folder at the same paths")
    parser.add_argument("--device", default="cpu",
                        help="where the motion encoder runs: auto, cpu (default), cuda or cuda:N")
    parser.add_argument("--json", action="store_true", help="print the final report as JSON on stdout")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from mofind.index.build import DEFAULT_COMMIT_EVERY, IndexWriteError, build_index, default_workers, encoder_threads
    from mofind.index.cluster import ClusterUnavailableError
    from mofind.index.encoders import ModelUnavailableError, load_encoder
    from mofind.model.device import DeviceUnavailableError
    from mofind.index.manifest import IndexSpec, IndexStoreError
    from mofind.index.store import IndexWriter
    from mofind.paths import default_index_dir
    from mofind.settings import SettingsError, load_settings

    index_dir = args.index or default_index_dir()
    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 are printed as their own bytes
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="surrogateescape")
    if args.verify:
        return _verify(index_dir, args.json)
    if not args.paths and args.remove is None and args.remove_prefix is None and not args.compact \
            and not args.prune and not args.repair:
        print("mofind index: give PATH... to index, or --remove/--remove-prefix/--compact/--prune/--verify/--repair",
              file=sys.stderr)
        return 2
    workers = default_workers() if args.workers is None else args.workers
    import torch

    torch.set_num_threads(args.threads or encoder_threads(workers))
    try:
        settings = load_settings()
        from mofind.model.device import resolve_device

        encoder = load_encoder(args.model, device=resolve_device(args.device))
        report = None
        maintenance = {}
        if args.repair:
            from mofind.index.maintenance import repair_index

            maintenance["repair"] = repair_index(index_dir, encoder, workers=workers)
        if args.paths and args.cluster:
            from mofind.index.cluster import connect
            from mofind.index.cluster_build import build_index_on_cluster

            connect(args.cluster)
            report = build_index_on_cluster(args.paths, index_dir, encoder, model_dir=args.model,
                                            workers=args.workers, recursive=not args.no_recursive,
                                            commit_every=args.commit_every or DEFAULT_COMMIT_EVERY,
                                            progress=not args.quiet and not args.json)
        elif args.paths:
            report = build_index(args.paths, index_dir, encoder, workers=workers,
                                 recursive=not args.no_recursive,
                                 commit_every=args.commit_every or DEFAULT_COMMIT_EVERY,
                                 progress=not args.quiet and not args.json, limits=settings.limits)
        if args.prune:
            from mofind.index.maintenance import prune_index

            maintenance |= prune_index(index_dir, IndexSpec.from_encoder(encoder))
        if args.remove is not None or args.remove_prefix is not None or args.compact:
            with IndexWriter(index_dir, IndexSpec.from_encoder(encoder), create=False) as writer:
                removed = writer.remove(args.remove or [])
                if args.remove_prefix is not None:
                    removed += writer.remove_prefix(str(Path(args.remove_prefix).expanduser().resolve()))
                maintenance["removed"] = removed
                if args.compact:
                    maintenance["compaction"] = writer.compact()
                maintenance["clips_in_index"] = len(writer.reader)
    except IndexWriteError as exc:  # disk full, read-only, ...: say so, keep the report of what was committed
        print(f"mofind index: {exc}. The {exc.report.indexed} clips committed before it are kept; free space and "
              "rerun the same command to resume", file=sys.stderr)
        if args.json:
            print(json.dumps(exc.report.to_dict() | {"index": str(index_dir)}, indent=1))
        return 2
    except OSError as exc:  # e.g. the index folder cannot be created
        print(f"mofind index: cannot use the index {index_dir}: {exc.strerror or exc}", file=sys.stderr)
        if args.json:
            print(json.dumps({"error": str(exc), "index": str(index_dir)}, indent=1))
        return 2
    except (IndexStoreError, ModelUnavailableError, SettingsError, ClusterUnavailableError,
            DeviceUnavailableError) as exc:
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


def _verify(index_dir: Path, as_json: bool) -> int:
    from mofind.index.maintenance import verify_index

    report = verify_index(index_dir)
    if as_json:
        print(json.dumps(report, indent=1))
    else:
        damaged = [c for c in report["chunks"] if c["status"] == "damaged"]
        print(f"{report['index']}: {'OK' if report['ok'] else 'DAMAGED'} - {len(report['chunks'])} chunks, "
              f"{report['clips']} clips, {report['clips_offline']} clips in damaged chunks")
        for problem in (report["manifest"], report["codec"]):
            if problem != "ok":
                print(f"  {problem}")
        for chunk in damaged:
            print(f"  DAMAGED {chunk['name']}: {chunk['reason']}")
        unverified = sum(c["status"] == "unverified" for c in report["chunks"])
        if unverified:
            print(f"  {unverified} chunks predate checksums (structure checked only)")
        if report["missing_sources"]:
            print(f"  {len(report['missing_sources'])} indexed files no longer exist (--prune removes them)")
        if damaged:
            print(f"fix: mofind index --repair --index {report['index']}")
    return 0 if report["ok"] else 1


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
    if summary.get("moved"):
        print(f"found {summary['moved']} moved files again by content (not re-encoded)")
    if "repair" in summary:
        r = summary["repair"]
        print(f"repair: {len(r['damaged_chunks'])} damaged chunks, {r['reencoded']} clips re-encoded, "
              f"{len(r['dropped'])} dropped (files gone), {len(r['unrecoverable_chunks'])} chunks with unknown clips")
    if "pruned" in summary:
        print(f"pruned {summary['pruned']} clips whose files are gone")
    if "removed" in summary:
        print(f"removed {summary['removed']} clips")
    if "compaction" in summary:
        c = summary["compaction"]
        print(f"compacted {c['chunks_before']} chunks into {c['chunks_after']}")
    print(f"{summary['index']}: {summary['clips_in_index']} clips")
