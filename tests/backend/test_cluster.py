"""Many machines on Ray: a real 3-node Ray cluster (ray.cluster_utils.Cluster, num_cpus=1 per node) on 127.0.0.1.

Ray has been seen to bind the machine's own address even when told 127.0.0.1, so every Ray process runs in a
network namespace with only a loopback interface: the checks run once per module in `cluster_checks.py`,
re-executed under `unshare --net` (root, or an unprivileged user namespace), and this file asserts on what it
observed: sockets, `mofind index --cluster` against local indexing, sharded against single-machine search
(exact, auto and two-stage, with filters and per_take), a ZeroMQ reply from the sharded backend, and a shard actor
killed with SIGKILL (the reply names the part not searched; once Ray restarts the actor the results are complete).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("ray", reason="the cluster extra is not installed (pip install -r requirements-cluster.txt)")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install -r requirements-cluster.txt)")

from mofind.index.cluster import plan_shards  # noqa: E402
from mofind.index.manifest import ChunkEntry  # noqa: E402

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
LOOPBACK = re.compile(r"^(127\.0\.0\.1|\[::1\]|\[::ffff:127\.0\.0\.1\]|::1):\d+$")


def _namespace_command() -> list[str] | None:
    """How to run a command in a fresh loopback-only network namespace here (None: not permitted)."""
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return None
    for prefix in (["unshare", "--net"], ["unshare", "--user", "--map-root-user", "--net"]):
        probe = subprocess.run(prefix + ["sh", "-c", "ip link set lo up"], capture_output=True)
        if probe.returncode == 0:
            return prefix
    return None


@pytest.fixture(scope="module")
def observed(tmp_path_factory) -> dict:
    prefix = _namespace_command()
    if prefix is None:
        pytest.skip("cannot create a loopback-only network namespace here (unshare --net not permitted); "
                    "Ray is never started outside one in tests")
    work = tmp_path_factory.mktemp("cluster")
    out = work / "observed.json"
    env = {**os.environ, "MOFIND_TEST_RANDOM_MODEL": "1", "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join([str(REPO / "backend"), str(REPO / "tests")])}
    script = f"ip link set lo up && exec {sys.executable} {REPO / 'tests' / 'backend' / 'cluster_checks.py'} " \
             f"{out} {work}"
    proc = subprocess.run(prefix + ["sh", "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert out.exists(), f"the cluster checks wrote nothing (exit {proc.returncode}):\n{proc.stderr[-4000:]}"
    report = json.loads(out.read_text())
    assert "error" not in report, report["error"]
    return report


def test_plan_spreads_chunks_by_windows_and_uses_every_chunk_once():
    entries = [ChunkEntry(f"c{i}", 1, windows, 0) for i, windows in enumerate([50, 40, 30, 20, 10, 10, 5])]
    plan = plan_shards(entries, 3)
    assert sorted(name for shard in plan for name in shard) == sorted(e.name for e in entries)
    loads = [sum(e.windows for e in entries if e.name in shard) for shard in plan]
    assert max(loads) - min(loads) <= 10
    assert plan == plan_shards(list(reversed(entries)), 3)  # the server and each actor agree, whatever the order


def test_every_socket_ray_opened_is_on_loopback(observed):
    assert observed["nodes"] == 3
    lines = [line.split() for line in observed["sockets"].splitlines()[1:] if line.strip()]
    assert any("raylet" in line[-1] for line in lines if len(line) > 6)  # the listing did see Ray's processes
    for line in lines:
        local, peer = line[4], line[5]
        assert LOOPBACK.match(local), f"a socket outside loopback: {' '.join(line)}"
        assert peer.endswith(":*") or LOOPBACK.match(peer), f"a connection outside loopback: {' '.join(line)}"


def test_index_on_cluster_gives_the_same_index_as_local_indexing(observed):
    local, cluster = observed["local_content"], observed["cluster_content"]
    assert observed["cluster_index_rc"] == 1  # the broken file is reported, like a local run reports it
    assert observed["local_build"]["failed"] and len(local) == observed["local_build"]["indexed"] > 20
    assert cluster.keys() == local.keys()
    for clip_id, want in local.items():
        assert cluster[clip_id]["record"] == want["record"]
        assert cluster[clip_id]["windows"] == want["windows"]  # same frames, same packed codes


def test_shards_live_on_different_nodes(observed):
    assert len(set(observed["shard_nodes"])) == 3
    assert all(observed["plan"]) and observed["chunks"] >= 3


@pytest.mark.parametrize("case", ["exact", "auto", "two_stage", "two_stage_per_take", "exact_filtered",
                                  "two_stage_filtered", "exact_names", "two_stage_names", "two_stage_names_heavy"])
def test_sharded_search_equals_single_machine_search(observed, case):
    compared = observed["compare"][case]
    assert compared["complete"]
    assert any(compared["single"])
    assert compared["sharded"] == compared["single"]  # same takes, frames, scores and `matched`


def test_two_stage_cases_would_catch_shard_local_shortlists(observed):
    """Each shard keeping its own best C first-stage windows (instead of the global cut) gives other answers on
    this index, so the two-stage equality above really tests the cut."""
    assert observed["shard_local_shortlist"] != observed["compare"]["two_stage"]["single"]


def test_name_fusion_cases_do_fuse(observed):
    """The take names change the ranking in the fused cases, so their equality above tests the fusion path."""
    plain, fused = observed["compare"]["two_stage"]["single"], observed["compare"]["two_stage_names_heavy"]["single"]
    assert plain != fused
    assert any("name" in hit[4] for query in fused for hit in query)


def test_zeromq_search_similar_explain_get_motion_through_the_sharded_backend(observed):
    header = observed["server"]["header"]
    assert header["ok"], header
    assert len(header["result"]["results"]) == 5
    assert "offline" not in (header.get("meta") or {})
    server = observed["server"]
    best = header["result"]["results"][0]["clip_id"]
    similar = server["similar"]
    assert similar["ok"] and similar["result"]["results"] and \
        best not in [hit["clip_id"] for hit in similar["result"]["results"]]
    assert server["explain"]["ok"] and server["explain"]["result"]["clip_id"] == best
    assert server["get_motion"]["ok"] and server["get_motion"]["result"]["clip_id"] == best


def test_a_killed_shard_is_named_in_replies_and_results_are_complete_after_restart(observed):
    gap = observed["gap"]
    offline = gap["offline"]
    assert offline is not None, "the search right after the kill did not notice the lost shard"
    assert sorted(offline["chunks"]) == gap["victim_chunks"]
    assert (offline["clips"], offline["windows"]) == (gap["victim_clips"], gap["victim_windows"])
    assert offline["shards"] == [2] and "shard 2 of 3" in offline["reasons"][0]
    assert gap["hits"] == gap["rest_hits"]  # exactly the single-machine answer over the shards still up
    reply = gap["reply"]["header"]
    if reply.get("meta"):  # the ZeroMQ reply came during the gap: it carries the same summary
        assert reply["meta"]["offline"]["chunks"] == offline["chunks"]
    after = observed["after"]
    assert after["complete"] and after["equal"]
    assert after["old_pid"] not in after["pids"] and None not in after["pids"]  # Ray started a new actor


def test_shards_follow_a_commit_made_while_serving(observed):
    followed = observed["after_commit"]
    assert followed["generation"][1] > followed["generation"][0]
    assert followed["complete"] and followed["sharded"] == followed["single"]
    assert all(len(query) == 2 for query in followed["later_single"])  # the two takes committed while serving
    assert followed["later_sharded"] == followed["later_single"]


def test_serve_cluster_command_line_shards_one_per_node(observed):
    assert observed["cli"] == {"shards": 3, "equal": True, "complete": True}
