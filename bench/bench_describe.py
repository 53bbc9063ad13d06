"""Describer speed: `describe_motion` on 10-second windows (the way training calls it on thousands of them).

Data: 10 s windows of Bandai dev takes and cmu-captioned takes from shared/ when present, else procedural
motions from tests/fixtures/synthetic.py. Target: well under 50 ms per 10 s window at 20 fps on one core
(the run fails above TARGET_MS).

    python -m bench.bench_describe
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))
sys.path.insert(0, str(ROOT / "tests"))

TARGET_MS = 50.0
FPS = 20.0
WINDOW = int(10 * FPS)


def _windows() -> tuple[str, list[np.ndarray]]:
    from mofind.io import load_motion

    try:
        from mofind.train import bandai, cmu

        files = sorted(bandai.ensure_extracted().glob("*.bvh"))[::40]
        takes = [t.bvh for t in cmu.load_takes()[::8]]
        source = f"{len(files)} Bandai + {len(takes)} cmu-captioned takes"
        clips = [load_motion(p, fps=FPS).joints for p in files + takes]
    except FileNotFoundError:
        from fixtures.synthetic import ACTIONS, EXTRA_ACTIONS, write_action_bvh
        import tempfile

        folder = Path(tempfile.mkdtemp(prefix="bench-describe-"))
        clips = [load_motion(write_action_bvh(folder / f"{a}.bvh", "bandai", a, seconds=10.0), fps=FPS).joints
                 for a in ACTIONS + EXTRA_ACTIONS]
        source = f"{len(clips)} procedural 10 s motions"
    windows = []
    for clip in clips:
        if len(clip) < WINDOW:
            clip = np.concatenate([clip] * (WINDOW // len(clip) + 1))
        windows += [clip[s:s + WINDOW] for s in range(0, len(clip) - WINDOW + 1, WINDOW)]
    return source, windows


def run() -> list[dict]:
    from mofind.describe import describe_motion

    source, windows = _windows()
    describe_motion(windows[0], FPS)  # warm imports
    rng = np.random.default_rng(0)
    rows = []
    for label, generator in (("canonical", None), ("varied wording (rng)", rng)):
        started = time.perf_counter()
        for w in windows:
            describe_motion(w, FPS, generator)
        ms = 1000 * (time.perf_counter() - started) / len(windows)
        rows.append({"stage": f"describe_motion, {label}", "data": source, "windows (10 s)": len(windows),
                     "ms / window": ms, "target ms": TARGET_MS, "ok": ms < TARGET_MS})
    return rows


def main() -> int:
    from bench.run_all import print_stage

    return print_stage(run)


if __name__ == "__main__":
    sys.exit(main())
