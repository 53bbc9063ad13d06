"""The MaxSim kernel over the stored codes: one exact integer result, several ways to compute it.

Scores are integer dot products between the int8 query rows and the stored level indices; the max over a
window's patches is taken on those integers (every factor that turns them into cosines is per query row,
see `codec.QuantizedQueries`). Five CPU kernels compute those integers:

  * "int8"       `torch._int_mm` on int8 levels (VNNI / AMX where the CPU has them; WITHOUT VNNI its 16-bit
                 pair sums saturate and the maxima are wrong, so the calibration never picks it there);
  * "onednn-u8s8" oneDNN's quantized inner product: levels as u8 activations, queries as prepacked s8 weights
                 (where torch has oneDNN);
  * "avx2-u8s8"  AVX2's byte multiply-add through numba, the max fused in (avx2_dots.py: CPUs without VNNI);
  * "fp32-torch" float32 matmul in torch (MKL / oneDNN);
  * "fp32-numpy" float32 matmul in numpy's BLAS, one thread (see linalg.py).

The float kernels are exact: |levels| <= 31, |q8| <= 127, D <= 1024, so every sum stays below 2**24.
bf16/fp16 are timed too but never chosen: their matmul rounds the output to 8 / 11 bits of mantissa.
Which kernel is fastest depends on the CPU far more than on the arithmetic (on an EPYC without VNNI
`_int_mm` was 30x slower than fp32 BLAS for the same product), so `choose_kernel` measures the whole block
step (unpack the packed codes into the kernel's dtype, multiply, max) on this machine when an index is
opened, keeps only the kernels whose integers equal a float64 product there, and caches the choice per
machine (CPU model and flags, instruction-set overrides, library versions, thread count) in
`paths.cache_dir()`. `MOFIND_KERNEL` forces one (tests, benchmarks). On CUDA the kernel is "cuda" (float32 on
the device, same integers).

The first stage's coarse table (four rows a window) is chosen the same way, by measurement, among the kernel's
own rows, oneDNN's two layouts and a row-interleaved copy for AVX2 (`TABLES`, `calibrate_table`).

Everything is processed in fixed-size blocks of windows, so the working set of a search is bounded
(`BLOCK_WINDOWS` windows unpacked at a time) whatever the index size.

Windows with fewer valid patches than the grid are padded with copies of their first patch: a duplicate
never changes a max, so every window shares one (W, P, D) layout.
"""

from __future__ import annotations

import json
import os
import platform
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np

from ..machine import ISA_VARIABLES, machine_key as _machine_key  # noqa: F401 - ISA_VARIABLES: kernels' API
from . import avx2_dots
from .chunk import Chunk
from .codec import RotatedCodec
from .linalg import single_blas_thread
from .query_sums import QueryMap, query_sums

BLOCK_WINDOWS = 256
CPU_KERNELS = ("int8", "onednn-u8s8", "avx2-u8s8", "fp32-torch", "fp32-numpy")
INEXACT_KERNELS = ("bf16-torch",)  # timed for the report, never used: output rounding changes scores
# 11: first-stage scores summed per query in compiled code (query_sums.py), fused into the interleaved pass,
# tables timed with those sums;
# 10: the avx2-interleaved first-stage table; 9: tables timed with 4 query rows, not 6; 8: packed codes read by
# avx2-u8s8; 7: the avx2-u8s8 kernel; 6: first-stage tables timed on 32 MB (2 MB before); 5: float64 exactness
# reference
CALIBRATION_VERSION = 11
KERNEL_TABLE = "kernel"  # the first stage multiplies its table with the MaxSim kernel, block by block
PACKED_TABLE = "onednn-u8s8"  # ... or with oneDNN's prepacked u8 x s8 inner product (see PackedTable)
ROWS_TABLE = "onednn-u8-rows"  # ... or the same product with the table as u8 activations (see PlaneTable)
INTERLEAVED_TABLE = "avx2-interleaved"  # ... or AVX2's multiply-add on interleaved rows (InterleavedTable)


# -- kernels -------------------------------------------------------------------------------------------------
class Kernel:
    """(n, D) rows x (D, Q) query columns -> (n, Q) int32 dot products, exact; rows in `dtype`."""

    name = ""
    dtype = np.int8

    @staticmethod
    def available() -> bool:
        """Whether it runs on this machine (those that need a library kernel or an instruction set say)."""
        return True

    def queries(self, q8: np.ndarray):
        """(L, D) int8 query rows -> the (D, L) operand this kernel multiplies with."""
        raise NotImplementedError

    def dots(self, rows: np.ndarray, queries) -> np.ndarray:
        raise NotImplementedError

    def rows(self, levels: np.ndarray):
        """int8 level indices -> this kernel's operand (a no-op for int8)."""
        return levels if self.dtype == np.int8 else levels.astype(self.dtype)

    def max_dots(self, levels, queries, width: int) -> np.ndarray:
        """(n * width, D) rows of n windows -> (n, Q) int32: per window, the best row for each query column."""
        dots = self.dots(levels, queries)
        return dots.reshape(-1, width, dots.shape[-1]).max(axis=1)

    def packed_max_dots(self, packed, starts, counts, codec: RotatedCodec, queries) -> np.ndarray | None:
        """`max_dots` straight from packed codes, window i being rows starts[i] .. + counts[i] of `packed`; None
        where this kernel has no such path (the caller unpacks first)."""
        return None

    def picked_max_dots(self, windows: np.ndarray, picks: np.ndarray, queries) -> np.ndarray | None:
        """`max_dots` of windows[picks] for (W, width, D) rows in this kernel's operand (a chunk kept whole), read
        where they lie; None where this kernel has no such path (the caller gathers them first)."""
        return None

    def describe(self) -> str:
        return self.name


class Int8Kernel(Kernel):
    name = "int8"
    dtype = np.int8

    def queries(self, q8):
        import torch

        return torch.from_numpy(np.ascontiguousarray(q8.T))

    def dots(self, rows, queries):
        import torch

        with torch.inference_mode():
            return int_matmul(torch.from_numpy(rows), queries).numpy()

    def max_dots(self, levels, queries, width):
        import torch

        with torch.inference_mode():
            product = int_matmul(torch.from_numpy(levels), queries)
            return product.view(-1, width, product.shape[-1]).amax(1).numpy()


class TorchFloatKernel(Kernel):
    name = "fp32-torch"
    dtype = np.float32

    def queries(self, q8):
        import torch

        return torch.from_numpy(np.ascontiguousarray(q8.T.astype(np.float32)))

    def dots(self, rows, queries):
        import torch

        with torch.inference_mode():
            return (torch.from_numpy(rows) @ queries).numpy().astype(np.int32)

    def max_dots(self, levels, queries, width):
        import torch

        with torch.inference_mode():
            product = torch.from_numpy(levels) @ queries
            return product.view(-1, width, product.shape[-1]).amax(1).to(torch.int32).numpy()


