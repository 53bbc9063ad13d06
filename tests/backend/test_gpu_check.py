"""bench/gpu_check.py, dry-run on the CPU: a GPU session is a few minutes drawn by chance, so the script that
spends them must already work end to end (encoders, index, tiling, searches, the comparison) before one comes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_the_gpu_check_runs_end_to_end_with_the_cpu_on_both_sides():
    results = REPO / "bench" / "results" / "gpu.md"
    before = results.read_bytes() if results.exists() else None
    env = {**os.environ, "PYTHONPATH": str(REPO / "backend")}
    run = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--dry-run", "--files", "3", "--windows", "1500"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.count("| identical | True |") == 4  # exact and two-stage, built and tiled index
    encoders = next(line for line in run.stdout.splitlines() if line.startswith("| encoders CUDA vs CPU"))
    assert encoders.rstrip().endswith("True |")  # float32 on both sides: CUDA's precision
    assert "cpu, int8 (the CPU default)" in run.stdout
    assert "dry run" in run.stdout and "1,50" in run.stdout  # the tiled index has its ~1,500 windows
    assert (results.read_bytes() if results.exists() else None) == before  # a dry run writes no results
