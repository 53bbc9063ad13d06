"""Index benchmarks: query latency vs index size, bytes per window, codec error, two-stage recall, bulk indexing.

- Latency sweep (synthetic unit-vector embeddings, full 12x14 windows, 10-token queries): p50/p95 of
  `Searcher.search_tokens` in exact and two-stage mode at 1k, 10k, 100k windows, plus the text encoder's
  time per query (what the server adds on top).
- Bandai dev archive (shared/, extracted once into mofind.paths.cache_dir()/bandai): end-to-end bulk indexing
  throughput in ten-second-take equivalents per second (parse + window + encode + store), bytes per window on
  disk, the MaxSim error of the 5-bit codes against float32 embeddings, and two-stage recall@10 against exact.
Targets (2-core CPU, compact model): p50 <= 30 ms at 10k and <= 300 ms at 100k windows; >= 20 ten-second
takes/s; <= 16 KiB per window. The model is the shipped one when present, else the random compact model
(then codec error and recall describe random-model embeddings of real motion: indicative only).

    python -m bench.bench_index [--limit 300] [--sizes 1000,10000,100000] [--queries 40]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from mofind.index.manifest import IndexSpec  # noqa: E402
from mofind.index.search import Searcher  # noqa: E402
from mofind.index.store import ClipRecord, IndexReader, IndexWriter, WindowEmbedding, clip_id_for  # noqa: E402

TARGET_P50_MS = {10_000: 30.0, 100_000: 300.0}
TARGET_TAKES_PER_S = 20.0
TARGET_BYTES_PER_WINDOW = 16 * 1024
WINDOWS_PER_CLIP = 4
CONTENTS = ["walks forward", "turns left while walking", "turns right while walking", "runs",
            "waves both hands", "waves the left hand", "waves the right hand", "raises both hands",
            "raises the left hand", "raises the right hand"]
SUBJECTS = ["a person", "an elderly person", "a tired person", "a happy young person"]


def queries(count: int) -> list[str]:
    texts = [f"{subject} {content}" for subject in SUBJECTS for content in CONTENTS]
    return texts[:count]


def encoder():
    from mofind.index.encoders import weights_present
    from mofind.model.inference import Encoder

    return Encoder.load() if weights_present() else Encoder.random("compact")


def _percentiles(samples: list[float]) -> tuple[float, float]:
    values = np.asarray(samples) * 1000.0
    return float(np.percentile(values, 50)), float(np.percentile(values, 95))


# -- synthetic latency sweep ------------------------------------------------------------------------------
def synthetic_index(folder: Path, windows: int, spec: IndexSpec, seed: int = 0) -> IndexReader:
    rng = np.random.default_rng(seed)
    patches_per_window = spec.num_patches
    with IndexWriter(folder, spec) as writer:
        for clip in range(0, windows // WINDOWS_PER_CLIP):
            source = f"/synthetic/clip_{clip:06d}.bvh"
            record = ClipRecord(clip_id=clip_id_for(source), source=source, content_hash=str(clip), size=0,
                                mtime_ns=0, format="bvh", frame_range=(0, 360), source_fps=30.0, num_frames=240,
                                duration=12.0, skeleton="synthetic", labels=["synthetic"])
            vectors = rng.standard_normal((WINDOWS_PER_CLIP * patches_per_window, spec.dim), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            valid = np.ones(patches_per_window, bool)
            embedded = [WindowEmbedding(48 * w, 72 * w, 72 * w + 144,
                                        vectors[w * patches_per_window:(w + 1) * patches_per_window], valid)
                        for w in range(WINDOWS_PER_CLIP)]
            writer.add(record, embedded)
            if writer.pending_count >= 2000:
                writer.commit()
    return IndexReader.open(folder)


def latency_rows(sizes, spec: IndexSpec, text_encoder, repeats: int = 30) -> list[dict]:
    rows = []
    rng = np.random.default_rng(1)
    texts = queries(repeats)
    text_encoder.encode_texts(texts[:2])  # first-call set-up is not a query's cost
    text_times = []
    for text in texts:
        started = time.perf_counter()
        text_encoder.encode_texts([text])
        text_times.append(time.perf_counter() - started)
    p50, p95 = _percentiles(text_times)
    rows.append({"measure": "text encoding per query", "setting": "compact text tower, 1 query",
                 "p50_ms": round(p50, 2), "p95_ms": round(p95, 2)})
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="mofind-bench-") as folder:
            built = time.perf_counter()
            reader = synthetic_index(Path(folder), size, spec)
            build_s = time.perf_counter() - built
            searcher = Searcher(reader)
            tokens = [(lambda x: x / np.linalg.norm(x, axis=1, keepdims=True))(
                rng.standard_normal((10, spec.dim)).astype(np.float32)) for _ in range(repeats)]
            for mode in ("exact", "two_stage"):
                searcher.warm(mode)
                searcher.search_tokens([tokens[0]], k=10, mode=mode)
                times = []
                for query in tokens:
                    started = time.perf_counter()
                    searcher.search_tokens([query], k=10, mode=mode)
                    times.append(time.perf_counter() - started)
                p50, p95 = _percentiles(times)
                target = TARGET_P50_MS.get(size)
                rows.append({"measure": "search latency (pre-encoded query)", "setting": f"{size:,} windows, {mode}",
                             "p50_ms": round(p50, 2), "p95_ms": round(p95, 2),
                             "target": f"p50 <= {target:g} ms" if target else "",
                             "ok": (p50 <= target) if target else ""})
            rows.append({"measure": "bytes per window on disk", "setting": f"{size:,} full windows (synthetic)",
                         "value": round(reader.disk_bytes() / size), "target": f"<= {TARGET_BYTES_PER_WINDOW}",
                         "ok": reader.disk_bytes() / size <= TARGET_BYTES_PER_WINDOW,
                         "note": f"built in {build_s:.1f} s"})
    return rows


# -- Bandai: throughput, bytes, codec error, recall -------------------------------------------------------
def bandai_files(limit: int | None) -> list[Path]:
    from mofind.train.bandai import ensure_extracted

    files = sorted(ensure_extracted().glob("*.bvh"))
    if limit and limit < len(files):
        step = len(files) / limit
        files = [files[int(i * step)] for i in range(limit)]
    return files


def throughput_rows(files: list[Path], model, index: Path) -> list[dict]:
    import torch

    from mofind.index.build import build_index, default_workers, encoder_threads

    threads = torch.get_num_threads()
    torch.set_num_threads(encoder_threads(default_workers()))  # what `mofind index` does
    try:
        report = build_index(files, index, model, workers=default_workers())
    finally:
        torch.set_num_threads(threads)
    reader = IndexReader.open(index)
    rate = report.seconds_of_motion / 10.0 / report.elapsed
    patch_bytes = sum(int(np.asarray(c.arrays["patches"]).nbytes + np.asarray(c.arrays["pooled"]).nbytes)
                      for c in reader.chunks)
    return [
        {"measure": "bulk indexing (Bandai, end to end)", "setting": f"{len(files)} files, {report.windows} windows, "
         f"{default_workers()} parse worker(s), {encoder_threads(default_workers())} torch thread(s)",
         "value": round(rate, 2), "unit": "ten-second takes/s",
         "target": f">= {TARGET_TAKES_PER_S:g}", "ok": rate >= TARGET_TAKES_PER_S,
         "note": f"{report.indexed / report.elapsed:.1f} clips/s, {len(report.failed)} failed"},
        {"measure": "bytes per window on disk (Bandai)", "setting": "all arrays + metadata + thumbnails",
         "value": round(reader.disk_bytes() / max(reader.num_windows, 1)), "target": f"<= {TARGET_BYTES_PER_WINDOW}",
         "ok": reader.disk_bytes() / max(reader.num_windows, 1) <= TARGET_BYTES_PER_WINDOW,
         "note": f"codes only: {patch_bytes / max(reader.num_windows, 1):.0f} B (short takes: padded rows not stored)"},
    ]


def codec_error_rows(files: list[Path], model, texts: list[str], folder: Path, max_windows: int = 600) -> list[dict]:
    """MaxSim with float32 embeddings vs MaxSim over the stored 5-bit codes, same windows, same queries."""
    from mofind.index.windows import cut_windows
    from mofind.io import load_motion

    spec = IndexSpec.from_encoder(model)
    windows, owners, valids = [], [], []
    with IndexWriter(folder, spec) as writer:
        for path in files:
            if len(windows) >= max_windows:
                break
            motion = load_motion(path, fps=spec.fps)
            cuts = cut_windows(len(motion.joints), spec.window_frames, spec.stride_frames, spec.fps,
                               motion.frame_range, motion.source_fps)
            encoded = model.encode_motions([motion.joints[c.start:c.end] for c in cuts])
            record = ClipRecord(clip_id=clip_id_for(path), source=str(path), content_hash="", size=0, mtime_ns=0,
                                format="bvh", frame_range=motion.frame_range, source_fps=motion.source_fps,
                                num_frames=len(motion.joints), duration=motion.duration, skeleton="bandai")
            writer.add(record, [WindowEmbedding(c.start, c.source_start, c.source_end, p, v)
                                for c, (p, v) in zip(cuts, encoded)])
            for patches, valid in encoded:
                windows.append(patches)
                valids.append(valid)
                owners.append(record.clip_id)
    reader = IndexReader.open(folder)
    searcher = Searcher(reader)
    tokens = [t for t, _ in model.encode_texts(texts)]
    from mofind.model.maxsim import maxsim

    patches = np.stack(windows)
    valid = np.stack(valids)
    errors, agree, gaps = [], [], []
    for query in tokens:
        exact32 = maxsim(query[None], np.ones((1, len(query)), bool), patches, valid)[0]
        order = np.argsort(-exact32)
        ranked = list(dict.fromkeys(owners[i] for i in order))
        truth = ranked[:10]
        hits = searcher.search_tokens([query], k=10, mode="exact")[0]
        agree.append(len(set(truth) & {h.clip_id for h in hits}) / 10)
        best32 = {}
        for score, owner in zip(exact32, owners):
            best32[owner] = max(best32.get(owner, -np.inf), score)
        full = searcher.search_tokens([query], k=len(reader), mode="exact")[0]
        errors.extend(h.score - best32[h.clip_id] for h in full)
        if len(ranked) > 10:
            gaps.append(best32[ranked[9]] - best32[ranked[10]])
    errors = np.asarray(errors)
    return [{"measure": "MaxSim error of the stored codes vs float32 (Bandai windows, real queries)",
             "setting": f"{len(windows)} windows x {len(texts)} queries",
             "value": f"mean {errors.mean():+.4f}, std {errors.std():.4f}, max abs {np.abs(errors).max():.4f}",
             "note": f"top-10 takes agree with float32 MaxSim: {np.mean(agree):.3f}; median float32 score gap "
                     f"between the 10th and 11th take: {np.median(gaps) if gaps else float('nan'):.4f}"}]


def recall_rows(index: Path, model, texts: list[str], fractions=(0.025, 0.05, 0.1, 0.2)) -> list[dict]:
    """Two-stage top-10 takes vs exact top-10 takes, re-ranking a fraction of the windows (at least 40)."""
    reader = IndexReader.open(index)
    searcher = Searcher(reader)
    tokens = [t for t, _ in model.encode_texts(texts)]
    exact = [{h.clip_id for h in searcher.search_tokens([q], k=10, mode="exact")[0]} for q in tokens]
    rows = []
    for count in sorted({max(40, int(f * reader.num_windows)) for f in fractions}):
        recall = [len(truth & {h.clip_id for h in searcher.search_tokens([q], k=10, mode="two_stage",
                                                                         candidates=count)[0]}) / 10
                  for q, truth in zip(tokens, exact)]
        rows.append({"measure": "two-stage recall@10 vs exact (Bandai)",
                     "setting": f"{reader.num_windows} windows, {count} candidates "
                                f"({100 * count / reader.num_windows:.0f}%)",
                     "value": round(float(np.mean(recall)), 3), "note": f"{len(texts)} queries"})
    return rows


def run(limit: int | None = 1000, sizes=(1_000, 10_000, 100_000), query_count: int = 40) -> list[dict]:
    import torch

    model = encoder()
    spec = IndexSpec.from_encoder(model)
    rows = [{"measure": "machine", "setting": f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}",
             "value": f"load {os.getloadavg()[0]:.1f}", "note": f"model {spec.model_name} {spec.model_hash}"}]
    rows += latency_rows(sizes, spec, model)
    try:
        files = bandai_files(limit)
    except (FileNotFoundError, ValueError) as exc:
        return rows + [{"measure": "Bandai rows skipped", "note": str(exc)}]
    texts = queries(query_count)
    with tempfile.TemporaryDirectory(prefix="mofind-bench-bandai-") as folder:
        rows += throughput_rows(files, model, Path(folder) / "index")
        rows += recall_rows(Path(folder) / "index", model, texts)
        rows += codec_error_rows(files, model, texts, Path(folder) / "codec")
    return rows


def main() -> int:
    from bench.run_all import markdown_table

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--limit", type=int, default=1000, help="Bandai files to index (0 = all 2,306)")
    parser.add_argument("--sizes", default="1000,10000,100000", help="window counts of the latency sweep")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    sizes = tuple(int(s) for s in args.sizes.split(",") if s)
    print(markdown_table(run(limit=args.limit or None, sizes=sizes, query_count=args.queries)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
