"""GPU device check, one run under 8 minutes: CUDA results equal CPU results, and how much faster CUDA is.

1. Encoders: the shipped model on CPU and on CUDA encodes the same motion windows (real Bandai takes from
   shared/ when present, else synthetic takes) and the same texts; patches and tokens must agree to 1e-3.
   Both text towers run in float32, as CUDA does; the CPU's own default (int8, lean_bert) is only timed.
2. Search: one index built from those windows; `Searcher(device="cuda")` must return exactly the CPU
   results (same takes, windows and scores) in exact and two-stage mode: the MaxSim integers are exact
   on both.
3. Timing: encoding throughput (windows/s, texts/s) and search latency (p50, exact and two-stage) on a
   100k-window index tiled from those windows (see bench_index.tile_index), CPU against CUDA, same run.
Writes bench/results/gpu.md. Exit status: 0 all equal, 1 a mismatch, 3 no CUDA device (nothing checked).
`--dry-run` runs every step with the "GPU" side on the CPU and writes nothing: it checks this script (a GPU
session is short; tests/backend/test_gpu_check.py runs it so), not a GPU.

    python -m bench.gpu_check [--files 60] [--windows 100000] [--dry-run]
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

NO_CUDA = 3
TEXTS = ["a person walks forward", "a person waves the left hand", "someone jumps and lands", "a person runs",
         "a person raises both hands", "a person turns left while walking", "a person kicks", "a person sits down"]


def motion_files(count: int, folder: Path) -> list[Path]:
    try:
        from bench.bench_index import bandai_files

        return bandai_files(count)
    except (FileNotFoundError, ValueError, OSError):
        sys.path.insert(0, str(ROOT / "tests"))
        from fixtures.synthetic import write_action_library

        return write_action_library(folder / "synthetic", kinds=("bandai", "cmu"), seconds=8.0)


def windows_of(files: list[Path], spec, limit: int = 400) -> list[np.ndarray]:
    from mofind.index.windows import cut_windows
    from mofind.io import load_motion

    out = []
    for path in files:
        motion = load_motion(path, fps=spec.fps)
        for cut in cut_windows(len(motion.joints), spec.window_frames, spec.stride_frames, spec.fps,
                               motion.frame_range, motion.source_fps):
            out.append(motion.joints[cut.start:cut.end])
        if len(out) >= limit:
            break
    return out[:limit]


def timed(step, repeats: int = 3) -> float:
    step()
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> int:
    import torch

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=60)
    parser.add_argument("--windows", type=int, default=100_000)
    parser.add_argument("--dry-run", action="store_true", help="the GPU side on the CPU; nothing written")
    args = parser.parse_args()
    device = "cpu" if args.dry_run else "cuda"
    if not args.dry_run and not torch.cuda.is_available():
        print(f"gpu_check: no CUDA device (torch {torch.__version__}, torch.cuda.is_available() is False): "
              "nothing checked", file=sys.stderr)
        return NO_CUDA
    from bench.bench_index import tile_index
    from bench.run_all import RESULTS, markdown_table
    from mofind.index.encoders import load_encoder
    from mofind.index.manifest import IndexSpec
    from mofind.index.search import Searcher
    from mofind.index.store import ClipRecord, IndexReader, IndexWriter, WindowEmbedding, clip_id_for

    device_name = "dry run: the CPU on both sides" if args.dry_run else torch.cuda.get_device_name(0)
    rows, failures = [{"measure": "device", "setting": device_name, "value": torch.__version__}], 0
    work = Path(tempfile.mkdtemp(prefix="mofind-gpu-"))
    try:
        # CUDA runs the text tower in float32, so the CPU side it must equal is float32 too; the CPU's own default
        # (int8, see lean_bert) is timed beside them
        cpu = load_encoder(device="cpu", text_precision="fp32")
        gpu = load_encoder(device=device, text_precision="fp32")
        spec = IndexSpec.from_encoder(cpu)
        windows = windows_of(motion_files(args.files, work), spec)
        on_cpu = cpu.encode_motions(windows)
        on_gpu = gpu.encode_motions(windows)
        worst = max(float(np.abs(a[0] - b[0]).max()) for a, b in zip(on_cpu, on_gpu))
        same_valid = all(np.array_equal(a[1], b[1]) for a, b in zip(on_cpu, on_gpu))
        text_worst = max(float(np.abs(a[0] - b[0]).max()) for a, b in zip(cpu.encode_texts(TEXTS),
                                                                           gpu.encode_texts(TEXTS)))
        ok = worst < 1e-3 and text_worst < 1e-3 and same_valid
        failures += not ok
        rows.append({"measure": "encoders CUDA vs CPU", "setting": f"{len(windows)} windows, {len(TEXTS)} texts",
                     "value": f"max |diff| patches {worst:.2e}, tokens {text_worst:.2e}", "ok": ok})
        for name, model in (("cpu", cpu), ("cuda", gpu)):
            seconds = timed(lambda: model.encode_motions(windows), 2)
            rows.append({"measure": "motion encoding", "setting": name,
                         "value": f"{len(windows) / seconds:.0f} windows/s"})
        for name, model in (("cpu, fp32", cpu), ("cpu, int8 (the CPU default)", load_encoder(device="cpu")),
                            ("cuda", gpu)):
            seconds = timed(lambda: model.encode_texts(TEXTS * 4), 3)
            rows.append({"measure": "text encoding", "setting": name,
                         "value": f"{len(TEXTS) * 4 / seconds:.0f} texts/s"})
        folder = work / "index"
        with IndexWriter(folder, spec) as writer:
            for number in range(0, len(on_cpu), 4):
                source = f"/gpu-check/take-{number:05d}.bvh"
                writer.add(ClipRecord(clip_id=clip_id_for(source), source=source, content_hash=str(number), size=0,
                                      mtime_ns=0, format="bvh", frame_range=(0, 300), source_fps=30.0, num_frames=200,
                                      duration=10.0, skeleton="bandai"),
                           [WindowEmbedding(48 * i, 72 * i, 72 * i + 144, p, v)
                            for i, (p, v) in enumerate(on_cpu[number:number + 4])])
        tokens = [t for t, _ in cpu.encode_texts(TEXTS)]
        for label, index in (("built", folder), ("tiled", None)):
            if index is None:
                index = work / "tiled"
                tile_index(folder, index, args.windows)
            reader = IndexReader.open(index)
            searchers = {"cpu": Searcher(reader, device="cpu"), "cuda": Searcher(reader, device=device)}
            for mode in ("exact", "two_stage"):
                found = {name: [[(h.clip_id, h.start_frame, h.score) for h in hits]
                                for hits in s.search_tokens(tokens, k=10, mode=mode)] for name, s in searchers.items()}
                same = found["cpu"] == found["cuda"]
                failures += not same
                rows.append({"measure": f"search results CUDA == CPU ({mode})", "setting": f"{reader.num_windows:,} "
                             f"windows ({label})", "value": "identical" if same else "DIFFERENT", "ok": same})
                if label == "tiled":
                    for name, searcher in searchers.items():
                        times = []
                        for query in tokens:
                            started = time.perf_counter()
                            searcher.search_tokens([query], k=10, mode=mode)
                            times.append((time.perf_counter() - started) * 1000)
                        rows.append({"measure": f"search latency {mode}", "setting": f"{name}, {reader.num_windows:,} "
                                     "windows", "value": f"p50 {np.median(times):.1f} ms"})
    finally:
        shutil.rmtree(work, ignore_errors=True)
    text = markdown_table(rows)
    if not args.dry_run:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "gpu.md").write_text(text)
    print(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
