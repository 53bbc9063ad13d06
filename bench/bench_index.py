"""Index benchmarks that gate: latency, recall, memory and disk at 10k / 100k / 1M windows, bulk indexing, end to end.

Windows are encoded by the shipped model: `--files` Bandai takes (shared/) are indexed with the real
pipeline (`build_index`: parse, window, encode, store), which is also the bulk-indexing measurement. The
larger indexes are TILED from those real windows: every stored take is copied, and each copy is reflected in
REFLECTED_DIMS random coordinates of the codec's rotated space (level k -> top - k, which is exactly v -> -v
for the symmetric quantiser), the same coordinates for its patches, pooled and coarse vectors. A reflection
is orthogonal, so each copy is a consistent set of unit vectors (its pooled vectors are still the centroids
of its patches) that scores differently against every query: cosine ~0.88 with the original. So the
library has the real model's geometry, but only `--files` distinct motions underneath: said in every row
it affects.

Each size is measured in a fresh process (bench/search_probe.py): resident memory per window, peak memory
per query, p50/p99 latency (exact and two-stage, pre-encoded queries, threads as `mofind serve`: 1 torch thread,
the default search threads over chunks),
recall@10 of two-stage against exact, and the first-stage kernel's time against the memory-bandwidth limit
of the bytes it reads (the bandwidth is measured in that process, in the same run). The 10k end-to-end
latency runs a real `mofind serve` and a ZeroMQ client (text encoding + search + transport); the text encoding
alone is timed too, so the end-to-end figure splits into encoding, pre-encoded search and the rest.
Every size is probed a second time with the math libraries held to AVX2 (WITHOUT_VNNI: what a CPU without
AVX-512 VNNI or AMX runs), side by side, under the same targets; so is the 10k end-to-end run, where the caps
hold the text tower's products to AVX2 too.
Targets (2-core CPU): see TARGETS; a missed target makes `make bench` exit non-zero.

    python -m bench.bench_index [--files 300] [--sizes 10000,100000,1000000] [--queries 20]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from mofind.index.manifest import IndexSpec  # noqa: E402
from mofind.index.store import IndexReader, IndexWriter  # noqa: E402

TARGETS = {
    "two_stage_p50_ms_1000000": 300.0,
    "recall_at_10_1000000": 0.98,
    "rss_gib_1000000": 6.0,
    "end_to_end_p50_ms_10000": 15.0,
    "kernel_vs_bandwidth": 2.0,
    "bytes_per_window": 16 * 1024,
}
CONTENTS = ["walks forward", "turns left while walking", "turns right while walking", "runs",
            "waves both hands", "waves the left hand", "waves the right hand", "raises both hands",
            "raises the left hand", "raises the right hand"]
SUBJECTS = ["a person", "an elderly person", "a tired person", "a happy young person"]
REFLECTED_DIMS = 8


def queries(count: int) -> list[str]:
    texts = [f"{subject} {content}" for subject in SUBJECTS for content in CONTENTS]
    return texts[:count]


def encoder():
    from mofind.index.encoders import weights_present
    from mofind.model.inference import Encoder

    return Encoder.load() if weights_present() else Encoder.random("compact")


def _ms(values) -> tuple[float, float]:
    values = np.asarray(values, float)
    return float(np.percentile(values, 50)), float(np.percentile(values, 99))


# -- the real windows --------------------------------------------------------------------------------------
def bandai_files(limit: int | None) -> list[Path]:
    from mofind.train.bandai import ensure_extracted

    files = sorted(ensure_extracted().glob("*.bvh"))
    if limit and limit < len(files):
        step = len(files) / limit
        files = [files[int(i * step)] for i in range(limit)]
    return files


def bulk_index_rows(files: list[Path], model, index: Path) -> list[dict]:
    """The real pipeline on real takes: throughput (the template every larger index is tiled from)."""
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
    return [{"measure": "bulk indexing, single process (Bandai, end to end)",
             "setting": f"{len(files)} files, {report.windows} windows, {default_workers()} parse worker(s)",
             "value": round(rate, 2), "unit": "ten-second takes/s",
             "note": f"{report.indexed / report.elapsed:.1f} clips/s, {len(report.failed)} failed; "
                     f"{reader.num_windows} real windows are the template of the tiled sizes"}]


def sharded_rows() -> list[dict]:
    """Where the sharded (2 and 4 Ray nodes) against single-process numbers are, and what is not measured."""
    return [{"measure": "search throughput, sharded vs single process", "setting": "Ray, 2 and 4 local nodes",
             "value": "see bench_cluster", "note": "measured by bench/bench_cluster.py, the `cluster` stage of "
                                                   "`make bench` (Ray processes in a loopback-only namespace)"},
            {"measure": "bulk indexing, sharded vs single process", "setting": "Ray, 2 and 4 local nodes",
             "value": "see bench_cluster", "note": "`mofind index --cluster` against `build_index` on the same "
                                                   "Bandai takes, same index checked: bench/bench_cluster.py"}]


# -- tiling ----------------------------------------------------------------------------------------------
def tile_index(template: Path, folder: Path, windows: int, seed: int = 0) -> IndexReader:
    """An index of ~`windows` windows: jittered copies of the template's takes, written as compaction writes them
    (the fewest chunks of at most TARGET_CHUNK_WINDOWS, all about equal: `store.chunk_share`)."""
    from mofind.index.store import (TARGET_CHUNK_WINDOWS, ClipRecord, _assemble, _restage, chunk_share, clip_id_for,
                                    starts_new_chunk)

    source = IndexReader.open(template)
    rng = np.random.default_rng(seed)
    clips = [_restage(chunk, index, source) for chunk, index in source.live()]
    share = chunk_share(windows, TARGET_CHUNK_WINDOWS)
    with IndexWriter(folder, source.spec) as writer:
        made, copy, generation = 0, 0, writer.manifest.generation
        while made < windows:
            group, filled = [], 0
            while made + filled < windows:
                item = clips[copy % len(clips)]
                if starts_new_chunk(filled, len(item.counts), share, TARGET_CHUNK_WINDOWS):
                    break
                path = f"/tiled/copy-{copy // len(clips):04d}/{Path(item.record.source).name}"
                jittered = _reflect(item, rng.choice(source.spec.dim, REFLECTED_DIMS, replace=False), source)
                jittered.record = ClipRecord(**(item.record.to_dict() | {
                    "clip_id": clip_id_for(path), "source": path, "frame_range": tuple(item.record.frame_range)}))
                group.append(jittered)
                filled += len(item.counts)
                copy += 1
            generation += 1
            writer.manifest.chunks.append(writer._write_chunk(f"chunk-{generation:06d}.safetensors",
                                                              _assemble(group)))
            made += filled
        writer._publish(generation)
    return IndexReader.open(folder)


def _reflect(item, dims: np.ndarray, reader: IndexReader):
    """A copy of a staged take with coordinates `dims` negated, on the packed codes (XOR masks)."""
    from dataclasses import replace

    def mask(codec) -> np.ndarray:
        half = codec.dim // 2
        out = np.zeros(codec.bytes_per_vector, np.uint8)
        for d in dims:
            out[d % half] |= 0x0F if d < half else 0xF0  # the low four bits: k -> 15 - k
            if codec.bits == 5:
                out[half + d // 8] |= 0x80 >> (d % 8)  # the fifth bit: together k -> 31 - k
        return out

    patch_mask, pooled_mask = mask(reader.codec), mask(reader.pooled_codec)
    return replace(item, packed=np.asarray(item.packed) ^ patch_mask, pooled=np.asarray(item.pooled) ^ pooled_mask,
                   coarse=np.asarray(item.coarse) ^ pooled_mask, thumbnail=b"")


# -- one size ----------------------------------------------------------------------------------------------
#: Instruction-set caps under which this CPU's math libraries (oneDNN, MKL, OpenBLAS, torch's own kernels, numba)
#: act as a CPU without AVX-512, VNNI or AMX, such as the AVX2-only EPYC and Haswell-class machines of issue 11.
#: The hardware (caches, memory bandwidth, clock) stays this machine's: a like-for-like instruction-set ratio.
WITHOUT_VNNI = {"ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "OPENBLAS_CORETYPE": "Haswell",
                "ATEN_CPU_CAPABILITY": "avx2", "NUMBA_CPU_NAME": "haswell"}


def probe(index: Path, tokens_file: Path, exact_repeats: int, recall: bool, repeats: int,
          recall_queries: int | None = None, env: dict | None = None) -> dict:
    command = [sys.executable, "-m", "bench.search_probe", str(index), str(tokens_file), "--repeats", str(repeats),
               "--exact-repeats", str(exact_repeats), "--recall-queries", str(recall_queries or repeats)] + \
        (["--recall"] if recall else [])
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, env=os.environ | (env or {}) | {
        "PYTHONPATH": str(ROOT / "backend")})
    if done.returncode != 0:
        raise RuntimeError(f"search probe failed: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def size_rows(size: int, found: dict, tiled: bool, disk_bytes: int) -> list[dict]:
    note = f"tiled from real windows (jittered copies)" if tiled else "real windows"
    if found.get("names_weight"):
        note += f"; take names fused as `mofind serve` fuses them (weight {found['names_weight']:g})"
    rows = []
    for mode in ("exact", "two_stage"):
        samples = found["latency_ms"][mode]
        if not samples:
            continue
        p50, p99 = _ms(samples)
        target = TARGETS.get(f"{mode}_p50_ms_{size}")
        threads = found["kernel"].get("search_threads", 1)
        rows.append({"measure": f"search latency, {mode} (pre-encoded query, as serve: 1 torch thread, "
                                f"{threads} search thread{'s' if threads > 1 else ''})",
                     "setting": f"{size:,} windows", "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
                     "target": f"p50 <= {target:g} ms" if target else "", "ok": (p50 <= target) if target else "",
                     "note": f"{len(samples)} queries, {note}"})
    if found["recall"]:
        recall = float(np.mean(found["recall"]))
        target = TARGETS.get(f"recall_at_10_{size}")
        rows.append({"measure": "recall@10 two-stage vs exact (takes)", "setting": f"{size:,} windows",
                     "value": round(recall, 3), "target": f">= {target}" if target else "",
                     "ok": (recall >= target) if target else "", "note": f"{len(found['recall'])} queries, {note}"})
    rss_gib = found["rss_after_two_stage"] / (1 << 30)
    target = TARGETS.get(f"rss_gib_{size}")
    rows.append({"measure": "searcher RSS after two-stage queries (whole process)", "setting": f"{size:,} windows",
                 "value": f"{rss_gib:.2f} GiB", "target": f"<= {target} GiB" if target else "",
                 "ok": (rss_gib <= target) if target else "",
                 "note": f"resident per window {found['resident_bytes'] / size:.0f} B (open + warm); "
                         f"peak per query {found['peak_query_bytes'] / (1 << 20):.1f} MiB; after the exact queries "
                         f"too {found.get('rss_after_exact', 0) / (1 << 30):.2f} GiB; open {found['open_s']:.1f} s"})
    per_window = disk_bytes / size
    rows.append({"measure": "bytes per window on disk", "setting": f"{size:,} windows",
                 "value": round(per_window), "target": f"<= {TARGETS['bytes_per_window']}",
                 "ok": per_window <= TARGETS["bytes_per_window"], "note": note})
    stage = found["first_stage"]
    limit_ms = stage["bytes"] / (found["bandwidth_gbps"] * 1e9) * 1000
    ratio = stage["ms"] / limit_ms if limit_ms else float("inf")
    rows.append({"measure": "first-stage kernel vs memory-bandwidth limit of its bytes", "setting": f"{size:,} windows",
                 "value": f"{ratio:.2f}x", "target": f"<= {TARGETS['kernel_vs_bandwidth']:g}x",
                 "ok": ratio <= TARGETS["kernel_vs_bandwidth"],
                 "note": f"coarse-table kernel {stage['ms']:.1f} ms over {stage['bytes'] / 1e6:.0f} MB (whole first "
                         f"stage with the 32-vector middle stage {stage.get('cascade_ms', float('nan')):.1f} ms); read "
                         f"bandwidth {found['bandwidth_gbps']:.1f} GB/s ({found.get('threads', 1)} thread(s) as the "
                         f"kernel, same process); first-stage table "
                         f"{found['kernel'].get('first_stage', {}).get('table', 'kernel')}, kernel "
                         f"{found['kernel']['name']}"})
    return rows


# -- text encoding alone (the end-to-end row's first share) ---------------------------------------------------
def encoding_rows(model, texts: list[str]) -> list[dict]:
    """Text encoding alone, one query at a time on one thread (torch and BLAS) as `mofind serve` runs it: the
    end-to-end row's first share (the pre-encoded two-stage row is the second). The model's own text precision
    (`auto`: measured on this machine) and every other precision this torch runs here, on the same weights,
    alternating query by query."""
    import torch

    from mofind.index.linalg import limit_blas_threads
    from mofind.model.inference import Encoder
    from mofind.model.lean_bert import available_precisions

    encoders = {model.text_precision: model}
    for name in available_precisions():
        if name not in encoders:
            encoders[name] = Encoder(model.model, model.tokenizer, model.stats, model.config,
                                     model_hash=model.model_hash, text_precision=name)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    limiter = limit_blas_threads(1)
    try:
        times: dict[str, list[float]] = {name: [] for name in encoders}
        for number, text in enumerate([texts[0]] + texts):
            for name, encoder in encoders.items():
                started = time.perf_counter()
                encoder.encode_texts([text])
                if number:
                    times[name].append((time.perf_counter() - started) * 1000)
    finally:
        if limiter is not None:
            limiter.restore_original_limits()
        torch.set_num_threads(threads)  # after: the restore also resets OpenMP to what it was inside
    served = _ms(times[model.text_precision])[0]
    rows = []
    for name, measured in times.items():
        p50, p99 = _ms(measured)
        role = (f"as `mofind serve` runs it (auto: {model.text_precision_reason})" if encoders[name] is model
                else f"`--text-precision {name}`")
        rows.append({"measure": f"text encoding alone (one query at a time, 1 thread), {name}",
                     "setting": f"{len(texts)} queries", "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
                     "value": f"{p50 / served:.2f}x served" if name != model.text_precision else "",
                     "note": f"the shipped model's text tower {role}; alternating query by query"})
    return rows


# -- end to end through a real server -------------------------------------------------------------------------
def end_to_end_rows(index: Path, texts: list[str], size: int, capped: bool = False,
                    native_p50: float | None = None, text_precision: str | None = None) -> list[dict]:
    """`mofind serve` on `index`, a ZeroMQ DEALER client, one search at a time: text encoding + search + wire.
    With `capped`, the server's math libraries are held to AVX2 (WITHOUT_VNNI) for the text tower too; with
    `text_precision`, the server is started with `--text-precision`. Either row gives its ratio to `native_p50`
    (the default server) from the same run; only the default configuration's rows gate."""
    import zmq

    import socket

    with socket.socket() as probe_socket:  # a free loopback port
        probe_socket.bind(("127.0.0.1", 0))
        endpoint = f"tcp://127.0.0.1:{probe_socket.getsockname()[1]}"
    env = os.environ | {"PYTHONPATH": str(ROOT / "backend")} | (WITHOUT_VNNI if capped else {})
    precision = ["--text-precision", text_precision] if text_precision else []
    server = subprocess.Popen([sys.executable, "-m", "mofind.cli", "serve", "--index", str(index), "--bind",
                               endpoint, "--insecure", *precision], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        _wait_listening(server)
        context = zmq.Context.instance()
        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        _configure_client(sock)
        sock.connect(endpoint)
        warmed = _wait_warm(sock)
        times = []
        for number, text in enumerate([texts[0]] * 3 + texts):
            started = time.perf_counter()
            reply = _call(sock, "search", {"query": text, "k": 10, "thumbnails": False}, str(number))
            if not reply.get("ok"):
                raise RuntimeError(f"search failed: {reply}")
            if number >= 3:
                times.append((time.perf_counter() - started) * 1000)
        sock.close()
    finally:
        server.terminate()
        server.wait(30)
    p50, p99 = _ms(times)
    target = TARGETS[f"end_to_end_p50_ms_{size}"]
    caps = ", math libraries held to AVX2 (no AVX-512, VNNI, AMX)" if capped else ""
    note = f"{len(times)} queries, timed once the server reported `warm` ({warmed:.1f} s after it listened)"
    if capped:
        note += f"; {', '.join(f'{k}={v}' for k, v in WITHOUT_VNNI.items())}"
    if text_precision:
        caps += f", --text-precision {text_precision}"
        return [{"measure": f"end to end: text encoding + search + ZeroMQ (mofind serve, auto mode){caps}",
                 "setting": f"{size:,} windows", "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
                 "value": f"{p50 / native_p50:.2f}x the default" if native_p50 else "", "note": note}]
    return [{"measure": f"end to end: text encoding + search + ZeroMQ (mofind serve, auto mode){caps}",
             "setting": f"{size:,} windows", "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
             "value": f"{p50 / native_p50:.2f}x native" if capped and native_p50 else "",
             "target": f"p50 <= {target:g} ms", "ok": p50 <= target, "note": note}]


def _wait_warm(sock, timeout: float = 300.0) -> float:
    """Seconds until the server's `info` says `warm` (codes unpacked, null distribution ready): the steady state a
    user meets after the first seconds; searches sent earlier share the cores with the warming thread."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if _call(sock, "info", {}, "warm").get("result", {}).get("warm"):
            return time.perf_counter() - started
        time.sleep(0.2)
    raise RuntimeError(f"the server was not warm after {timeout:.0f} s")


def _call(sock, method: str, params: dict, request_id: str) -> dict:
    """One request on the DEALER socket, its reply header (60 s at most)."""
    sock.send_multipart([json.dumps({"v": 1, "id": request_id, "method": method, "params": params}).encode()])
    if not sock.poll(60_000):
        raise RuntimeError(f"the server did not answer `{method}` within 60 s")
    return json.loads(sock.recv_multipart()[0])


def _wait_listening(server) -> None:
    while True:
        line = server.stdout.readline()
        if not line:
            raise RuntimeError(f"mofind serve exited: {server.stderr.read()[-2000:]}")
        if "listening on" in line:
            return


def _configure_client(sock) -> None:
    """CurveZMQ client keys when the server requires them (the user's config folder)."""
    try:
        from mofind.server.client import configure_client_socket
    except ImportError:
        return
    configure_client_socket(sock)


# -- driver --------------------------------------------------------------------------------------------------
def run(files: int = 300, sizes=(10_000, 100_000, 1_000_000), query_count: int = 20,
        keep: Path | None = None) -> list[dict]:
    import torch

    model = encoder()
    spec = IndexSpec.from_encoder(model)
    cpu = _cpu_name()
    rows = [{"measure": "machine", "setting": f"{cpu}; {os.cpu_count()} CPUs",
             "value": f"load {os.getloadavg()[0]:.1f}",
             "note": f"model {spec.model_name} {spec.model_hash}; torch {torch.__version__}; shared by other jobs: "
                     "absolute times are noisy, compare rows of the same run"}]
    texts = queries(query_count)
    work = Path(keep) if keep else Path(tempfile.mkdtemp(prefix="mofind-bench-"))
    try:
        template = work / "bandai"
        shutil.rmtree(template, ignore_errors=True)
        rows += bulk_index_rows(bandai_files(files), model, template)
        _progress(rows)
        rows += sharded_rows()
        tokens_file = work / "tokens.npz"
        np.savez(tokens_file, texts=np.asarray(texts),  # the prompts too: the probe fuses names as the server does
                 **{f"q{i}": t for i, (t, _) in enumerate(model.encode_texts(texts))})
        rows += encoding_rows(model, texts)
        del model
        for size in sizes:
            folder = work / f"tiled-{size}"
            shutil.rmtree(folder, ignore_errors=True)
            started = time.perf_counter()
            reader = tile_index(template, folder, size)
            built = time.perf_counter() - started
            actual = reader.num_windows
            found = probe(folder, tokens_file, exact_repeats=1 if actual > 200_000 else 10,
                          recall=True, repeats=query_count, recall_queries=query_count)
            measured = size_rows(actual, found, tiled=True, disk_bytes=reader.disk_bytes())
            measured[-1]["note"] += f"; tiled in {built:.0f} s, {len(reader.chunks)} chunk files"
            wider = wider_instructions()
            if wider:  # else the native rows are already those of a CPU without VNNI
                capped = probe(folder, tokens_file, exact_repeats=1 if actual > 200_000 else 5, recall=False,
                               repeats=query_count, env=WITHOUT_VNNI)
                measured += without_vnni_rows(actual, found, capped)
            if size == 10_000:  # native and held to AVX2, one after the other on the same index
                native = end_to_end_rows(folder, texts, 10_000)
                native_p50 = native[0]["p50_ms"]
                measured += native
                if wider:
                    measured += end_to_end_rows(folder, texts, 10_000, capped=True, native_p50=native_p50)
                measured += end_to_end_rows(folder, texts, 10_000, native_p50=native_p50, text_precision="fp32")
            if not wider:
                measured.append({"measure": "math libraries held to AVX2 (no AVX-512, VNNI, AMX)",
                                 "setting": f"{size:,} windows", "value": "not run",
                                 "note": "this CPU has none of them: its native rows above are the rows of a CPU "
                                         "without VNNI, against the same targets"})
            rows += measured
            _progress(measured)
            if size != max(sizes):
                shutil.rmtree(folder, ignore_errors=True)
    finally:
        if keep is None:
            shutil.rmtree(work, ignore_errors=True)
    return rows


def without_vnni_rows(size: int, native: dict, capped: dict) -> list[dict]:
    """The same searches with the math libraries held to AVX2 (WITHOUT_VNNI), side by side with the native run:
    the same targets apply. Recall is not re-measured: every kernel gives the same integer scores (tested)."""
    rows = []
    kernel = capped["kernel"]
    for mode in ("exact", "two_stage"):
        if not capped["latency_ms"][mode] or not native["latency_ms"][mode]:
            continue
        p50, p99 = _ms(capped["latency_ms"][mode])
        ratio = p50 / _ms(native["latency_ms"][mode])[0]
        target = TARGETS.get(f"{mode}_p50_ms_{size}")
        rows.append({"measure": f"search latency, {mode}, math libraries held to AVX2 (no AVX-512, VNNI, AMX)",
                     "setting": f"{size:,} windows", "p50_ms": round(p50, 1), "p99_ms": round(p99, 1),
                     "value": f"{ratio:.2f}x native", "target": f"p50 <= {target:g} ms" if target else "",
                     "ok": (p50 <= target) if target else "",
                     "note": f"kernel {kernel['name']}, first stage {kernel.get('first_stage', {}).get('table')} "
                             f"(calibrated under the caps); {', '.join(f'{k}={v}' for k, v in WITHOUT_VNNI.items())}"})
    return rows


def _progress(rows: list[dict]) -> None:
    """Rows as they are measured, on stderr: a long run that is stopped still leaves its numbers."""
    from bench.run_all import markdown_table

    print(markdown_table(rows), file=sys.stderr, flush=True)


def wider_instructions() -> list[str]:
    """The instruction sets beyond AVX2 that WITHOUT_VNNI takes away, as /proc/cpuinfo lists them here."""
    try:
        flags = next((line.split(":", 1)[1].split() for line in Path("/proc/cpuinfo").read_text().splitlines()
                      if line.startswith("flags")), [])
    except OSError:
        return []
    return [flag for flag in ("avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if flag in flags]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                flags = Path("/proc/cpuinfo").read_text()
                extra = [f for f in ("avx512_vnni", "avx_vnni", "amx_int8", "avx2") if f" {f}" in flags]
                return f"{line.split(':', 1)[1].strip()} ({', '.join(extra) or 'no VNNI/AMX'})"
    except OSError:
        pass
    return "unknown CPU"


def main() -> int:
    from bench.run_all import markdown_table, missed

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=300, help="Bandai takes indexed for real (the template)")
    parser.add_argument("--sizes", default="10000,100000,1000000", help="window counts")
    parser.add_argument("--queries", type=int, default=20)
    parser.add_argument("--keep", type=Path, default=None, help="work folder to keep (default: a temp folder)")
    args = parser.parse_args()
    sizes = tuple(int(s) for s in args.sizes.split(",") if s)
    rows = run(files=args.files, sizes=sizes, query_count=args.queries, keep=args.keep)
    print(markdown_table(rows))
    return 1 if missed(rows) else 0


if __name__ == "__main__":
    sys.exit(main())
