"""I/O throughput: BVH parse, + forward kinematics, + SMPL-22 mapping (load_motion), + joint angles.

Data: the Bandai-Namco dev archive from shared/, extracted once into `mofind.paths.cache_dir()/bandai`
(reused afterwards); the BVH samples in shared/ when the archive is absent. Target: >= 30 typical
10-second takes per second end to end (parse + FK + map + features) on 2 cores.

    python -m bench.bench_io [--limit N]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from mofind import paths  # noqa: E402

ARCHIVE = "bandai-namco-2-dev.tar.xz"


def bandai_files() -> list[Path]:
    """Dev-archive BVH files (extracting the archive on first use), else the shared samples."""
    shared = paths.shared_dir()
    if shared is None:
        return []
    target = paths.cache_dir() / "bandai"
    archive = shared / "data" / ARCHIVE
    marker = target / ".extracted"
    if archive.is_file() and not marker.exists():
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(archive, "r:xz") as tar:
            tar.extractall(target, filter="data")
        marker.write_text(archive.name)
    files = sorted(target.rglob("*.bvh")) if marker.exists() else []
    return files or sorted((shared / "data" / "bvh-samples").glob("*.bvh"))


def _spread(files: list[Path], limit: int | None) -> list[Path]:
    """`limit` files spread evenly over the sorted list, so every content/style is represented."""
    if not limit or limit >= len(files):
        return files
    step = len(files) / limit
    return [files[int(i * step)] for i in range(limit)]


def _angles_function():
    try:
        from mofind.features.angles import joint_angles41
    except ImportError:
        return None
    return joint_angles41


def _stage_parse(path):
    from mofind.io import read_bvh

    bvh = read_bvh(path)
    return bvh.num_frames, bvh.num_frames / bvh.fps


def _stage_fk(path):
    from mofind.io import forward_kinematics, read_bvh

    bvh = read_bvh(path)
    forward_kinematics(bvh)
    return bvh.num_frames, bvh.num_frames / bvh.fps


def _stage_map(path):
    from mofind.skeleton import load_motion

    motion = load_motion(path)
    return motion.frame_range[1], motion.frame_range[1] / motion.source_fps


def _stage_features(path):
    from mofind.skeleton import load_motion

    motion = load_motion(path)
    _angles_function()(motion.joints)
    return motion.frame_range[1], motion.frame_range[1] / motion.source_fps


def _timed(stage, files: list[Path], workers: int) -> tuple[float, int, float]:
    """(wall seconds, source frames, seconds of motion) for running `stage` over `files`."""
    started = time.perf_counter()
    if workers == 1:
        results = [stage(f) for f in files]
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            results = pool.map(stage, files, chunksize=8)
    return time.perf_counter() - started, sum(r[0] for r in results), sum(r[1] for r in results)


def run(limit: int | None = 300) -> list[dict]:
    files = _spread(bandai_files(), limit)
    if not files:
        return [{"stage": "skipped", "note": "no shared data (bandai archive or bvh-samples)"}]
    stages = [("parse", _stage_parse), ("parse+FK", _stage_fk), ("parse+FK+SMPL-22 map (load_motion)", _stage_map)]
    if _angles_function() is not None:
        stages.append(("load_motion + joint_angles41", _stage_features))
    _timed(stages[-1][1], files[: min(5, len(files))], 1)  # warm imports and caches
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    plans = [(name, fn, 1) for name, fn in stages] + [(stages[-1][0], stages[-1][1], min(2, cores or 1))]
    rows = []
    for name, fn, workers in plans:
        seconds, frames, motion_seconds = _timed(fn, files, workers)
        rows.append({
            "stage": name, "workers": workers, "files": len(files), "source frames": frames,
            "mean take (s)": motion_seconds / len(files), "wall (s)": seconds,
            "files/s": len(files) / seconds, "frames/s": frames / seconds,
            "10-s takes/s": motion_seconds / 10.0 / seconds,
        })
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=300, help="files to time (0 = all)")
    args = parser.parse_args(argv)
    from bench.run_all import markdown_table

    print(markdown_table(run(args.limit or None)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