class NumpyFloatKernel(Kernel):
    name = "fp32-numpy"
    dtype = np.float32

    def queries(self, q8):
        return np.ascontiguousarray(q8.T.astype(np.float32))

    def dots(self, rows, queries):
        with single_blas_thread():
            return (rows @ queries).astype(np.int32)


class CudaKernel(Kernel):
    """float32 on a CUDA device: rows are copied per block (the codes stay in host memory)."""

    name = "cuda"
    dtype = np.float32

    def __init__(self, device: str = "cuda"):
        self.device = device

    def queries(self, q8):
        import torch

        return torch.from_numpy(np.ascontiguousarray(q8.T.astype(np.float32))).to(self.device)

    def rows(self, levels):
        return levels  # converted on the device

    def dots(self, rows, queries):
        import torch

        with torch.inference_mode():
            product = torch.from_numpy(np.ascontiguousarray(rows)).to(self.device).float() @ queries
            return product.round().to(torch.int32).cpu().numpy()

    def max_dots(self, levels, queries, width):
        import torch

        with torch.inference_mode():
            product = torch.from_numpy(np.ascontiguousarray(levels)).to(self.device).float() @ queries
            best = product.view(-1, width, product.shape[-1]).amax(1)
            return best.round().to(torch.int32).cpu().numpy()


@dataclass(frozen=True)
class PackedQueries:
    """Query rows prepacked as oneDNN weights; `shape` is (D, L), as every other kernel's operand."""

    weight: object
    shape: tuple[int, int]
    scales: object  # ones(L) and zeros(L): made once per query batch, not per product
    zero_points: object


PACKED_QUERIES_KEPT = 8  # the last queries' prepacked operands (a few concurrent searches)
_packed_queries: "OrderedDict[tuple, PackedQueries]" = OrderedDict()
_packed_lock = threading.Lock()


class OneDnnU8S8Kernel(Kernel):
    """Stored levels as uint8 activations x the query rows as prepacked int8 weights, through oneDNN's quantized
    inner product (`torch.ops.onednn.qlinear_pointwise`), float32 output.

    Why: the product of a search is tall and thin (tens of thousands of patch rows, a handful of query rows),
    the shape oneDNN's inference kernels are built for; the queries are packed once per search, and level
    indices are non-negative (0 .. 2**bits - 1), so they are already the u8 operand: no shift, no copy.
    Measured on 84k rows x 4 query rows (Xeon, VNNI + AMX): 0.63 ms against 1.07 ms for `torch._int_mm`.
    Exact: zero points 0, scales 1, every sum below 2**24, so the float32 outputs are the integers.
    """

    name = "onednn-u8s8"
    dtype = np.uint8

    @staticmethod
    def available() -> bool:
        return PackedTable.available()

    def queries(self, q8):
        """The prepacked operand, reused for the same rows: one search packs its query for the first stage, the
        re-rank and the name fusion's rescue, and each prepack cost ~0.3 ms (AMD EPYC, AVX2)."""
        import torch

        q8 = np.ascontiguousarray(q8, dtype=np.int8)
        key = (q8.shape, q8.tobytes())
        with _packed_lock:
            found = _packed_queries.get(key)
            if found is not None:
                _packed_queries.move_to_end(key)
                return found
        packed = PackedQueries(torch.ops.onednn.qlinear_prepack(torch.from_numpy(q8.copy()), None), q8.shape[::-1],
                               torch.ones(len(q8)), torch.zeros(len(q8), dtype=torch.int64))
        with _packed_lock:
            _packed_queries[key] = packed
            while len(_packed_queries) > PACKED_QUERIES_KEPT:
                _packed_queries.popitem(last=False)
        return packed

    def rows(self, levels):
        return levels.view(np.uint8) if levels.dtype == np.int8 else levels.astype(np.uint8)

    def _product(self, rows, queries):
        import torch

        with torch.inference_mode():
            return torch.ops.onednn.qlinear_pointwise(
                torch.from_numpy(np.ascontiguousarray(rows).view(np.uint8)), 1.0, 0, queries.weight, queries.scales,
                queries.zero_points, None, 1.0, 0, torch.float32, "none", [], "")

    def dots(self, rows, queries):
        import torch

        return self._product(rows, queries).to(torch.int32).numpy()

    def max_dots(self, levels, queries, width):
        import torch

        product = self._product(levels, queries)
        return product.view(-1, width, product.shape[-1]).amax(1).to(torch.int32).numpy()


@dataclass(frozen=True)
class PaddedQueries:
    """Query rows as `avx2_dots` reads them (padded to a multiple of 4 rows); `shape` is (D, L)."""

    rows: np.ndarray
    shape: tuple[int, int]


class Avx2U8S8Kernel(Kernel):
    """Stored levels as u8 x query rows as s8 with AVX2's `vpmaddubsw`, the max over each window's rows fused in
    (`avx2_dots`, compiled by numba). Why: without VNNI the libraries' int8 products are slow for a handful of
    query rows; on an AMD EPYC (Zen 3) this ran 2.5x faster than oneDNN's for 4 query rows, 1.7x for 8."""

    name = "avx2-u8s8"
    dtype = np.uint8
    # Its cost grows with the query rows (oneDNN's hardly does), yet it stays ahead for a batch too: the match-quality
    # null bank (62 prompts, ~370 rows) over 10k windows took 649 ms with it and 2,106 ms with oneDNN's product for
    # batches over 24 rows, whose (rows x 370) float output no longer stays in cache (AMD EPYC, bench_quality, two
    # runs); from 4 to 24 rows it took 0.6 to 3.6 ms against oneDNN's 2.5 to 4.8 (256 windows of packed rows).

    available = staticmethod(avx2_dots.available)
    rows = OneDnnU8S8Kernel.rows  # levels are already the u8 operand

    def queries(self, q8):
        q8 = np.asarray(q8, np.int8)
        return PaddedQueries(avx2_dots.padded_queries(q8), q8.shape[::-1])

    def dots(self, rows, queries):
        return self.max_dots(rows, queries, 1)

    def max_dots(self, levels, queries, width):
        return avx2_dots.max_dots(levels, queries.rows, width, queries.shape[1])

    def packed_max_dots(self, packed, starts, counts, codec, queries):
        if codec.dim % (2 * avx2_dots.CHUNK) or codec.bits not in (4, 5):
            return None
        return avx2_dots.packed_max_dots(np.asarray(packed, np.uint8), starts, counts, codec.dim, codec.bits,
                                         queries.rows, queries.shape[1])

    def picked_max_dots(self, windows, picks, queries):
        return avx2_dots.picked_max_dots(windows, picks, queries.rows, queries.shape[1])


