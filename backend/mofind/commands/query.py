"""`mofind query "TEXT" --index DIR -k 10 --json`: search an index from the command line.

`--json` prints exactly {"results": [{"clip_id", "source", "start_frame", "end_frame", "fps", "score",
"confidence", ...}], "quality": {"no_good_match", "unknown_words", "message", ...}} with frames in the source
file's own frame numbers (end exclusive) and `fps` the source rate; `confidence` is the calibrated probability
that the result is a right match and `quality` says whether the library holds a good match at all
(`mofind.quality.assess`). When it does not, the results may answer the prompt with a word or two left out
(`quality.relaxed` names them; `mofind.quality.relax`; `--no-relax` keeps the prompt's own results).

When a `mofind serve` for the same index answers (`--server`, $MOFIND_SERVER or the default address), the
query is sent to it (query_remote.py: imports only zmq and json, so the answer comes in well under a second);
otherwise, or with `--no-server`, the model is loaded and the index searched in this process.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from . import add_text_precision

HELP = "Search an index with a text query."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", help="what the motion should show, e.g. \"a person waves with the left hand\"")
    parser.add_argument("--index", type=Path, default=None, help="index folder (default: the default index)")
    parser.add_argument("--model", type=Path, default=None, help="model folder (default: the shipped weights)")
    parser.add_argument("-k", type=int, default=10, help="number of takes to return")
    parser.add_argument("--per-take", type=int, default=1, help="windows listed per take")
    parser.add_argument("--mode", choices=("auto", "exact", "two_stage"), default="auto")
    parser.add_argument("--min-duration", type=float, default=None, help="seconds")
    parser.add_argument("--max-duration", type=float, default=None, help="seconds")
    parser.add_argument("--path-prefix", default=None)
    parser.add_argument("--skeleton", default=None)
    parser.add_argument("--label", default=None)
    parser.add_argument("--names-weight", type=float, default=None, metavar="W",
                        help="how much take names and labels count beside the motion (0 = motion only; default "
                             "0.25; see docs/user-guide.md)")
    parser.add_argument("--no-relax", action="store_true",
                        help="when nothing matches the whole prompt, list its own closest takes instead of those "
                             "of the prompt with a misfit word or two left out (see docs/user-guide.md)")
    add_text_precision(parser)
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--server", default=None, metavar="ADDRESS",
                        help="ask this running `mofind serve` (default: $MOFIND_SERVER or tcp://127.0.0.1:5555 when it "
                             "serves the same index; else search in-process)")
    parser.add_argument("--no-server", action="store_true", help="always search in-process")


def run(args: argparse.Namespace) -> int:
    if not args.no_server and (args.model is None or args.server is not None):
        answered = _run_remote(args)
        if answered is not None:
            return answered
    return _run_local(args)


def _filters(args: argparse.Namespace) -> dict:
    return {name: getattr(args, name) for name in ("min_duration", "max_duration", "path_prefix", "skeleton", "label")
            if getattr(args, name) is not None}


def _run_remote(args: argparse.Namespace) -> int | None:
    """Ask a running server for the same index; None when there is none (the caller searches in-process)."""
    from mofind.paths import default_index_dir

    from .query_remote import RemoteError, RemoteUnavailable, search_remote, server_address

    params = {"query": args.text, "k": args.k, "per_take": args.per_take, "mode": args.mode,
              "filters": _filters(args), "thumbnails": False}
    if args.names_weight is not None:
        params["names_weight"] = args.names_weight
    if args.no_relax:
        params["relax"] = False  # sent only when asked: a server older than the relaxation refuses the field
    try:
        result = search_remote(server_address(args.server), args.index or default_index_dir(), params,
                               explicit=args.server is not None)
    except RemoteUnavailable as exc:
        if args.server is not None:
            print(f"mofind query: {exc}", file=sys.stderr)
            return 2
        return None
    except RemoteError as exc:
        print(f"mofind query: {exc.message}", file=sys.stderr)
        return 2
    results = [{key: value for key, value in item.items() if key != "thumbnail"} for item in result["results"]]
    _print(args, results, result.get("quality") or {})
    return 0


def _print(args: argparse.Namespace, results: list[dict], quality: dict) -> None:
    if args.json:
        print(json.dumps({"results": results, "quality": quality}, indent=1))
        return
    print(quality.get("message", ""))
    if not results:
        print("no results")
    for rank, hit in enumerate(results, 1):
        confidence = hit.get("confidence")
        take = f" ({hit['take']})" if hit.get("take") else ""
        print(f"{rank:3d}. {hit['score']:.4f}  confidence {confidence if confidence is None else f'{confidence:.2f}'}  "
              f"{hit['source']}{take}  frames {hit['start_frame']}-{hit['end_frame']} @ {hit['fps']:g} fps  "
              f"[{', '.join(hit['labels'])}]  matched: {', '.join(hit.get('matched') or [])}")


def _run_local(args: argparse.Namespace) -> int:
    from mofind.index.encoders import ModelUnavailableError, load_encoder
    from mofind.index.manifest import IndexSpec, IndexStoreError
    from mofind.index.search import SearchError, Searcher
    from mofind.index.store import IndexReader
    from mofind.index.text_match import DEFAULT_NAMES_WEIGHT, MAX_NAMES_WEIGHT
    from mofind.paths import default_index_dir
    from mofind.quality.assess import MatchQuality
    from mofind.quality.relax import relax, relaxed_report, variant_runner

    filters = _filters(args)
    try:
        encoder = load_encoder(args.model, text_precision=args.text_precision)
        reader = IndexReader.open(args.index or default_index_dir(), IndexSpec.from_encoder(encoder))
        weight = DEFAULT_NAMES_WEIGHT if args.names_weight is None else args.names_weight
        if not 0.0 <= weight <= MAX_NAMES_WEIGHT:
            raise SearchError(f"--names-weight must be between 0 and {MAX_NAMES_WEIGHT:g}")
        searcher = Searcher(reader, encoder)
        hits = searcher.search(args.text, k=args.k, filters=filters, per_take=args.per_take, mode=args.mode,
                               names_weight=weight)
        judge = MatchQuality.for_model(encoder, args.model)
        quality = judge.assess(searcher, args.text, hits, filters=filters, mode=args.mode)
        if quality.no_good_match and not args.no_relax:
            relaxed = relax(args.text, hits, quality, variant_runner(
                searcher, judge, encoder.encode_texts, k=args.k, filters=filters, per_take=args.per_take,
                mode=args.mode, names_weight=weight))
            if relaxed is not None:
                hits, quality = relaxed.hits, relaxed_report(quality, relaxed)
    except (IndexStoreError, ModelUnavailableError, SearchError, ValueError) as exc:  # ValueError: model files
        print(f"mofind query: {exc}", file=sys.stderr)
        return 2
    _print(args, [hit.to_dict() for hit in hits], quality.to_dict())
    return 0
