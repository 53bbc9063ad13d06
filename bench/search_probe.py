"""One searcher process, measured from the outside in: what `bench_index` runs per index size.

Runs in its own process so that resident memory and peak memory per query are this search's alone (the
parent has a model, other indexes, page cache of its own). Prints one JSON object:
  kernel, windows, resident_bytes (RSS after opening + warming, minus RSS before opening),
  peak_query_bytes (largest rise of the high-water mark above the warm RSS during one query),
  latency_ms {mode: [per query]}, recall (two-stage top-10 takes vs exact, per query),
  rss_after_exact, bandwidth_gbps (read bandwidth measured here, on as many threads as the searcher's),
  first_stage {ms, bytes: the coarse-table kernel alone and the table it reads; cascade_ms: coarse +
  32-vector middle stage}.
Searches as `mofind serve` does: when TOKENS.npz also holds the prompts (`texts`), take names and labels are fused
in at the server's default weight, in the timed searches and in the exact ground truth of the recall alike.

    python -m bench.search_probe INDEX TOKENS.npz [--exact-repeats 5] [--recall]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))


def status_kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reset_peak() -> None:
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")  # resets VmHWM to the current RSS (Linux >= 4.0)
    except OSError:
        pass


def read_bandwidth_gbps(threads: int = 1, megabytes: int = 512, repeats: int = 3) -> float:
    """Streaming read rate of `threads` threads (numpy's max releases the GIL), each over its own slice of an
    int64 array far larger than the caches: the limit for a kernel that reads its table on as many threads."""
    from concurrent.futures import ThreadPoolExecutor

    data = np.ones(megabytes * (1 << 20) // 8, np.int64)
    parts = np.array_split(data, threads)
    best = float("inf")
    with ThreadPoolExecutor(threads) as pool:
        for _ in range(repeats):
            started = time.perf_counter()
            list(pool.map(np.max, parts))
            best = min(best, time.perf_counter() - started)
    return data.nbytes / best / 1e9


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("index", type=Path)
    parser.add_argument("tokens", type=Path)
    parser.add_argument("--repeats", type=int, default=20, help="two-stage queries timed")
    parser.add_argument("--exact-repeats", type=int, default=5)
    parser.add_argument("--recall", action="store_true")
    parser.add_argument("--recall-queries", type=int, default=None,
                        help="queries whose exact ground truth is computed (one batched exact pass)")
    parser.add_argument("--cache-bytes", type=int, default=None)
    parser.add_argument("--search-threads", type=int, default=None, help="default: as `mofind serve` (Searcher's)")
    args = parser.parse_args()

    import torch

    torch.set_num_threads(1)  # what `mofind serve` runs with (and its default search threads: Searcher's default)
    from mofind.index.linalg import limit_blas_threads

    limit_blas_threads(1)  # numpy's BLAS as `mofind serve --threads 1` holds it (no threadpoolctl call a product)
    from mofind.index.search import DEFAULT_CACHE_BYTES, Searcher
    from mofind.index.store import IndexReader

    stored = np.load(args.tokens)
    tokens = [stored[f"q{i}"] for i in range(sum(name.startswith("q") for name in stored.files))]
    from mofind.index.text_match import DEFAULT_NAMES_WEIGHT, fuse

    texts = [str(text) for text in stored["texts"]] if "texts" in stored.files else None
    weight = DEFAULT_NAMES_WEIGHT if texts else 0.0

    base = status_kib("VmRSS")
    opened = time.perf_counter()
    reader = IndexReader.open(args.index)
    searcher = Searcher(reader, cache_bytes=DEFAULT_CACHE_BYTES if args.cache_bytes is None else args.cache_bytes,
                        threads=args.search_threads)

    def served(q: int, mode: str):
        """Query q as the server searches it (names fused when the prompts are known)."""
        return searcher.search_tokens([tokens[q]], k=10, mode=mode, texts=[texts[q]] if texts else None,
                                      names_weight=weight)[0]

    bandwidth = read_bandwidth_gbps(searcher.threads)  # as many readers as the kernel below has
    searcher.warm("two_stage")
    open_s = time.perf_counter() - opened
    windows = searcher.snapshot.num_windows
    allowed = searcher.snapshot.all_windows  # what a search without filters passes (`allowed_windows`)
    # the first-stage kernel alone, one query: it reads the coarse table (and nothing else) for every window;
    # the whole first stage (coarse + the 32-vector middle stage) is timed separately. Over as many queries as the
    # latency rows: a median of 5 moved 0.39-0.50 ms at 10k between runs of the same code
    from mofind.index.search import _QueryBatch

    first, cascade = [], []
    for query in tokens[:args.repeats]:
        batch = _QueryBatch([query], searcher.reader, searcher.kernel)
        started = time.perf_counter()
        searcher.coarse_scores(searcher.snapshot, allowed, batch)
        first.append(time.perf_counter() - started)
        started = time.perf_counter()
        searcher.first_stage_scores([query], allowed)
        cascade.append(time.perf_counter() - started)
    table_bytes = sum(scan.resident_bytes() for scan in searcher.snapshot.scans)
    warm = status_kib("VmRSS")
    latency: dict[str, list[float]] = {"two_stage": [], "exact": []}
    peak = 0
    staged_hits = []
    served(0, "two_stage")
    for q in range(min(args.repeats, len(tokens))):
        before = status_kib("VmRSS")
        reset_peak()
        started = time.perf_counter()
        staged_hits.append(served(q, "two_stage"))
        latency["two_stage"].append((time.perf_counter() - started) * 1000)
        peak = max(peak, status_kib("VmHWM") - before)
    rss_two_stage = status_kib("VmRSS")
    for q in range(min(args.exact_repeats, len(tokens))):
        started = time.perf_counter()
        served(q, "exact")
        latency["exact"].append((time.perf_counter() - started) * 1000)
    rss_exact = status_kib("VmRSS")
    recall = []
    if args.recall:
        count = min(len(tokens), args.repeats, args.recall_queries or args.repeats)
        scores = searcher.score_windows(tokens[:count], allowed, mode="exact")  # one pass for all queries
        # the names fused as `search_tokens` fuses them (exact scores: nothing to rescue)
        scores = fuse(searcher, searcher.snapshot, allowed, scores, tokens[:count], texts[:count] if texts else None,
                      weight, 10, "exact")[0]
        for q in range(count):
            truth = {h.clip_id for h in searcher._top_takes(searcher.snapshot, allowed, scores[:, q], 10, 1)}
            recall.append(len(truth & {h.clip_id for h in staged_hits[q]}) / 10)
    print(json.dumps({
        "kernel": searcher.kernel_info(), "windows": windows, "threads": searcher.threads, "open_s": open_s,
        "resident_bytes": (warm - base) * 1024, "rss_bytes": warm * 1024, "rss_after_two_stage": rss_two_stage * 1024,
        "rss_after_exact": rss_exact * 1024, "peak_rss_bytes": status_kib("VmHWM") * 1024,
        "peak_query_bytes": peak * 1024, "latency_ms": latency, "recall": recall,
        "bandwidth_gbps": bandwidth, "first_stage": {"ms": float(np.median(first) * 1000), "bytes": table_bytes,
                        "cascade_ms": float(np.median(cascade) * 1000)},
        "query_rows": [int(len(t)) for t in tokens[:args.repeats]], "names_weight": weight,
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