def int_matmul(a, b):
    """(m, k) int8 @ (k, n) int8 -> (m, n) int32, with an exact float fallback where `_int_mm` is missing."""
    import torch

    try:
        return torch._int_mm(a, b)
    except (RuntimeError, AttributeError):
        return (a.float() @ b.float()).round().to(torch.int32)  # |sums| < 2**24: exact in float32


def make_kernel(name: str) -> Kernel:
    if name == "int8":
        return Int8Kernel()
    if name == "fp32-torch":
        return TorchFloatKernel()
    if name == "fp32-numpy":
        return NumpyFloatKernel()
    if name == OneDnnU8S8Kernel.name:
        return OneDnnU8S8Kernel()
    if name == Avx2U8S8Kernel.name:
        return Avx2U8S8Kernel()
    if name.startswith("cuda"):
        return CudaKernel(name)
    raise ValueError(f"unknown MaxSim kernel {name!r}; use one of {', '.join(CPU_KERNELS)} or cuda")


# -- calibration -----------------------------------------------------------------------------------------
@dataclass
class KernelChoice:
    """Which kernel runs and why: the timings of one calibration (ms per block of `block` windows)."""

    kernel: Kernel
    reason: str
    timings_ms: dict[str, float] = field(default_factory=dict)
    cached: bool = False
    table: str = KERNEL_TABLE  # the first stage's coarse table: KERNEL_TABLE or a name in TABLES
    table_reason: str = "the MaxSim kernel"

    def to_dict(self) -> dict:
        return {"name": self.kernel.name, "reason": self.reason,
                "timings_ms": {k: round(v, 3) for k, v in self.timings_ms.items()}, "cached": self.cached,
                "first_stage": {"table": self.table, "reason": self.table_reason}}


def machine_key(dim: int, patches: int) -> str:
    """What makes a calibration valid: CPU model and flags, the instruction-set overrides, library versions,
    threads, the block shape (`mofind.machine`)."""
    return _machine_key(dim, patches, CALIBRATION_VERSION)


def _calibration_file():
    from mofind.paths import cache_dir

    return cache_dir() / "kernel-calibration.json"


def _time(step, repeats: int) -> float:
    step()  # first call: allocation, lazy library set-up
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        step()
        best = min(best, time.perf_counter() - started)
    return best * 1000.0


