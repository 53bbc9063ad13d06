"""Sharded (Ray actors on 2 and 4 Ray nodes of this machine) against single-process search throughput, and
`mofind index --cluster` (Ray Data over the same nodes) against single-process bulk indexing.

Measured side by side in one run on one synthetic index (unit-vector windows in several chunks): the same
pre-encoded queries are sent by CLIENTS concurrent threads to a single-process `Searcher` and to a
`ShardedSearcher` over 2 and then 4 local Ray nodes (num_cpus=1 each), in exact and two-stage mode; the
sharded answers must equal the single-process ones (a mismatch fails the benchmark). The throughput ratio says
what the scatter-gather costs or gains on this machine; on a 2-core machine 2 or 4 nodes share the same two
cores, so a ratio near 1 means the overhead is small, and gains need more cores or machines.

Bulk indexing: INDEX_FILES Bandai takes (shared/, the same files for every row) are indexed by `build_index`
in this process and by `build_index_on_cluster` on 2 and then 4 nodes; the cluster's index must hold the same
clips with the same stored codes (a mismatch fails the benchmark). Rows say takes/s and the ratio; no floor:
on 2 cores the cluster's workers share the cores the single process had, plus Ray Data's start-up.

Every Ray process runs in a loopback-only network namespace (`unshare --net`): `run()` re-executes this module
inside one. Target: throughput ratio >= RATIO_FLOOR for every sharded row (the scatter-gather overhead stays
bounded), and identical results.

    python -m bench.bench_cluster [--windows 8000] [--queries 48]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
# Sharded throughput at least a quarter of single-process when 2 or 4 nodes share this machine's cores: the
# scatter-gather (pickling tokens and hits, one or two Ray round trips per query) must stay a bounded overhead.
RATIO_FLOOR = 0.25
CLIENTS = 4
WINDOWS_PER_CLIP = 4
CLIPS_PER_CHUNK = 250
INDEX_FILES = 120
#: Queries timed per backend and mode. At 12 the single-process two-stage run took ~60 ms and the ratios moved
#: with the first queries' start-up: the same code gave 4-node two-stage ratios 0.212-0.221 at 12 and 0.322 at 48;
#: the code before it 0.385-0.452 at 12 and 0.392 at 48 (AMD EPYC, 2 vCPUs, 2026-12-04).
QUERIES = 48


def run(windows: int = 8000, queries: int = QUERIES) -> list[dict]:
    """Rows of the table; a missed target is a row with `ok` False (`run_all` fails on it, and keeps the table)."""
    prefix = _namespace_prefix()
    if prefix is None:
        raise RuntimeError("cannot create a loopback-only network namespace (unshare --net); Ray is not started "
                           "outside one on shared machines")
    with tempfile.TemporaryDirectory(prefix="mofind-bench-cluster-") as folder:
        out = Path(folder) / "rows.json"
        env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "backend"), str(ROOT)]),
               "RAY_USAGE_STATS_ENABLED": "0"}
        command = f"ip link set lo up && exec {sys.executable} -m bench.bench_cluster --inside {out} " \
                  f"--windows {windows} --queries {queries}"
        proc = subprocess.run(prefix + ["sh", "-c", command], cwd=ROOT, env=env, capture_output=True, text=True,
                              timeout=1800)
        if not out.exists():
            raise RuntimeError(f"the cluster benchmark wrote nothing (exit {proc.returncode}): {proc.stderr[-2000:]}")
        return json.loads(out.read_text())


def _namespace_prefix() -> list[str] | None:
    if shutil.which("unshare") is None:
        return None
    for prefix in (["unshare", "--net"], ["unshare", "--user", "--map-root-user", "--net"]):
        if subprocess.run(prefix + ["sh", "-c", "ip link set lo up"], capture_output=True).returncode == 0:
            return prefix
    return None


def _index(folder: Path, windows: int):
    from mofind.index.manifest import IndexSpec
    from mofind.index.store import ClipRecord, IndexReader, IndexWriter, WindowEmbedding, clip_id_for
    from mofind.model.inference import Encoder

    spec = IndexSpec.from_encoder(Encoder.random("compact"))
    rng = np.random.default_rng(0)
    patches = spec.num_patches
    with IndexWriter(folder, spec) as writer:
        for clip in range(windows // WINDOWS_PER_CLIP):
            source = f"/synthetic/clip_{clip:06d}.bvh"
            record = ClipRecord(clip_id=clip_id_for(source), source=source, content_hash=str(clip), size=0,
                                mtime_ns=0, format="bvh", frame_range=(0, 360), source_fps=30.0, num_frames=240,
                                duration=12.0, skeleton="synthetic", labels=["synthetic"])
            vectors = rng.standard_normal((WINDOWS_PER_CLIP * patches, spec.dim), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            writer.add(record, [WindowEmbedding(48 * w, 72 * w, 72 * w + 144, vectors[w * patches:(w + 1) * patches],
                                                np.ones(patches, bool)) for w in range(WINDOWS_PER_CLIP)])
            if writer.pending_count >= CLIPS_PER_CHUNK:
                writer.commit()
    return IndexReader.open(folder), spec


def _throughput(searcher, tokens: list[np.ndarray], mode: str) -> tuple[float, list]:
    """Queries per second with CLIENTS threads sending the queries concurrently; and the answers in order."""
    searcher.search_tokens([tokens[0]], k=10, mode=mode)  # warm: caches, actor imports
    answers: list = [None] * len(tokens)
    position = iter(range(len(tokens)))
    lock = threading.Lock()

    def client():
        while True:
            with lock:
                i = next(position, None)
            if i is None:
                return
            answers[i] = [(h.clip_id, h.start_frame, round(h.score, 9)) for h in
                          searcher.search_tokens([tokens[i]], k=10, mode=mode)[0]]

    started = time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return len(tokens) / (time.perf_counter() - started), answers


def inside(out: Path, windows: int, queries: int) -> None:
    import ray
    import torch
    from ray.cluster_utils import Cluster

    from mofind.index.cluster import ShardedSearcher
    from mofind.index.search import Searcher

    torch.set_num_threads(1)  # as `mofind serve` (--threads 1): requests run in parallel threads
    folder = Path(tempfile.mkdtemp(prefix="mofind-bench-index-"))
    reader, spec = _index(folder, windows)
    rng = np.random.default_rng(1)
    tokens = [(lambda x: x / np.linalg.norm(x, axis=1, keepdims=True))(
        rng.standard_normal((10, spec.dim)).astype(np.float32)) for _ in range(queries)]
    cpu = _cpu_name()
    setting = f"{windows:,} windows in {len(reader.chunks)} chunks, {CLIENTS} concurrent clients, {cpu}"
    single = Searcher(reader)
    rows, baseline, truth = [], {}, {}
    for mode in ("exact", "two_stage"):
        single.warm(mode)
        baseline[mode], truth[mode] = _throughput(single, tokens, mode)
        rows.append({"measure": "search throughput", "setting": setting, "backend": "single process",
                     "mode": mode, "qps": round(baseline[mode], 2), "ratio_vs_single": 1.0})
    single_index = _bulk_index_single()
    rows.append(single_index["row"])
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "node_ip_address": "127.0.0.1"})
    try:
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
        ray.init(address=cluster.address, log_to_driver=False)
        for nodes in (2, 4):
            while len(cluster.list_all_nodes()) < nodes:
                cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
            cluster.wait_for_nodes()
            sharded = ShardedSearcher(reader, shards=nodes, timeout=600.0)
            for mode in ("exact", "two_stage"):
                sharded.warm(mode)
                qps, answers = _throughput(sharded, tokens, mode)
                ratio = qps / baseline[mode]
                rows.append({"measure": "search throughput", "setting": setting,
                             "backend": f"{nodes} Ray nodes, {nodes} shard actors", "mode": mode,
                             "qps": round(qps, 2), "ratio_vs_single": round(ratio, 3),
                             "same_results": answers == truth[mode],
                             "target": f"ratio >= {RATIO_FLOOR}, same results",
                             "ok": ratio >= RATIO_FLOOR and answers == truth[mode]})
            sharded.shutdown()
            rows.append(_bulk_index_row(single_index, nodes))
    finally:
        ray.shutdown()
        cluster.shutdown()
        shutil.rmtree(folder, ignore_errors=True)
    out.write_text(json.dumps(rows))


def _bulk_index_single() -> dict:
    """Index INDEX_FILES real takes in this process (as `mofind index`): the baseline of the cluster rows."""
    from bench.bench_index import bandai_files, encoder
    from mofind.index.build import build_index, default_workers

    try:
        files = bandai_files(INDEX_FILES)
    except (FileNotFoundError, OSError) as exc:
        return {"files": None, "row": {"measure": "bulk indexing", "backend": "single process",
                                       "note": f"not measured: the Bandai takes are not here ({exc})"}}
    model = encoder()
    folder = Path(tempfile.mkdtemp(prefix="mofind-bench-bulk-"))
    report = build_index(files, folder / "single", model, workers=default_workers())
    rate = report.seconds_of_motion / 10.0 / report.elapsed
    return {"files": files, "model": model, "folder": folder, "rate": rate, "codes": _stored_codes(folder / "single"),
            "row": {"measure": "bulk indexing", "setting": f"{len(files)} Bandai takes, {report.windows} windows",
                    "backend": f"single process, {default_workers()} parse worker(s)",
                    "takes_per_s": round(rate, 2), "ratio_vs_single": 1.0, "unit": "ten-second takes/s"}}


def _bulk_index_row(single: dict, nodes: int) -> dict:
    """The same files indexed with `mofind index --cluster` on the running `nodes`-node cluster."""
    if single["files"] is None:
        return {"measure": "bulk indexing", "backend": f"{nodes} Ray nodes", "note": single["row"]["note"]}
    from mofind.index.cluster_build import build_index_on_cluster, default_cluster_workers

    workers = default_cluster_workers()[0]
    report = build_index_on_cluster(single["files"], single["folder"] / f"cluster-{nodes}", single["model"])
    rate = report.seconds_of_motion / 10.0 / report.elapsed
    same = _stored_codes(single["folder"] / f"cluster-{nodes}") == single["codes"]
    return {"measure": "bulk indexing", "setting": single["row"]["setting"],
            "backend": f"{nodes} Ray nodes, {workers} Ray Data worker(s)", "takes_per_s": round(rate, 2),
            "ratio_vs_single": round(rate / single["rate"], 3), "unit": "ten-second takes/s", "same_index": same,
            "target": "the same clips and codes", "ok": same}


def _stored_codes(folder: Path) -> dict:
    """clip id -> its windows' packed patch codes as bytes: what two builds of the same files must share."""
    from mofind.index.store import IndexReader

    reader = IndexReader.open(folder)
    return {record.clip_id: [(ref.start, ref.chunk.window_packed(ref.index).tobytes())
                             for ref in reader.windows(record.clip_id)] for record in reader.clips()}


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} x{os.cpu_count()}"
    except OSError:
        pass
    return f"{os.cpu_count()} CPUs"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--inside", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--windows", type=int, default=8000)
    parser.add_argument("--queries", type=int, default=QUERIES)
    args = parser.parse_args()
    if args.inside is not None:
        sys.path.insert(0, str(ROOT / "backend"))
        inside(args.inside, args.windows, args.queries)
    else:
        sys.path.insert(0, str(ROOT / "backend"))
        from bench.run_all import print_stage

        sys.exit(print_stage(lambda: run(args.windows, args.queries)))
