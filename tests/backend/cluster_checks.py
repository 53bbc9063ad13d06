"""Runs inside a loopback-only network namespace (see test_cluster.py): a real 3-node Ray cluster on 127.0.0.1,
`mofind index --cluster`, a `mofind serve`-style backend whose search is sharded over Ray actors, and a shard
actor killed mid-service. Writes what it observed as JSON; test_cluster.py asserts on it.

usage: python cluster_checks.py OUT.json WORKDIR
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import traceback
from functools import partial
from pathlib import Path

import numpy as np

NODES = 3
TEXTS = ["a person waves with the left hand", "someone walks forward", "raise both arms above the head",
         "turn to the right", "idle", "wave"]  # with the tokens below: 4 encoded queries, 2 random token sets
QUERIES = ["a person waves with the left hand", "someone walks forward", "raise both arms above the head",
           "turn to the right"]


def main(out_path: str, workdir: str) -> None:
    work = Path(workdir)
    report: dict = {"steps": []}
    try:
        run_checks(work, report)
    except BaseException:  # noqa: BLE001 - the test reads the traceback from the report
        report["error"] = traceback.format_exc()
    Path(out_path).write_text(json.dumps(report, indent=1))


def step(report: dict, name: str) -> None:
    report["steps"].append([name, round(time.monotonic() - report.setdefault("_t0", time.monotonic()), 1)])
    print(f"[cluster_checks] {name}", flush=True)


def run_checks(work: Path, report: dict) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from fixtures.curve import make_keys
    from fixtures.synthetic import write_action_library
    from mofind.cli import main as mofind_main
    from mofind.index.build import build_index
    from mofind.index.cluster import ShardedSearcher, plan_shards
    from mofind.index.encoders import load_encoder
    from mofind.index.manifest import IndexSpec
    from mofind.index.search import Searcher
    from mofind.index.store import IndexReader
    from mofind.server.handlers import Backend
    from mofind.server.router import Server

    step(report, "start")
    model_dir = work / "model"  # empty: with MOFIND_TEST_RANDOM_MODEL=1 every process loads the same random model
    model_dir.mkdir(parents=True, exist_ok=True)
    encoder = load_encoder(model_dir)
    folder = work / "mocap"
    for seed in range(3):
        write_action_library(folder / f"bandai{seed}", kinds=("bandai",), seconds=6.0, seed=seed)
    write_action_library(folder / "cmu", kinds=("cmu",), actions=("walk", "wave_left", "raise_both"), seconds=2.0)
    (folder / "broken.bvh").write_bytes(b"HIERARCHY\nnot a bvh file")
    local_dir, cluster_dir = work / "local", work / "cluster"
    local = build_index([folder], local_dir, encoder, workers=0, commit_every=5)
    report["local_build"] = local.to_dict()
    step(report, "local index built")

    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False,
                                                            "node_ip_address": "127.0.0.1"})
    for _ in range(NODES - 1):
        cluster.add_node(num_cpus=1, node_ip_address="127.0.0.1")
    ray.init(address=cluster.address, log_to_driver=False)
    cluster.wait_for_nodes()
    report["nodes"] = sum(1 for node in ray.nodes() if node["Alive"])
    step(report, "cluster up")
    try:
        rc = mofind_main(["index", str(folder), "--index", str(cluster_dir), "--cluster", cluster.address,
                          "--model", str(model_dir), "--commit-every", "7", "--json"])
        report["cluster_index_rc"] = rc
        report["local_content"], report["cluster_content"] = index_content(local_dir), index_content(cluster_dir)
        step(report, "cluster index built")

        backend = Backend(local_dir, encoder, model_dir=model_dir,
                          searcher_factory=partial(ShardedSearcher, shards=NODES, timeout=60.0))
        sharded = backend.searcher
        reader = IndexReader.open(local_dir, IndexSpec.from_encoder(encoder))
        single = Searcher(reader)
        plan = plan_shards(reader.manifest.chunks, NODES)
        report["plan"] = [sorted(names) for names in plan]
        report["chunks"] = len(reader.chunks)
        report["windows"] = single.snapshot.num_windows
        report["shard_nodes"] = shard_nodes(sharded)
        tokens = [t for t, _ in encoder.encode_texts(QUERIES)]
        rng = np.random.default_rng(7)
        tokens += [unit(rng.standard_normal((5, tokens[0].shape[1]))) for _ in range(2)]
        cases = {"exact": dict(mode="exact"), "auto": dict(mode="auto"),
                 "two_stage": dict(mode="two_stage", candidates=10),
                 "two_stage_per_take": dict(mode="two_stage", candidates=10, per_take=2),
                 "exact_filtered": dict(mode="exact", filters={"skeleton": "cmu_bvh"}),
                 "two_stage_filtered": dict(mode="two_stage", candidates=8,
                                            filters={"path_prefix": str(folder / "bandai1")}),
                 "exact_names": dict(mode="exact", texts=TEXTS, names_weight=0.25),
                 "two_stage_names": dict(mode="two_stage", candidates=10, texts=TEXTS, names_weight=0.25),
                 "two_stage_names_heavy": dict(mode="two_stage", candidates=10, texts=TEXTS, names_weight=2.0)}
        report["compare"] = {name: compare(single, sharded, tokens, args) for name, args in cases.items()}
        report["shard_local_shortlist"] = shard_local_shortlist(local_dir, reader.generation, tokens)
        step(report, "sharded == single compared")

        keys = make_keys(work / "keys")
        report["server"] = through_zeromq(Server, backend, QUERIES[0], keys, follow_up=True)
        step(report, "zeromq")
        report["sockets"] = subprocess.run(["ss", "-tunap"], capture_output=True, text=True).stdout
        report["listening"] = subprocess.run(["ss", "-tnlp"], capture_output=True, text=True).stdout

        pids = sharded.shard_pids()
        victim = 1
        os.kill(pids[victim], signal.SIGKILL)
        killed_at = time.monotonic()
        step(report, "shard killed")
        during = sharded.search_tokens(tokens, k=5, mode="exact")
        offline = sharded.offline_summary()
        alive_chunks = set().union(*(plan[s] for s in range(NODES) if s != victim))
        rest = Searcher(IndexReader.open(local_dir, only=alive_chunks)).search_tokens(tokens, k=5, mode="exact")
        report["gap"] = {"offline": offline, "victim_chunks": sorted(plan[victim]),
                         "hits": [[hit_key(h) for h in q] for q in during],
                         "rest_hits": [[hit_key(h) for h in q] for q in rest],
                         "victim_clips": sum(e.clips for e in reader.manifest.chunks if e.name in plan[victim]),
                         "victim_windows": sum(e.windows for e in reader.manifest.chunks if e.name in plan[victim])}
        report["gap"]["reply"] = through_zeromq(Server, backend, QUERIES[1], keys, exact=True)
        deadline = killed_at + 150
        while time.monotonic() < deadline:
            after = sharded.search_tokens(tokens, k=5, mode="exact")
            if sharded.offline_summary() is None:
                break
            time.sleep(2)
        report["recovered_after_s"] = round(time.monotonic() - killed_at, 1)
        report["after"] = {"complete": sharded.last_search_complete,
                           "pids": sharded.shard_pids(), "old_pid": pids[victim],
                           "equal": [[hit_key(h) for h in q] for q in after]
                           == [[hit_key(h) for h in q] for q in single.search_tokens(tokens, k=5, mode="exact")]}
        step(report, "recovered")

        # the index changes under a running server (an index_add job commits): the shards follow
        write_action_library(folder / "later", kinds=("zup",), actions=("walk", "wave_right"), seconds=6.0)
        build_index([folder / "later"], local_dir, encoder, workers=0)
        sharded.refresh()
        now = Searcher(IndexReader.open(local_dir))
        report["after_commit"] = {
            "generation": [reader.generation, now.reader.generation],
            "single": [[hit_key(h) for h in q] for q in now.search_tokens(tokens, k=5, mode="exact")],
            "sharded": [[hit_key(h) for h in q] for q in sharded.search_tokens(tokens, k=5, mode="exact")],
            "complete": sharded.last_search_complete}
        later = {"path_prefix": str(folder / "later")}
        report["after_commit"]["later_single"] = [[hit_key(h) for h in q] for q in
                                                  now.search_tokens(tokens, k=5, mode="exact", filters=later)]
        report["after_commit"]["later_sharded"] = [[hit_key(h) for h in q] for q in
                                                   sharded.search_tokens(tokens, k=5, mode="exact", filters=later)]
        step(report, "followed a commit")
        backend.stop()
        sharded.shutdown()

        # `mofind serve --cluster ADDRESS` as the command line wires it: one shard per node by default
        import argparse

        from mofind.commands import serve

        parser = argparse.ArgumentParser()
        serve.add_arguments(parser)
        args = parser.parse_args(["--index", str(local_dir), "--cluster", cluster.address])
        _cluster_searcher = serve._cluster_searcher
        served = _cluster_searcher(args)(IndexReader.open(local_dir))
        report["cli"] = {"shards": served.count,
                         "equal": [[hit_key(h) for h in q] for q in served.search_tokens(tokens, k=5, mode="exact")]
                         == report["after_commit"]["single"], "complete": served.last_search_complete}
        served.shutdown()
        step(report, "serve --cluster wiring")
    finally:
        ray.shutdown()
        cluster.shutdown()
        step(report, "cluster down")


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def hit_key(hit) -> list:
    """What a client sees of a hit: the score as the protocol rounds it (6 decimals). Finer digits may differ: name
    fusion's float32 text cosines come from a matrix product over the shard's takes instead of all takes."""
    return [hit.clip_id, hit.start_frame, hit.end_frame, hit.to_dict()["score"], hit.matched]


def compare(single, sharded, tokens, args: dict) -> dict:
    want = single.search_tokens(tokens, k=5, **args)
    got = sharded.search_tokens(tokens, k=5, **args)
    return {"single": [[hit_key(h) for h in q] for q in want], "sharded": [[hit_key(h) for h in q] for q in got],
            "complete": sharded.last_search_complete}


def shard_local_shortlist(folder: Path, generation: int, tokens) -> list:
    """What the "two_stage" case would give if each shard shortlisted its own best C windows (no global cut):
    the same shard code, in this process, merged by score."""
    from mofind.index.cluster import ShardServer

    shards = [ShardServer(str(folder), s, NODES) for s in range(NODES)]
    out = []
    for query in tokens:
        hits = [h for shard in shards for h in
                shard._at(generation).search_tokens([query], k=5, mode="two_stage", candidates=10)[0]]
        out.append([hit_key(h) for h in sorted(hits, key=lambda h: -h.score)[:5]])
    return out


def shard_nodes(sharded) -> list[str]:
    import ray

    return [ray.get(actor.__ray_call__.remote(lambda self: ray.get_runtime_context().get_node_id()))
            for actor in sharded.actors]


def index_content(folder: Path) -> dict:
    """source -> record fields and per window (start, source frames, packed codes as hex)."""
    from mofind.index.store import IndexReader

    reader = IndexReader.open(folder)
    out = {}
    for record in reader.clips():
        data = record.to_dict()
        windows = []
        for ref in reader.windows(record.clip_id):
            windows.append([ref.start, ref.source_start, ref.source_end,
                            np.asarray(ref.chunk.window_packed(ref.index)).tobytes().hex()])
        out[record.clip_id] = {"record": {k: data[k] for k in ("source", "content_hash", "frame_range", "num_frames",
                                                              "duration", "skeleton", "labels", "take")},
                               "windows": windows}
    return out


def through_zeromq(server_class, backend, query: str, keys, exact: bool = False, follow_up: bool = False) -> dict:
    """A search over a real loopback DEALER socket with CurveZMQ, as the Blender add-on sends it; with `follow_up`
    also similar, explain and get_motion on its best take (they run on the server node, from the shared index)."""
    import zmq

    server = server_class(backend, "tcp://127.0.0.1:0", workers=2, security=keys.security)
    endpoint = server.start()
    context = zmq.Context()
    socket = context.socket(zmq.DEALER)
    socket.setsockopt(zmq.LINGER, 0)
    for name, value in keys.client_options.items():
        setattr(socket, name, value)
    socket.connect(endpoint)
    try:
        params = {"query": query, "k": 5, "thumbnails": False} | ({"mode": "exact"} if exact else {})
        header = _call(socket, "search", params)
        out = {"endpoint": endpoint, "header": header}
        if follow_up and header.get("ok"):
            best = header["result"]["results"][0]
            out["similar"] = _call(socket, "similar", {"clip_id": best["clip_id"], "k": 3, "thumbnails": False})
            out["explain"] = _call(socket, "explain", {"query": query, "clip_id": best["clip_id"]})
            out["get_motion"] = _call(socket, "get_motion", {"clip_id": best["clip_id"]})
        return out
    finally:
        socket.close(0)
        context.term()
        server.stop()
        server.join(10)


def _call(socket, method: str, params: dict) -> dict:
    socket.send_multipart([json.dumps({"v": 1, "id": method, "method": method, "params": params}).encode()])
    if not socket.poll(120_000):
        return {"error": "no reply"}
    return json.loads(socket.recv_multipart()[0])


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