def calibrate(codec: RotatedCodec, patches: int, queries: int = 8, block: int = BLOCK_WINDOWS // 2,
              repeats: int = 5) -> tuple[dict[str, float], list[str]]:
    """(ms per block for every CPU kernel that is exact here, the kernels that are not): unpack `block` windows of
    packed codes, multiply, max over patches.

    Exact means equal to a float64 product (exact for these integers). Why not compare the kernels with each
    other: without VNNI, oneDNN computes int8 x int8 through 16-bit pair sums that saturate, and `torch._int_mm`
    then gives wrong maxima (off by up to ~5,000 with oneDNN held to AVX2 on a Xeon, tests/backend/
    test_search_scale.py); as the reference it would have ruled out every correct kernel."""
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((block * patches, codec.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    packed = codec.encode(vectors)
    q8 = rng.integers(-127, 128, (queries, codec.dim)).astype(np.int8)
    levels = codec.levels(packed)
    reference = (levels.astype(np.float64) @ q8.T.astype(np.float64)).reshape(block, patches, -1).max(axis=1)
    timings, inexact = {}, []
    for name in CPU_KERNELS:
        kernel = make_kernel(name)
        if not kernel.available():
            continue
        try:
            operand = kernel.queries(q8)
            result = kernel.max_dots(kernel.rows(levels), operand, patches)
        except (RuntimeError, TypeError, ValueError):
            continue  # this torch build lacks it: never chosen
        starts, counts = np.arange(block) * patches, np.full(block, patches)
        fused = kernel.packed_max_dots(packed, starts, counts, codec, operand)
        if not np.array_equal(result, reference) or (fused is not None and not np.array_equal(fused, reference)):
            inexact.append(name)  # wrong integers on this CPU: never chosen
            continue
        if fused is not None:  # what a re-rank of windows no cache holds runs: unpacked in registers
            timings[name] = _time(lambda: kernel.packed_max_dots(packed, starts, counts, codec, operand), repeats)
        else:
            timings[name] = _time(lambda: kernel.max_dots(kernel.rows(codec.levels(packed)), operand, patches),
                                  repeats)
    try:
        import torch

        q16 = torch.from_numpy(q8.T.astype(np.float32)).bfloat16()
        timings["bf16-torch"] = _time(lambda: (torch.from_numpy(codec.levels(packed)).bfloat16() @ q16)
                                      .view(block, patches, -1).amax(1), repeats)
    except (RuntimeError, TypeError):
        pass
    return timings, inexact


#: Coarse rows the first-stage tables are timed on (32 MB at D = 128): more than a core's L2, so what is measured
#: is how each table streams from memory, as at a million windows. On a 2 MB table, which stays in cache, the
#: order flipped with oneDNN held to AVX2: the prepacked table took 0.95x the time of the row table there, but
#: 1.11x at 32 MB and 1.42x at 128 MB, and calibrating on 2 MB chose it for a 1 M-window library whose coarse
#: pass then took 280 ms of thread time a query instead of 175 (Xeon held to AVX2, 2 vCPUs, side by side).
TABLE_CALIBRATION_ROWS = 256 * 1024
#: The first rows whose maxima are checked against a float64 product (every block of both tables' layouts).
TABLE_CHECK_ROWS = 2 * 64 * BLOCK_WINDOWS * 4


def calibrate_table(kernel: Kernel, dim: int, queries: int = 4, rows: int = TABLE_CALIBRATION_ROWS,
                    repeats: int = 3) -> dict[str, float]:
    """ms per first-stage pass over `rows` coarse rows x `queries` query rows, for each table that is exact here
    (checked on the first TABLE_CHECK_ROWS rows against a float64 product, exact for these integers). A pass is
    what a search runs: the maxima and their sums into one query's scores (`query_sums`).

    Four query rows: what a short prompt keeps (the bench's 20 prompts keep 2 to 5 tokens). The avx2 kernel's
    cost grows with the rows and oneDNN's hardly does; timed with 6, a choice made while tests loaded the CPU
    kept oneDNN's row table on an EPYC where the kernel's own was faster for every prompt of the bench."""
    rng = np.random.default_rng(1)
    levels = rng.integers(0, 16, (rows, dim), dtype=np.int8)
    q8 = rng.integers(-127, 128, (queries, dim)).astype(np.int8)
    width = 4
    checked = min(rows, TABLE_CHECK_ROWS)
    reference = (levels[:checked].astype(np.float64) @ q8.T.astype(np.float64)).reshape(-1, width, queries).max(1)

    def exact(maxima) -> bool:
        return np.array_equal(np.asarray(maxima)[:len(reference)], reference)

    operand = kernel.queries(q8)
    table = kernel.rows(levels)
    step = 16 * BLOCK_WINDOWS * width  # the blocks `ChunkScan.coarse_scores` multiplies the kernel's rows in
    query_map = QueryMap(np.array([0, queries], np.int64), np.full(queries, 1e-3, np.float32), np.zeros(1, np.float32))
    scores = np.empty((rows // width, 1), np.float32)

    def kernel_maxima(start):
        return kernel.max_dots(table[start:start + step], operand, width)

    def kernel_pass():
        for start in range(0, rows, step):
            query_sums(kernel_maxima(start), query_map, scores[start // width:(start + step) // width])

    timings = {}
    if exact(np.concatenate([kernel_maxima(start) for start in range(0, rows, step)])):  # the kernel is exact: checked
        timings[KERNEL_TABLE] = _time(kernel_pass, repeats)
    for name, kind in TABLES.items():
        if not kind.available():
            continue
        try:
            built = kind(levels, width)  # the block size a chunk's table is built with
            operand = kind.queries(q8)
            if exact(built.maxima(operand)):  # exact here, or never used
                timings[name] = _time(lambda: built.scores(operand, query_map), repeats)
        except (RuntimeError, TypeError, ValueError):
            pass
    return timings


def _choose_table(kernel: Kernel, dim: int) -> tuple[str, str, dict[str, float]]:
    forced = os.environ.get("MOFIND_FIRST_STAGE")
    if forced == KERNEL_TABLE or forced in TABLES:
        if forced in TABLES and not TABLES[forced].available():
            raise ValueError(f"MOFIND_FIRST_STAGE={forced} does not run on this machine")
        return forced, "forced by MOFIND_FIRST_STAGE", {}
    if isinstance(kernel, CudaKernel):
        return KERNEL_TABLE, "the MaxSim kernel (on the GPU)", {}
    timings = calibrate_table(kernel, dim)
    if not timings:
        raise RuntimeError("no exact first-stage table on this machine (the MaxSim kernel itself gave wrong integers)")
    name = min(timings, key=timings.get)
    ranked = ", ".join(f"{n} {ms:.2f} ms" for n, ms in sorted(timings.items(), key=lambda item: item[1]))
    return name, f"fastest exact first-stage table measured on this machine ({ranked})", timings


_choice_lock = threading.Lock()


@lru_cache(maxsize=8)
def _cached_choice(key: str, dim: int, patches: int, device: str) -> KernelChoice:
    if device.startswith("cuda"):
        return KernelChoice(make_kernel(device), f"--device {device}: float32 on the GPU")
    forced = os.environ.get("MOFIND_KERNEL")
    if forced:
        kernel = make_kernel(forced)
        if not kernel.available():
            raise ValueError(f"MOFIND_KERNEL={forced} does not run on this machine")
        table, table_reason, _ = _choose_table(kernel, dim)
        return KernelChoice(kernel, "forced by MOFIND_KERNEL", table=table, table_reason=table_reason)
    path = _calibration_file()
    try:
        stored = json.loads(path.read_text()).get(key)
    except (OSError, ValueError, AttributeError):
        stored = None
    if isinstance(stored, dict) and stored.get("name") in CPU_KERNELS and not os.environ.get("MOFIND_FIRST_STAGE"):
        stage = stored.get("first_stage") or {}
        table = stage.get("table") if stage.get("table") in (KERNEL_TABLE, *TABLES) else KERNEL_TABLE
        if table in TABLES and not TABLES[table].available():
            table = KERNEL_TABLE
        return KernelChoice(make_kernel(stored["name"]), stored.get("reason", "cached calibration"),
                            dict(stored.get("timings_ms", {})), cached=True, table=table,
                            table_reason=stage.get("reason", "cached calibration"))
    codec = RotatedCodec.create(dim)
    timings, inexact = calibrate(codec, patches)
    exact = {name: ms for name, ms in timings.items() if name in CPU_KERNELS}
    name = min(exact, key=exact.get)  # fp32-numpy is exact everywhere (integers far below 2**24)
    ranked = ", ".join(f"{n} {ms:.2f} ms" for n, ms in sorted(timings.items(), key=lambda item: item[1]))
    reason = (f"fastest exact kernel measured on this machine (unpack + multiply + max, {BLOCK_WINDOWS // 2} "
              f"windows): {ranked}" + ("; bf16 is never used (it rounds scores)" if "bf16-torch" in timings else "")
              + (f"; not exact on this CPU, never used: {', '.join(inexact)}" if inexact else ""))
    kernel = make_kernel(name)
    table, table_reason, table_timings = _choose_table(kernel, dim)
    choice = KernelChoice(kernel, reason, timings | {f"first stage {n}": ms for n, ms in table_timings.items()},
                          table=table, table_reason=table_reason)
    try:
        data = json.loads(path.read_text()) if path.exists() else {}
        if not isinstance(data, dict):
            data = {}
    except (OSError, ValueError):
        data = {}
    if os.environ.get("MOFIND_FIRST_STAGE"):
        return choice  # a forced first-stage table is this process's choice, not a measurement to remember
    data[key] = choice.to_dict() | {"machine": platform.processor() or platform.machine(),
                                    "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    try:
        from .atomic import write_atomic

        write_atomic(path, json.dumps(data, indent=1).encode())
    except OSError:
        pass  # a read-only cache only costs a recalibration next time
    return choice


def choose_kernel(dim: int, patches: int, device: str = "cpu") -> KernelChoice:
    """The kernel this process uses for (dim, patches) codes: measured once per machine, then cached."""
    with _choice_lock:
        key = machine_key(dim, patches) if not device.startswith("cuda") else device
        return _cached_choice(key, dim, patches, device)


# -- the first stage's table -----------------------------------------------------------------------------------
class FirstStageTable:
    """What every table of TABLES offers the search: `maxima(operand)` ((W, L) integers, or floats holding them)
    and `scores(operand, query_map)`, those maxima through `query_sums` (a table may fuse the two)."""

    def maxima(self, queries) -> np.ndarray:
        raise NotImplementedError

    def scores(self, queries, query_map: QueryMap) -> np.ndarray:
        """(W, Q) float32 first-stage scores."""
        return query_sums(self.maxima(queries), query_map)


class PackedTable(FirstStageTable):
    """A chunk's coarse rows prepacked once for oneDNN's u8 x s8 inner product (the op torch's x86 int8
    inference uses: `torch.ops.onednn.qlinear_prepack` / `qlinear_pointwise`), with float32 output.

    Why: for this tall, thin product (millions of table rows, a handful of query rows) `torch._int_mm` re-packs
    the table on every call; prepacked, the first stage ran ~1.5x faster at a million windows and came within
    ~2x of reading the table at memory bandwidth (bench/bench_index.py). Exact: the queries are shifted to
    uint8 (q + 128, zero point 128), scales are 1, and every sum stays below 2**24, so the float32 outputs are
    the integer dot products. Rows are stored plane-major per block (coarse vector c of every window, then
    c + 1), so the max over a window's vectors is an element-wise max of contiguous planes.
    """

    def __init__(self, levels: np.ndarray, width: int, block: int = 16 * BLOCK_WINDOWS):
        import torch

        dim = levels.shape[1]
        self.width = width
        self.count = len(levels) // width
        self.nbytes = int(levels.nbytes)
        self.blocks = []
        for start in range(0, self.count, block):
            stop = min(start + block, self.count)
            planes = np.ascontiguousarray(levels[start * width:stop * width].reshape(stop - start, width, dim)
                                          .transpose(1, 0, 2)).reshape(-1, dim)
            self.blocks.append((stop - start, torch.ops.onednn.qlinear_prepack(torch.from_numpy(planes), [8, dim])))

    @staticmethod
    def available() -> bool:
        try:
            import torch

            return bool(torch.backends.mkldnn.is_available()) and hasattr(torch.ops.onednn, "qlinear_pointwise")
        except (ImportError, AttributeError, RuntimeError):
            return False

    @staticmethod
    def queries(q8: np.ndarray):
        """(L, D) int8 query rows -> the uint8 operand (zero point 128)."""
        import torch

        return torch.from_numpy((np.asarray(q8, np.int16) + 128).astype(np.uint8))

    def maxima(self, shifted) -> np.ndarray:
        """(W, L) float32 holding integers: per window, the best of its coarse rows for every query row."""
        import torch

        out = np.empty((self.count, shifted.shape[0]), np.float32)
        one, zero = torch.ones(1), torch.zeros(1, dtype=torch.int64)
        start = 0
        with torch.inference_mode():
            for count, packed in self.blocks:
                dots = torch.ops.onednn.qlinear_pointwise(shifted, 1.0, 128, packed, one, zero, None, 1.0, 0,
                                                          torch.float32, "none", [], "")
                out[start:start + count] = dots.view(-1, self.width, count).amax(1).T.numpy()  # (L, count).T
                start += count
        return out


class PlaneTable(FirstStageTable):
    """The first-stage table as uint8 activations of oneDNN's quantized inner product, the query rows as its
    prepacked int8 weights (`OneDnnU8S8Kernel`): `PackedTable` with the roles swapped.

    Why: the table is millions of rows and the query a handful, and oneDNN's inference kernels are built for
    many activation rows against few output channels: the product ran at ~16 GB/s of table (65k windows,
    4 query rows, Xeon with VNNI + AMX), against ~7 GB/s with the table as prepacked weights. Coarse levels are
    0..15, already the u8 operand. Rows are plane-major per block (coarse vector c of every window of the
    block, then c + 1), so the max over a window's vectors is an element-wise max of contiguous planes
    (a max over the 4-row axis of a window-major output cost as much as the product). Blocks are large (a whole
    chunk of ~8k windows is one product): each call costs ~0.1 ms of its own, as much as 16k rows of product.
    """

    available = staticmethod(OneDnnU8S8Kernel.available)

    @staticmethod
    def queries(q8: np.ndarray) -> PackedQueries:
        """(L, D) int8 query rows -> the prepacked weights."""
        return OneDnnU8S8Kernel().queries(q8)

    def __init__(self, levels: np.ndarray, width: int, block: int = 64 * BLOCK_WINDOWS):
        dim = levels.shape[1]
        self.width = width
        self.count = len(levels) // width
        self.block = block
        by_window = np.asarray(levels).view(np.uint8).reshape(self.count, width, dim)
        self.planes = np.empty((self.count * width, dim), np.uint8)
        for start in range(0, self.count, block):
            stop = min(start + block, self.count)
            self.planes[start * width:stop * width].reshape(width, stop - start, dim)[:] = \
                by_window[start:stop].transpose(1, 0, 2)
        self.nbytes = int(self.planes.nbytes)

    def maxima(self, queries) -> np.ndarray:
        """(W, L) float32 holding integers: per window, the best of its coarse rows for every query row."""
        kernel = OneDnnU8S8Kernel()
        out = np.empty((self.count, queries.shape[1]), np.float32)
        for start in range(0, self.count, self.block):
            stop = min(start + self.block, self.count)
            dots = kernel._product(self.planes[start * self.width:stop * self.width], queries).numpy()
            np.max(dots.reshape(self.width, stop - start, -1), axis=0, out=out[start:stop])
        return out


class InterleavedTable(FirstStageTable):
    """The first-stage table with each window's four rows side by side in every register
    (`avx2_dots.interleaved_rows`), multiplied by AVX2's byte multiply-add with no horizontal sums.

    Why: a first stage that stays in the CPU cache (a library of up to a few tens of thousands of windows) is
    bound by arithmetic, not memory, and on a CPU without VNNI the MaxSim kernel's own rows spend a third of their
    time summing each row's lanes; this layout sums a row in its own lane. Same bytes as the kernel's rows (one
    zero window pads an odd chunk). Exact for levels up to 31 (`interleaved_rows` refuses more)."""

    available = staticmethod(avx2_dots.interleaved_available)

    @staticmethod
    def queries(q8: np.ndarray) -> tuple[np.ndarray, int]:
        """(L, D) int8 query rows -> (the kernel's operand, L)."""
        return avx2_dots.interleaved_queries(q8), len(q8)

    def __init__(self, levels: np.ndarray, width: int):
        self.count = len(levels) // width
        self.table = avx2_dots.interleaved_rows(levels, width)
        self.nbytes = int(self.table.nbytes)

    def maxima(self, queries: tuple[np.ndarray, int]) -> np.ndarray:
        """(W, L) int32: per window, the best of its rows for every query row (a view into the padded result:
        `query_sums` reads it where it lies)."""
        operand, rows = queries
        return avx2_dots.interleaved_padded_max_dots(self.table, operand)[:self.count, :rows]

    def scores(self, queries: tuple[np.ndarray, int], query_map: QueryMap) -> np.ndarray:
        """`query_sums` of `maxima` in one compiled pass (`avx2_dots.interleaved_scores`)."""
        return avx2_dots.interleaved_scores(self.table, queries[0], self.count, query_map)


TABLES = {PACKED_TABLE: PackedTable, ROWS_TABLE: PlaneTable, INTERLEAVED_TABLE: InterleavedTable}
"""The first-stage tables that are not the MaxSim kernel's own rows: name -> FirstStageTable class (levels, width)
with `available()` and `queries(q8)`."""


# -- a bounded cache of unpacked blocks ----------------------------------------------------------------------
class BlockCache:
    """Unpacked code blocks kept up to a fixed byte budget; first come, kept until the snapshot goes.

    Why not LRU: an exact scan walks every block in order, so with an index larger than the budget an LRU
    cache would evict each block just before it is needed again and never hit. Pinning the first blocks
    that fit gives a hit rate of budget / index size, and the whole index while it is small (the budget's
    point: small libraries keep the old cached speed; large ones stream in bounded memory).
    """

    def __init__(self, budget_bytes: int):
        self.budget = max(0, int(budget_bytes))
        self.used = 0
        self._blocks: dict[tuple, np.ndarray] = {}
        self._held: dict[tuple, int] = {}  # (chunk, kernel) -> blocks kept
        self._whole: dict[tuple, np.ndarray] = {}  # (chunk, kernel) -> every block of it, as one array
        self._lock = threading.Lock()

    def get(self, key: tuple) -> np.ndarray | None:
        return self._blocks.get(key)

    def whole(self, chunk: str, kernel: str) -> np.ndarray | None:
        """The chunk's every window unpacked as one (W, P, D) array, when `offer_whole` kept it."""
        return self._whole.get((chunk, kernel))

    def _keys_of(self, chunk: str, kernel: str) -> list[tuple]:
        """Keys of this chunk's blocks kept for this kernel (callers hold the lock)."""
        return [key for key in self._blocks if key[:2] == (chunk, kernel)]

    def held_bytes(self, chunk: str, kernel: str) -> int:
        """Bytes of this chunk's blocks kept for this kernel."""
        with self._lock:
            return sum(self._blocks[key].nbytes for key in self._keys_of(chunk, kernel))

    def offer_whole(self, chunk: str, kernel: str, levels: np.ndarray, block: int) -> bool:
        """Keep a whole chunk unpacked as one array (and its blocks as views of it, for `get`), in place of any
        of its blocks kept before (an exact scan may have cached some); True if it fit."""
        with self._lock:
            held = self._keys_of(chunk, kernel)
            freed = sum(self._blocks[key].nbytes for key in held)
            if self.used - freed + levels.nbytes > self.budget:
                return False
            for key in held:
                del self._blocks[key]
            self.used -= freed
            for number, first in enumerate(range(0, len(levels), block)):
                self._blocks[(chunk, kernel, number)] = levels[first:first + block]
            self._held[(chunk, kernel)] = -(-len(levels) // block)
            self._whole[(chunk, kernel)] = levels
            self.used += levels.nbytes
            return True

    def holds(self, chunk: str, kernel: str) -> bool:
        """Whether any block of this chunk is kept for this kernel."""
        return self._held.get((chunk, kernel), 0) > 0

    def offer(self, key: tuple, block: np.ndarray) -> None:
        with self._lock:
            if key not in self._blocks and self.used + block.nbytes <= self.budget:
                self._blocks[key] = block
                self.used += block.nbytes
                self._held[key[:2]] = self._held.get(key[:2], 0) + 1

    def drop(self, prefix) -> None:
        """Forget every block of a chunk (it left the snapshot)."""
        with self._lock:
            for key in [k for k in self._blocks if k[0] == prefix]:
                self.used -= self._blocks.pop(key).nbytes
                self._held.pop(key[:2], None)
            for key in [k for k in self._whole if k[0] == prefix]:
                del self._whole[key]


# -- per-chunk views -----------------------------------------------------------------------------------------
def padded_rows(starts: np.ndarray, counts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row index into the packed patch array for each (window, slot) and whether the slot is real.

    Computed per block from the windows' first rows and patch counts (never kept for a whole chunk:
    that was 1.5 KB per window, most of a searcher's memory at a million windows).

    >>> rows, real = padded_rows(np.array([0, 2]), np.array([2, 3]), 3)
    >>> rows.tolist(), real.tolist()
    ([[0, 1, 0], [2, 3, 4]], [[True, True, False], [True, True, True]])
    """
    slot = np.arange(width)[None, :]
    real = slot < np.asarray(counts)[:, None]
    rows = np.asarray(starts, dtype=np.int64)[:, None] + np.where(real, slot, 0)
    return rows, real


class ChunkScan:
    """Block-wise access to one chunk's codes; only the compact first-stage table stays in memory.

    `coarse` is the two-stage first pass: COARSE_SIZE vectors per window (see pooling.coarse_levels), unpacked
    once into the kernel's dtype (512 B per window as int8, 2 KiB as float32). Everything else (all
    patches, the 32 pooled vectors) is unpacked per block of windows while a search runs.
    """

    def __init__(self, chunk: Chunk, codec: RotatedCodec, pooled_codec: RotatedCodec, num_patches: int):
        self.chunk = chunk
        self.codec = codec
        self.pooled_codec = pooled_codec
        self.num_patches = num_patches
        self.offsets = np.asarray(chunk.arrays["win_offsets"])  # (W + 1,) int64, memory-mapped
        self.pool_width = len(chunk.arrays["pooled"]) // max(chunk.num_windows, 1)
        self._coarse: dict = {}
        self._lock = threading.Lock()

    @property
    def num_windows(self) -> int:
        return self.chunk.num_windows

    def padded(self, windows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(rows (n, P), real (n, P)) of some windows: see `padded_rows`."""
        windows = np.asarray(windows, dtype=np.int64)
        starts = self.offsets[windows]
        return padded_rows(starts, self.offsets[windows + 1] - starts, self.num_patches)

    def real(self, windows: np.ndarray) -> np.ndarray:
        """(n, P) bool: which slots of some windows hold a stored patch (the others repeat the first)."""
        return self.padded(windows)[1]

    def window_levels(self, windows: np.ndarray) -> np.ndarray:
        """(n * P, D) int8 level indices of some windows (padded to P rows each), unpacked now.

        The codes are unpacked where they lie in the memory map (unpack.py: no read calls, no copy, the GIL
        free). Each page a read touches stays mapped, with the page-cache folio around it, until the caller
        releases them (`exact_maxima` and `_cache_block` do after every block): a search then maps at most one
        block's pages per thread at a time, where seek + read calls (one per window) cost a fifth of a re-rank
        of 12,000 windows and kept two threads from sharing it (1 M windows, side by side)."""
        windows = np.asarray(windows, dtype=np.int64)
        starts = self.offsets[windows]
        counts = self.offsets[windows + 1] - starts
        patches = self.chunk.arrays["patches"]
        if np.all(counts == self.num_patches):  # full windows (the usual case): P rows from each start
            return self.codec.gathered_levels(patches, starts, self.num_patches)
        rows = padded_rows(starts, counts, self.num_patches)[0].reshape(-1)
        return self.codec.gathered_levels(patches, rows, 1)

    def pooled_levels(self, windows: np.ndarray) -> np.ndarray:
        """(n * K, D) int8 levels of the pooled vectors of some windows."""
        pooled = np.asarray(self.chunk.arrays["pooled"])
        if len(windows) == 0:
            return np.zeros((0, self.pooled_codec.dim), np.int8)
        # a window's K vectors are contiguous: unpacked where they lie in the memory map
        return self.pooled_codec.gathered_levels(pooled, np.asarray(windows, np.int64) * self.pool_width,
                                                 self.pool_width)

    def coarse(self, kernel: Kernel, table: str = KERNEL_TABLE):
        """The first-stage table, built once per chunk and kernel: (W * C, D) rows in the kernel's dtype
        (KERNEL_TABLE), or the named table of TABLES."""
        key = (kernel.name, table)
        with self._lock:
            found = self._coarse.get(key)
            if found is None:
                from .pooling import coarse_levels

                levels = coarse_levels(self.chunk, self.pooled_codec, self.pool_width)
                built = TABLES[table](levels, self.coarse_width) if table in TABLES else kernel.rows(levels)
                self._coarse = {key: built}  # one table per chunk: a kernel change replaces it
                return built
            return found

    @property
    def coarse_kind(self) -> str:
        """"regions" or "kmeans": which first-stage table this chunk has (pooling.coarse_kind)."""
        from .pooling import coarse_kind

        return coarse_kind(self.chunk)

    @property
    def coarse_width(self) -> int:
        from .pooling import COARSE_SIZE

        return COARSE_SIZE

    def resident_bytes(self) -> int:
        return sum(table.nbytes for table in self._coarse.values())

    def unpacked_bytes(self, kernel: Kernel, windows: int | None = None) -> int:
        """Bytes of `windows` (default: all) of this chunk's windows unpacked into the kernel's dtype."""
        count = self.num_windows if windows is None else windows
        return count * self.num_patches * self.codec.dim * np.dtype(kernel.dtype).itemsize

    def _cache_block(self, kernel: Kernel, cache: BlockCache, number: int, block: int) -> np.ndarray:
        """Unpack block `number` whole and offer it to the cache; (size, P, D) in the kernel's dtype."""
        first = number * block
        levels = self._unpacked(kernel, first, min(first + block, self.num_windows) - first)
        cache.offer((self.chunk.name, kernel.name, number), levels)
        return levels

    def _unpacked(self, kernel: Kernel, first: int, size: int):
        """Windows [first, first + size) in the kernel's rows, (size, P, D); their mapped codes are released."""
        levels = kernel.rows(self.window_levels(np.arange(first, first + size))).reshape(size, self.num_patches, -1)
        self.chunk.release("patches")  # unpacked: the mapped codes can go
        return levels

    def fill_cache(self, kernel: Kernel, cache: BlockCache, block: int = BLOCK_WINDOWS) -> None:
        """Unpack every block of this chunk into `cache` (as far as its budget goes), as an exact scan would.

        A chunk that fits whole goes in as one array (`BlockCache.offer_whole`): a re-rank then gathers its
        windows with one call per `block` windows instead of walking the blocks one by one in Python, which
        held the GIL for about half of a 125-window re-rank (1.0 ms, of which the gather and the product took
        0.45) and kept two threads from sharing it (10k windows, Xeon, 2 vCPUs)."""
        if self._fill_whole(kernel, cache, block):
            return
        for number, first in enumerate(range(0, self.num_windows, block)):
            if cache.get((self.chunk.name, kernel.name, number)) is not None:
                continue
            if cache.used + self.unpacked_bytes(kernel, min(block, self.num_windows - first)) > cache.budget:
                return
            self._cache_block(kernel, cache, number, block)

    def _fill_whole(self, kernel: Kernel, cache: BlockCache, block: int) -> bool:
        """Unpack the whole chunk into one array and offer it (in place of blocks of it cached before); False
        (nothing changed) where it does not fit or the kernel's rows are not a numpy array (the GPU kernel's live
        on the device)."""
        if cache.whole(self.chunk.name, kernel.name) is not None:
            return True
        needed = self.unpacked_bytes(kernel) - cache.held_bytes(self.chunk.name, kernel.name)
        if self.num_windows == 0 or cache.used + needed > cache.budget:
            return False
        whole = None
        for first in range(0, self.num_windows, block):
            stop = min(first + block, self.num_windows)
            levels = self._unpacked(kernel, first, stop - first)
            if not isinstance(levels, np.ndarray):
                return False
            if whole is None:
                whole = np.empty((self.num_windows,) + levels.shape[1:], levels.dtype)
            whole[first:stop] = levels
        return cache.offer_whole(self.chunk.name, kernel.name, whole, block)

    # -- block loops ----------------------------------------------------------------------------------------
    def exact_maxima(self, windows: np.ndarray, kernel: Kernel, queries, cache: BlockCache | None = None,
                     block: int = BLOCK_WINDOWS) -> np.ndarray:
        """(len(windows), Q) int32 MaxSim maxima over every patch, `block` windows at a time.

        Blocks are aligned to the chunk (window // block). A block that is in `cache` is read from there; one
        that this call scans for the most part (an exact scan) is unpacked whole and offered to the cache;
        the scattered windows of a re-rank are gathered and unpacked `block` at a time, never whole blocks.
        """
        windows = np.asarray(windows, dtype=np.int64)
        out = np.empty((len(windows), _columns(queries)), np.int32)
        whole = cache.whole(self.chunk.name, kernel.name) if cache is not None else None
        if whole is not None:  # the whole chunk is unpacked in one array: no per-block walk
            self._whole_maxima(whole, windows, kernel, queries, out, block)
            return out
        ids = windows // block
        order = np.argsort(ids, kind="stable")
        if not self._touches_cache(ids, kernel, cache, block):  # a re-rank of a chunk the cache never held:
            self._scattered_maxima(windows, order, kernel, queries, out, block)  # no per-block bookkeeping
            return out
        bounds = np.flatnonzero(np.diff(ids[order])) + 1
        scattered, gathered = [], []
        for where in np.split(order, bounds) if len(order) else []:
            number = int(ids[where[0]])
            key = (self.chunk.name, kernel.name, number)
            cached = cache.get(key) if cache is not None else None
            first = number * block
            size = min(first + block, self.num_windows) - first
            if cached is None and cache is not None and cache.used < cache.budget and 2 * len(where) >= size:
                cached = self._cache_block(kernel, cache, number, block)
            if cached is None:
                scattered.append(where)
                continue
            local = windows[where] - first
            if len(local) == len(cached) and np.array_equal(local, np.arange(len(cached))):
                out[where] = kernel.max_dots(cached.reshape(len(local) * self.num_patches, -1), queries,
                                             self.num_patches)
            else:  # a few windows of a cached block (a re-rank): gathered, then multiplied with the others
                gathered.append((where, cached, local))
                if sum(len(w) for w, _, _ in gathered) >= block:
                    self._gathered_maxima(gathered, kernel, queries, out)
        self._gathered_maxima(gathered, kernel, queries, out)
        if scattered:
            self._scattered_maxima(windows, np.concatenate(scattered), kernel, queries, out, block)
        return out

    def _touches_cache(self, ids: np.ndarray, kernel: Kernel, cache: BlockCache | None, block: int) -> bool:
        """Whether `exact_maxima` would read or fill `cache` for windows in these blocks: it holds a block of
        this chunk, or it has room and some block is at least half scanned (then it is unpacked whole).

        Why ask first: a re-rank of 12,000 windows of a million touches ~4,000 blocks a few windows each, and
        walking them one by one in Python is pure overhead where the cache holds none of them: skipping the
        walk took a 1 M two-stage search from 299 to 286-290 ms (p50, side by side, Xeon, 2 vCPUs)."""
        if cache is None:
            return False
        if cache.holds(self.chunk.name, kernel.name):
            return True
        if cache.used >= cache.budget or len(ids) == 0:
            return False
        counts = np.bincount(ids)
        present = np.flatnonzero(counts)
        sizes = np.minimum((present + 1) * block, self.num_windows) - present * block
        return bool(np.any(2 * counts[present] >= sizes))

    def _scattered_maxima(self, windows: np.ndarray, positions: np.ndarray, kernel: Kernel, queries,
                          out: np.ndarray, block: int) -> None:
        """out[positions] for windows read where they lie in the memory map, `block` windows per product."""
        patches = self.chunk.arrays["patches"]
        for start in range(0, len(positions), block):
            part = positions[start:start + block]
            starts = self.offsets[windows[part]]
            found = kernel.packed_max_dots(patches, starts, self.offsets[windows[part] + 1] - starts, self.codec,
                                           queries)  # padded slots repeat a first patch: never a new max
            out[part] = found if found is not None else \
                kernel.max_dots(kernel.rows(self.window_levels(windows[part])), queries, self.num_patches)
            self.chunk.release("patches")  # what the block mapped: at most one block's pages at a time

    def _whole_maxima(self, whole: np.ndarray, windows: np.ndarray, kernel: Kernel, queries, out: np.ndarray,
                      block: int) -> None:
        """out for windows of a chunk kept whole (`BlockCache.whole`), `block` windows per product: a run of
        consecutive windows (an exact scan) is multiplied where it lies, scattered ones are read where they lie
        by a kernel that can (`picked_max_dots`) and gathered first for the others."""
        for start in range(0, len(windows), block):
            part = windows[start:start + block]
            first, last = int(part[0]), int(part[-1])
            if last - first + 1 == len(part) and np.all(np.diff(part) == 1):
                found = kernel.max_dots(whole[first:last + 1].reshape(len(part) * self.num_patches, -1), queries,
                                        self.num_patches)
            else:
                found = kernel.picked_max_dots(whole, part, queries)
                if found is None:
                    levels = np.take(whole, part, axis=0)
                    found = kernel.max_dots(levels.reshape(len(part) * self.num_patches, -1), queries,
                                            self.num_patches)
            out[start:start + len(part)] = found

    def _gathered_maxima(self, gathered: list, kernel: Kernel, queries, out: np.ndarray) -> None:
        """One product for the cached windows gathered so far, taken straight into one buffer (one call instead
        of one per block, no second copy); empties the list."""
        if not gathered:
            return
        where = np.concatenate([w for w, _, _ in gathered])
        first = gathered[0][1]
        levels = np.empty((len(where),) + first.shape[1:], first.dtype)
        at = 0
        for _, cached, local in gathered:
            np.take(cached, local, axis=0, out=levels[at:at + len(local)])
            at += len(local)
        out[where] = kernel.max_dots(levels.reshape(len(where) * self.num_patches, -1), queries, self.num_patches)
        gathered.clear()

    def pooled_maxima(self, windows: np.ndarray, kernel: Kernel, queries, block: int = 4 * BLOCK_WINDOWS,
                      release: bool = True):
        """(len(windows), Q) int32 maxima over the 32 pooled vectors (the middle stage); `release`: drop the
        chunk's mapped pooled pages afterwards (see below; `Searcher` keeps them in a small library)."""
        out = np.empty((len(windows), _columns(queries)), np.int32)
        pooled = self.chunk.arrays["pooled"]
        for start in range(0, len(windows), block):
            part = np.asarray(windows[start:start + block], np.int64)
            found = kernel.packed_max_dots(pooled, part * self.pool_width, np.full(len(part), self.pool_width),
                                           self.pooled_codec, queries) if len(part) else None
            out[start:start + len(part)] = found if found is not None else \
                kernel.max_dots(kernel.rows(self.pooled_levels(part)), queries, self.pool_width)
        # the middle stage's scattered reads map (fault-around) most of the chunk's pooled pages: drop them now,
        # so one query's peak resident set stays bounded too (Searcher.bound_mapped_pages; ~3 % of a 1M query)
        if release:
            self.chunk.release("pooled")
        return out

    def coarse_scores(self, kernel: Kernel, queries, query_map: QueryMap, block: int = 16 * BLOCK_WINDOWS,
                      table: str = KERNEL_TABLE, operand=None) -> np.ndarray:
        """(W, Q) float32 first-stage scores: per block, the integer maxima through the queries' affine map
        (`query_sums`).

        With `table` one of TABLES and `operand` its `queries(q8)`, that table gives the maxima; the scores are
        identical (the same sums of the same integers)."""
        built = self.coarse(kernel, table)
        if table in TABLES:  # the table gives the whole chunk's scores at once
            return built.scores(operand, query_map)
        count, width = self.num_windows, self.coarse_width
        out = np.empty((count, query_map.queries), np.float32)
        for start in range(0, count, block):
            stop = min(start + block, count)
            query_sums(kernel.max_dots(built[start * width:stop * width], queries, width), query_map, out[start:stop])
        return out


def _columns(queries) -> int:
    return int(queries.shape[1])


def symmetric_dots(levels: np.ndarray, real: np.ndarray, alpha: np.ndarray, alpha_sum: np.ndarray,
                   top_level: int, kernel: Kernel) -> tuple[np.ndarray, np.ndarray]:
    """Motion-to-motion MaxSim in both directions, on integers, for one block of windows.

    levels (W * P, D) int8 stored level indices k, real (W, P) bool, alpha (A, D) int8 = 2k - top_level of
    the example window's A valid patches (top_level = level_count - 1), alpha_sum (A,) int32. With a = alpha
    and b = 2k - top_level the integer dot of the two reconstructions is a.b = 2 (a.k) - top_level sum(a);
    one global factor (step/2)^2 turns it into a cosine, so maxima can be taken on the integers in both
    directions.

    Returns (forward (W,), backward (W,)) float64 sums divided by counts, still to be scaled by (step/2)^2:
    forward = mean over the example's patches of the best stored patch, backward = mean over each stored
    window's real patches of the best example patch.
    """
    count, patches = real.shape
    dots = kernel.dots(kernel.rows(levels), kernel.queries(alpha)).astype(np.int64)
    dots = (2 * dots - top_level * alpha_sum.astype(np.int64)).reshape(count, patches, -1)
    forward = dots.max(axis=1).astype(np.float64).mean(axis=1)
    best_example = dots.max(axis=2).astype(np.float64)
    backward = (best_example * real).sum(axis=1) / real.sum(axis=1)
    return forward, backward
