"""Add-on benchmarks (run with a bpy venv's Python): search round trip and clip apply time.

- Round trip from the add-on's own client to a real `mofind serve` (synthetic BVH library indexed with
  `mofind index`; the shipped model when present, else the seeded random test model): `ping` (transport
  only), `search` k=10 (text encoding + MaxSim on the server + thumbnails), and the `mofind.search`
  operator (the same plus filling the results list and loading thumbnails).
- Apply: F's `retarget.apply.apply_clip` for a 10-second 30 fps take on a 65-bone rig (target <= 0.5 s),
  and the `mofind.apply_clip` operator end to end (get_motion of a 10 s take + decode + retarget + keys +
  one undo step).

    .venv-bpy42/bin/python -m bench.bench_addon [--queries 30] [--applies 5]
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TARGET_APPLY_S = 0.5
QUERIES = ["a person raises the left hand", "someone walks forward", "a person waves with the right hand",
           "raise both arms above the head", "a person turns left while walking", "someone stands still"]
REPO_MODULE = "mofind_bench"
ADDON_MODULE = f"bl_ext.{REPO_MODULE}.mofind"


def _percentiles(samples_s: list[float]) -> dict:
    ordered = sorted(samples_s)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": 1000 * statistics.median(ordered), "p95_ms": 1000 * p95, "n": len(ordered)}


def _enable_addon(bpy, workdir: Path):
    """Enable blender_addon/ the way Blender enables an extension (a local repo linking the working tree)."""
    repo_dir = workdir / "extensions"
    repo_dir.mkdir()
    (repo_dir / "mofind").symlink_to(ROOT / "blender_addon", target_is_directory=True)
    bpy.context.preferences.extensions.repos.new(name=REPO_MODULE, module=REPO_MODULE,
                                                 custom_directory=str(repo_dir), source="USER")
    assert bpy.ops.preferences.addon_enable(module=ADDON_MODULE) == {"FINISHED"}
    return sys.modules[f"{ADDON_MODULE}.service"].get()


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def run(queries: int = 30, applies: int = 5) -> list[dict]:
    workdir = Path(tempfile.mkdtemp(prefix="mofind-bench-addon-"))
    os.environ.setdefault("BLENDER_USER_RESOURCES", str(workdir / "blender-user"))
    sys.path.insert(0, str(ROOT / "tests"))
    import bpy

    from addon_bpy import rigs
    from addon_bpy.backend_process import ServedBackend, build_index, write_library

    library = workdir / "library"
    write_library(library / "short", kinds=("bandai", "cmu"), seconds=3.0)
    write_library(library / "long", kinds=("bandai",), actions=("walk",), seconds=10.0)
    build_index(library, workdir / "index")
    served = ServedBackend(workdir / "index", workdir)
    rows: list[dict] = []
    try:
        service = _enable_addon(bpy, workdir)
        prefs = bpy.context.preferences.addons[ADDON_MODULE].preferences
        prefs.address, prefs.timeout, prefs.retries = served.address, 120.0, 0
        client = service.client
        for method, params in (("ping", {}), ("search", {"k": 10})):
            samples = []
            for i in range(queries + 2):
                request = {**params, "query": QUERIES[i % len(QUERIES)]} if method == "search" else params
                seconds = _timed(lambda: client.wait_for(client.request(method, request), step_ms=1))
                if i >= 2:  # the first calls warm the server's model and caches
                    samples.append(seconds)
            rows.append({"measure": f"client round trip: {method}" + (" k=10" if params else ""),
                         **_percentiles(samples), "target": "", "ok": ""})
        samples = [_timed(lambda i=i: bpy.ops.mofind.search(prompt=QUERIES[i % len(QUERIES)], k=10, wait=True))
                   for i in range(queries)]
        rows.append({"measure": "mofind.search operator k=10 (+ results list, thumbnails)", **_percentiles(samples),
                     "target": "", "ok": ""})

        rigs.reset_scene(fps=30)
        apply_clip = importlib.import_module(f"{ADDON_MODULE}.retarget.apply").apply_clip
        payload = rigs.walking_payload(seconds=10.0, fps=30.0)
        rig = rigs.build_65_bone_rig()
        samples = [_timed(lambda: apply_clip(bpy.context, rig, payload)) for _ in range(applies)]
        stats = _percentiles(samples)
        rows.append({"measure": "apply_clip: 10 s at 30 fps onto a 65-bone rig", **stats,
                     "target": f"<= {TARGET_APPLY_S * 1000:.0f} ms", "ok": stats["p50_ms"] <= TARGET_APPLY_S * 1000})

        rigs.reset_scene(fps=30)
        rig = rigs.build_65_bone_rig()
        bpy.context.scene.mofind.path_prefix = str(library / "long")
        assert bpy.ops.mofind.search(prompt="someone walks forward", k=1, wait=True) == {"FINISHED"}
        service.motion_cache.size = 0  # every apply fetches the motion again
        samples = []
        for _ in range(applies):
            samples.append(_timed(lambda: bpy.ops.mofind.apply_clip(index=0, armature=rig.name,
                                                                     whole_take=True, wait=True)))
        session = bpy.context.window_manager.mofind
        item = session.results[0]
        rows.append({"measure": f"mofind.apply_clip operator: get_motion + apply, {item.duration:.0f} s take, "
                                "65 bones", **_percentiles(samples), "target": "", "ok": ""})
        bpy.ops.preferences.addon_disable(module=ADDON_MODULE)
    finally:
        served.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=30)
    parser.add_argument("--applies", type=int, default=5)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from bench.run_all import markdown_table

    sys.stdout.flush()
    saved = os.dup(1)
    os.dup2(2, 1)  # Blender prints operator reports on fd 1: keep stdout for the table alone
    try:
        rows = run(args.queries, args.applies)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
    print(markdown_table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
