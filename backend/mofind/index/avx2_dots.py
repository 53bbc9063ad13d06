"""MaxSim maxima on integers with AVX2's byte multiply-add (`vpmaddubsw`), compiled by numba: the kernel for
CPUs without VNNI.

Why hand-written: a search multiplies hundreds of thousands of stored rows by a handful of query rows (a prompt
is 2 to 10 tokens), and without VNNI the libraries' int8 products are built for the other shape. On an AMD EPYC
(Zen 3, AVX2, one thread) oneDNN's u8 x s8 inner product took 0.99 ms for 256 windows x 168 patches against 4
query rows, and numba's own loops, integer or float, never came near it (LLVM does not vectorise their
reductions into `vpmaddwd`); this kernel took 0.39 ms (0.71 against 1.24 ms at 8 query rows), the max over each
window's rows fused in, no product array written. The instructions are reached through LLVM's intrinsics
(`llvm.x86.avx2.pmadd.ub.sw`, `llvm.x86.avx2.pmadd.wd`, `llvm.x86.avx2.phadd.d`) from a numba `intrinsic`.

A second layout serves the first stage's coarse table (`interleaved_*`): each register holds 4 dims of 8 rows,
so a row's sum builds up in its own lane and no horizontal sums are needed (kernels.InterleavedTable).

Exact: stored levels are u8 0..31 and query rows s8 -127..127 (-128 too), so each 16-bit pair sum of
`vpmaddubsw` is at most 2 x 31 x 128 = 7,936 (no saturation), and four chunks' sums (31,744 < 2**15) are widened
to 32 bits (`vpmaddwd` by ones) together. The calibration checks every kernel against a float64 product before
it can be chosen (kernels.py).
"""

from __future__ import annotations

import functools

import numpy as np

try:
    import numba
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils
    from numba.extending import intrinsic

    from .query_sums import _sums_into
except ImportError:  # pragma: no cover - the project installs numba; this keeps other platforms working
    numba = None

LANES = 4  # query rows per call: their four sums come out of one horizontal reduction
CHUNK = 32  # bytes per AVX2 register
GROUP = 4  # chunks summed in 16 bits before widening: 4 x 7,936 = 31,744 < 2**15
#: How far ahead of the row being multiplied its successors are prefetched, in bytes of the rows' stream. Why: a
#: pass over rows that are not in the cache (the coarse table of 100k windows and up) left the multiplies waiting on
#: memory; 4 M rows of 128 bytes took 57 ms on one thread and 39 ms with 2 KB prefetched ahead (42 ms at 4 KB,
#: 45 at 1 KB), and 42 against 30 ms on two threads (AMD EPYC, Zen 3, 2 vCPUs). A prefetch never faults, so the
#: stream may run past the last row.
PREFETCH_BYTES = 2048
LINE = 64  # bytes per cache line
BLOCK_ROWS = 8  # stored rows of an interleaved table a 32-byte chunk holds (4 dims of each): two 4-row windows
PIECE_BLOCKS = 256  # blocks `interleaved_scores` sums at a time: 512 windows, 256 KB of a 128-dim table


@functools.cache
def available() -> bool:
    """numba is here, this CPU has AVX2, and both entry points compile and give the right integers on a tiny case."""
    if numba is None:
        return False
    try:
        from llvmlite import binding

        if not binding.get_host_cpu_features().get("avx2", False):
            return False
        from .unpack import levels_numpy

        dim = 2 * CHUNK
        packed = (np.arange(3 * (dim // 2 + dim // 8)) * 37 % 256).astype(np.uint8).reshape(3, -1)
        levels = levels_numpy(packed, dim, 5)
        q8 = (np.arange(2 * dim) * 11 % 255 - 127).astype(np.int8).reshape(2, dim)
        expected = levels.astype(np.int64) @ q8.T.astype(np.int64)
        queries = padded_queries(q8)
        return bool(np.array_equal(max_dots(levels, queries, 1, 2), expected)
                    and np.array_equal(picked_max_dots(levels[:, None], np.array([2, 0]), queries, 2),
                                       expected[[2, 0]])
                    and np.array_equal(packed_max_dots(packed, np.array([0]), np.array([3]), dim, 5, queries, 2),
                                       expected.max(0, keepdims=True)))
    except Exception:  # noqa: BLE001 - any failure to compile or run means: not on this machine
        return False


@functools.cache
def interleaved_available() -> bool:
    """`available()`, and the interleaved table's kernel compiles and gives the right integers on a tiny case
    (three windows: an odd count, padded)."""
    if not available():
        return False
    try:
        dim = 4 * GROUP
        levels = (np.arange(12 * dim) * 7 % 32).astype(np.uint8).reshape(12, dim)
        q8 = (np.arange(5 * dim) * 11 % 255 - 127).astype(np.int8).reshape(5, dim)
        expected = (levels.astype(np.int64) @ q8.T.astype(np.int64)).reshape(3, 4, 5).max(1)
        return bool(np.array_equal(interleaved_max_dots(interleaved_rows(levels, 4), interleaved_queries(q8), 3, 5),
                                   expected))
    except Exception:  # noqa: BLE001 - as in `available`
        return False


def padded_queries(q8: np.ndarray) -> np.ndarray:
    """(L, D) int8 query rows, zero rows added up to a multiple of LANES (their sums are dropped)."""
    q8 = np.asarray(q8, np.int8)
    out = np.zeros((-(-len(q8) // LANES) * LANES, q8.shape[1]), np.int8)
    out[:len(q8)] = q8
    return out


def max_dots(levels: np.ndarray, queries: np.ndarray, width: int, columns: int) -> np.ndarray:
    """(n * width, D) u8 rows of n windows x `padded_queries` -> (n, columns) int32: per window, the best row for
    each of the first `columns` query rows. D must be a multiple of 32."""
    levels = np.ascontiguousarray(levels).view(np.uint8)
    if levels.shape[1] % CHUNK or levels.shape[1] != queries.shape[1] or len(levels) % width:
        raise ValueError(f"rows {levels.shape} and queries {queries.shape} do not fit this kernel (width {width})")
    out = np.empty((len(levels) // width, len(queries)), np.int32)
    _window_maxima(levels, queries, width, out)
    return out[:, :columns]


def picked_max_dots(windows: np.ndarray, picks: np.ndarray, queries: np.ndarray, columns: int) -> np.ndarray:
    """`max_dots` of windows[picks] for (W, width, D) u8 `windows` (a chunk kept unpacked), read where they lie.

    Why: a re-rank of a cached chunk gathered its few hundred scattered windows into a new array first, and at
    10k windows that copy (~10 MB) took as long as the products (0.8 ms each, AMD EPYC, one thread)."""
    windows = np.asarray(windows)
    picks = np.asarray(picks, np.int64)
    if (windows.ndim != 3 or windows.dtype.itemsize != 1 or not windows.flags.c_contiguous
            or windows.shape[2] % CHUNK or windows.shape[2] != queries.shape[1]):
        raise ValueError(f"windows {windows.shape} and queries {queries.shape} do not fit this kernel")
    if len(picks) and (picks.min() < 0 or picks.max() >= len(windows)):
        raise IndexError("a picked window lies outside the windows")
    out = np.empty((len(picks), len(queries)), np.int32)
    _picked_window_maxima(windows.view(np.uint8), picks, queries, out)
    return out[:, :columns]


def packed_max_dots(packed: np.ndarray, starts: np.ndarray, counts: np.ndarray, dim: int, bits: int,
                    queries: np.ndarray, columns: int) -> np.ndarray:
    """The same maxima straight from packed codes (codec.py's layout: D/2 bytes of nibbles, dims j and j + D/2 in
    byte j, then at 5 bits D/8 bytes of fifth bits, dims in order, most significant bit first): window i is rows
    starts[i] .. starts[i] + counts[i] of `packed` (read where they lie, a memory map), unpacked in registers.

    Why: a re-rank spent more time unpacking rows into an array than multiplying them (AMD EPYC, 100k windows:
    30 against 21 ms a query on one thread); here a row's 80 bytes become its 128 levels with a few vector
    operations and are never written out. Padded slots are not visited: they repeat a window's first patch."""
    packed = np.asarray(packed)
    starts, counts = np.asarray(starts, np.int64), np.asarray(counts, np.int64)
    row_bytes = dim // 2 + (dim // 8 if bits == 5 else 0)
    if (dim % (2 * CHUNK) or bits not in (4, 5) or packed.dtype != np.uint8 or packed.ndim != 2
            or packed.shape[1] != row_bytes or not packed.flags.c_contiguous or queries.shape[1] != dim):
        raise ValueError(f"packed rows {packed.shape} ({bits} bits, D = {dim}) do not fit this kernel")
    if len(starts) and (counts.min() < 1 or starts.min() < 0 or (starts + counts).max() > len(packed)):
        raise IndexError("a window's rows lie outside the stored rows")
    out = np.empty((len(starts), len(queries)), np.int32)
    _packed_window_maxima(packed, starts, counts, dim, int(bits == 5), queries, out)
    return out[:, :columns]


def interleaved_rows(levels: np.ndarray, width: int) -> np.ndarray:
    """(n * width, D) u8 levels 0..31 of n windows (width 4) -> (ceil(n / 2), 8 * D) u8 blocks for
    `interleaved_max_dots`: block b holds windows 2b and 2b + 1 (a zero window pads an odd n), dims in groups of
    four, each group's 4 bytes of the block's 8 rows side by side (32 bytes, one register)."""
    levels = np.ascontiguousarray(levels).view(np.uint8)
    dim = levels.shape[1]
    if width * 2 != BLOCK_ROWS or dim % (4 * GROUP) or len(levels) % width:
        raise ValueError(f"rows {levels.shape} do not fit the interleaved kernel (width {width}, D a multiple "
                         f"of {4 * GROUP})")
    if len(levels) and int(levels.max()) > 31:
        raise ValueError("the interleaved kernel sums four chunks in 16 bits: levels must be at most 31")
    if (len(levels) // width) % 2:
        levels = np.concatenate([levels, np.zeros((width, dim), np.uint8)])
    blocks = len(levels) // BLOCK_ROWS
    return np.ascontiguousarray(levels.reshape(blocks, BLOCK_ROWS, dim // 4, 4).transpose(0, 2, 1, 3)) \
        .reshape(blocks, BLOCK_ROWS * dim)


def interleaved_queries(q8: np.ndarray) -> np.ndarray:
    """(L, D) int8 query rows -> (ceil(L / 4), 32 * D) int8: per group of four rows and group of four dims, each
    row's 4 bytes repeated for the 8 rows of a block (the operand `vpmaddubsw` multiplies a block chunk by)."""
    q8 = np.ascontiguousarray(q8, np.int8)
    if q8.ndim != 2 or q8.shape[1] % 4:
        raise ValueError(f"query rows {q8.shape} do not fit the interleaved kernel (D a multiple of 4)")
    out = np.empty((-(-len(q8) // LANES), BLOCK_ROWS * LANES * q8.shape[1]), np.int8)
    if numba is None:  # pragma: no cover - the same bytes through numpy's views
        queries = padded_queries(q8)
        grouped = queries.reshape(len(out), LANES, -1, 1, 4).transpose(0, 2, 1, 3, 4)
        out[:] = np.broadcast_to(grouped, (len(out), q8.shape[1] // 4, LANES, BLOCK_ROWS, 4)).reshape(len(out), -1)
    else:  # one compiled call: numpy's six steps took 30-50 us before a search's first stage (cold caches)
        _interleave_queries(q8, out)
    return out


def interleaved_max_dots(table: np.ndarray, queries: np.ndarray, windows: int, columns: int) -> np.ndarray:
    """`max_dots` of an `interleaved_rows` table (its first `windows` windows) and `interleaved_queries`:
    (windows, columns) int32, the same integers.

    Why a second layout: with a window's rows side by side in each register, one `vpmaddubsw` multiplies 8 rows
    by the same 4 query dims, and a row's sum builds up in its own 32-bit lane: no horizontal sums, the costliest
    part of `max_dots` after the multiplies. On an AMD EPYC (Zen 3, AVX2, one thread), 10k windows in cache:
    5.2 against 8.3 ns a row for 4 query rows, 9.1 against 14.9 for 8 (side by side)."""
    if windows > 2 * len(table):
        raise ValueError(f"table {np.shape(table)} holds fewer than {windows} windows")
    return interleaved_padded_max_dots(table, queries)[:windows, :columns]


def interleaved_padded_max_dots(table: np.ndarray, queries: np.ndarray) -> np.ndarray:
    """`interleaved_max_dots` before the padding is cut off: (2 * len(table), 4 * len(queries)) int32, C-contiguous
    (a padded window's and padded query rows' maxima are zeros of no meaning)."""
    table, queries = _interleaved_operands(table, queries)
    out = np.empty((2 * len(table), LANES * len(queries)), np.int32)
    _interleaved_window_maxima(table, queries, out)
    return out


def interleaved_scores(table: np.ndarray, queries: np.ndarray, windows: int, query_map) -> np.ndarray:
    """`query_sums.query_sums` of `interleaved_max_dots` (the first `windows` windows) in one pass: (windows, Q)
    float32 scores, the same as the two steps give.

    Why fused: the whole chunk's padded integer maxima were a new array every pass (262 KB at 8,193 windows and 8
    query rows), paid in page faults and a second pass over them; here each piece of PIECE_BLOCKS blocks is
    summed from a small buffer while it is still in the cache. The last group of query rows multiplies only its
    real rows: a 5-row prompt took 1.45x a 4-row one when its second group multiplied three zero rows too, and
    takes 1.1x now (73 against 66 us, 2,001 windows in cache, AMD EPYC Zen 3)."""
    table, queries = _interleaved_operands(table, queries)
    if windows > 2 * len(table) or query_map.rows > LANES * len(queries):
        raise ValueError(f"table {table.shape} and queries {queries.shape} do not hold {windows} windows and "
                         f"{query_map.rows} query rows")
    scores = np.empty((windows, query_map.queries), np.float32)
    _interleaved_scores(table, queries, windows, query_map.starts, query_map.weights, query_map.bias, scores)
    return scores


def _interleaved_operands(table: np.ndarray, queries: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """An `interleaved_rows` table and `interleaved_queries` operand as the compiled loops read them, checked."""
    table, queries = np.asarray(table, np.uint8), np.asarray(queries, np.int8)
    if (table.ndim != 2 or queries.ndim != 2 or table.shape[1] % (BLOCK_ROWS * 4 * GROUP)
            or queries.shape[1] != table.shape[1] * LANES or not table.flags.c_contiguous
            or not queries.flags.c_contiguous):
        raise ValueError(f"table {table.shape} and queries {queries.shape} do not fit the interleaved kernel")
    return table, queries


class _Ops:
    """The vector types and AVX2 intrinsics every kernel's IR uses, declared in the builder's module."""

    def __init__(self, builder):
        i8, i16, i32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
        self.bytes32, self.shorts, self.ints = ir.VectorType(i8, 32), ir.VectorType(i16, 16), ir.VectorType(i32, 8)
        self.builder = builder
        module = builder.module
        declare = cgutils.get_or_insert_function
        self.madd_bytes = declare(module, ir.FunctionType(self.shorts, [self.bytes32] * 2), "llvm.x86.avx2.pmadd.ub.sw")
        self.madd_shorts = declare(module, ir.FunctionType(self.ints, [self.shorts] * 2), "llvm.x86.avx2.pmadd.wd")
        self.pair_add = declare(module, ir.FunctionType(self.ints, [self.ints] * 2), "llvm.x86.avx2.phadd.d")


class _Lanes(_Ops):
    """LLVM IR for four query rows against one or two stored rows: the x86 intrinsics, four 32-bit accumulators per
    stored row, and the final horizontal sums folded into the running maxima. Shared by the intrinsics below.

    Why two rows at a time: each query chunk is loaded once for both rows, and both rows' sums come out of one
    reduction and one read-modify-write of the maxima. With `_by_groups`' straight-line path, per stored row against
    4 query rows (8): the coarse table 9.0-9.3 -> 8.1-8.3 ns (16.7 -> 14.0), pooled 4-bit rows 11.4 -> 10.8 ns
    (21.2-21.7 -> 19.5-19.8), 5-bit patch rows 12.6-13.2 -> 12.2-13.1 ns (24.0 -> 21.3-22.9); the coarse pass of a
    1 M-window search 31 -> 24 ms on two threads (AMD EPYC Zen 3, old and new code side by side, bench/search_probe).
    In a prototype, four rows at a time ran slower (AVX2 has 16 vector registers), and widening by sign extension
    instead of `vpmaddwd` slower still."""

    def __init__(self, builder, queries, stride, rows: int = 1):
        _Ops.__init__(self, builder)
        self.asked = [builder.inttoptr(builder.add(queries, builder.mul(stride, ir.Constant(stride.type, k))),
                                       self.bytes32.as_pointer()) for k in range(LANES)]
        self.sums = [[cgutils.alloca_once_value(builder, ir.Constant(self.ints, [0] * 8)) for _ in range(LANES)]
                     for _ in range(rows)]

    def widened(self, stored: list, indices: list) -> list:
        """Each stored row's chunks (u8 vectors, one list per row) times the query chunks at the same indices, summed
        in 16 bits and widened once: [row][query] 32-bit vectors."""
        b = self.builder
        out = [[None] * LANES for _ in stored]
        for k in range(LANES):
            pairs = [None] * len(stored)
            for at, index in enumerate(indices):
                asked = b.load(b.gep(self.asked[k], [index]), align=1)  # once for every stored row
                for r, chunks in enumerate(stored):
                    product = b.call(self.madd_bytes, [chunks[at], asked])
                    pairs[r] = product if pairs[r] is None else b.add(pairs[r], product)
            for r, summed in enumerate(pairs):
                out[r][k] = b.call(self.madd_shorts, [summed, ir.Constant(self.shorts, [1] * 16)])
        return out

    def add(self, stored: list, indices: list) -> None:
        """`widened` added to the running sums (a loop over groups of chunks)."""
        b = self.builder
        for row, sums in zip(self.widened(stored, indices), self.sums):
            for widened, total in zip(row, sums):
                b.store(b.add(b.load(total), widened), total)

    def _halves(self, v: list):
        """One row's four sums as (low 128-bit lane, high lane) partial sums: [q0 q1 q2 q3 | q0 q1 q2 q3]."""
        b = self.builder
        return b.call(self.pair_add, [b.call(self.pair_add, v[:2]), b.call(self.pair_add, v[2:])])

    def keep_best(self, best, sums: list | None = None) -> None:
        """best[0:4] = max(best[0:4], every stored row's four sums: `sums` ([row][query], from `widened`), or the
        running ones."""
        b = self.builder
        four, eight = ir.VectorType(ir.IntType(32), 4), ir.VectorType(ir.IntType(32), 8)
        sums = sums or [[b.load(total) for total in row] for row in self.sums]
        halves = [self._halves(row) for row in sums]
        if len(halves) == 1:
            h = halves[0]
            total = b.add(b.shuffle_vector(h, h, ir.Constant(four, [0, 1, 2, 3])),
                          b.shuffle_vector(h, h, ir.Constant(four, [4, 5, 6, 7])))
        else:  # [row a's four sums | row b's], then the larger of each pair
            a, c = halves
            both = b.add(b.shuffle_vector(a, c, ir.Constant(eight, [0, 1, 2, 3, 8, 9, 10, 11])),
                         b.shuffle_vector(a, c, ir.Constant(eight, [4, 5, 6, 7, 12, 13, 14, 15])))
            low = b.shuffle_vector(both, both, ir.Constant(four, [0, 1, 2, 3]))
            high = b.shuffle_vector(both, both, ir.Constant(four, [4, 5, 6, 7]))
            total = b.select(b.icmp_signed(">", low, high), low, high)
        target = b.inttoptr(best, four.as_pointer())
        old = b.load(target, align=4)
        b.store(b.select(b.icmp_signed(">", total, old), total, old), target, align=4)


def _plain_codegen(builder, rows, queries, stride, chunks, best) -> None:
    """IR for `_best_of_four`/`_best_of_four_pair`: stored u8 rows at the addresses `rows`, GROUP chunks summed in 16
    bits before widening, then the rest one by one."""
    lanes = _Lanes(builder, queries, stride, len(rows))
    stored = [builder.inttoptr(row, lanes.bytes32.as_pointer()) for row in rows]

    def chunks_of(indices):
        return [[builder.load(builder.gep(row, [i]), align=1) for i in indices] for row in stored]

    _by_groups(builder, chunks, lanes, chunks_of, best)


def _by_groups(builder, chunks, lanes: _Lanes, chunks_of, best) -> None:
    """The products of `chunks_of(indices)` (each stored row's u8 chunks at those indices) folded into `best`: GROUP
    chunks summed in 16 bits before widening, then the rest one by one. Exactly one group (D = 128, the shipped
    models' width) is straight-line code with constant offsets and no running sums in memory: 8-10% faster than the
    loop (AMD EPYC Zen 3, side by side)."""
    group = ir.Constant(chunks.type, GROUP)

    def indices_from(first, count):
        return [builder.add(first, ir.Constant(first.type, step)) for step in range(count)]

    with builder.if_else(builder.icmp_unsigned("==", chunks, group)) as (one_group, otherwise):
        with one_group:
            indices = [ir.Constant(chunks.type, step) for step in range(GROUP)]
            lanes.keep_best(best, lanes.widened(chunks_of(indices), indices))
        with otherwise:
            with cgutils.for_range(builder, builder.udiv(chunks, group)) as loop:
                indices = indices_from(builder.mul(loop.index, group), GROUP)
                lanes.add(chunks_of(indices), indices)
            done = builder.mul(builder.udiv(chunks, group), group)
            with cgutils.for_range(builder, builder.sub(chunks, done)) as loop:
                indices = indices_from(builder.add(done, loop.index), 1)
                lanes.add(chunks_of(indices), indices)
            lanes.keep_best(best)


def _packed_codegen(builder, rows, dim, fifth, queries, best) -> None:
    """IR for `_packed_best_of_four`/`_packed_best_of_four_pair`: each packed row's chunk of 32 levels is unpacked in
    registers (nibbles, then the fifth bit when `fifth`), GROUP chunks summed in 16 bits (levels <= 31, as for
    stored levels) before widening."""
    i8, i64 = ir.IntType(8), ir.IntType(64)
    lanes = _Lanes(builder, queries, dim, len(rows))
    bytes32 = lanes.bytes32
    bases = [builder.inttoptr(row, i8.as_pointer()) for row in rows]
    half = builder.udiv(dim, ir.Constant(i64, 2))
    half_chunks = builder.udiv(half, ir.Constant(i64, CHUNK))
    bit_of = ir.Constant(bytes32, [0x80 >> (k % 8) for k in range(32)])
    spread = ir.Constant(ir.VectorType(ir.IntType(32), 32), [k // 8 for k in range(32)])
    with_fifth = builder.icmp_unsigned("!=", fifth, ir.Constant(fifth.type, 0))

    def levels_of(base, chunk):  # dims 32 c .. 32 c + 31: low nibbles of bytes 32 c.., or high ones of 32 c - D/2..
        upper = builder.icmp_unsigned(">=", chunk, half_chunks)
        source = builder.gep(base, [builder.mul(builder.select(upper, builder.sub(chunk, half_chunks), chunk),
                                                ir.Constant(i64, CHUNK))])
        raw = builder.load(builder.bitcast(source, bytes32.as_pointer()), align=1)
        shifted = builder.bitcast(builder.lshr(builder.bitcast(raw, lanes.shorts), ir.Constant(lanes.shorts, [4] * 16)),
                                  bytes32)
        levels = builder.and_(builder.select(upper, shifted, raw), ir.Constant(bytes32, [15] * 32))
        plane = builder.gep(base, [builder.add(half, builder.mul(chunk, ir.Constant(i64, 4)))])
        word = builder.load(builder.bitcast(plane, ir.VectorType(i8, 4).as_pointer()), align=1)
        bits = builder.and_(builder.shuffle_vector(word, word, spread), bit_of)
        sixteens = builder.select(builder.icmp_unsigned("!=", bits, ir.Constant(bytes32, [0] * 32)),
                                  ir.Constant(bytes32, [16] * 32), ir.Constant(bytes32, [0] * 32))
        return builder.select(with_fifth, builder.or_(levels, sixteens), levels)

    def chunks_of(indices):
        return [[levels_of(base, i) for i in indices] for base in bases]

    _by_groups(builder, builder.udiv(dim, ir.Constant(i64, CHUNK)), lanes, chunks_of, best)


def _interleaved_codegen(builder, blocks, queries, dim, first, second, used: int = LANES) -> None:
    """IR for `_interleaved_best_of(used)`: the 8 rows of the block at blocks[0] (`interleaved_rows`) times the
    first `used` (1 to 2 x LANES) query rows at `queries` (`interleaved_queries`' layout: consecutive groups of four
    rows, 32 x D bytes each), GROUP chunks summed in 16 bits and widened by `vpmaddwd` into one 32-bit lane per row;
    then, per query row, the best of each window's four lanes, stored at `first` and `second` (four int32 per group of
    four query rows, groups side by side). A group's rows past `used` are not multiplied: their maxima are zeros.

    Why up to eight rows in one pass: most prompts are 4 to 6 tokens, and a fifth row in a second pass re-read
    and re-walked the whole block for one multiply a chunk. Each chunk is loaded once for all rows; 16 vector
    registers hold up to eight rows' sums without spilling much. Side by side (8,194 windows in cache, AMD EPYC
    Zen 3, paired runs): 5 rows 0.85x, 6 rows 0.89x the two-pass time, 3, 4, 8 and 9 rows the same."""
    b = builder
    ops = _Ops(builder)
    i64, four = ir.IntType(64), ir.VectorType(ir.IntType(32), 4)
    table = b.inttoptr(blocks[0], ops.bytes32.as_pointer())
    asked = b.inttoptr(queries, ops.bytes32.as_pointer())
    ones = ir.Constant(ops.shorts, [1] * 16)
    group_span = dim  # 32-byte vectors from one group of four query rows to the next: 32 x D bytes

    def widened(start):  # query row k's sums over chunks start .. start + GROUP - 1, one 32-bit lane per row
        shorts = [None] * used
        for step in range(GROUP):
            at = b.add(start, ir.Constant(i64, step))
            chunk = b.load(b.gep(table, [at]), align=1)  # once for every query row
            for k in range(used):
                index = b.add(b.add(b.mul(at, ir.Constant(i64, LANES)), ir.Constant(i64, k % LANES)),
                              b.mul(group_span, ir.Constant(i64, k // LANES)))
                operand = b.load(b.gep(asked, [index]), align=1)
                product = b.call(ops.madd_bytes, [chunk, operand])
                shorts[k] = product if shorts[k] is None else b.add(shorts[k], product)
        return [b.call(ops.madd_shorts, [summed, ones]) for summed in shorts]

    chunks = b.udiv(dim, ir.Constant(i64, 4))  # one chunk per 4 dims
    totals = [cgutils.alloca_once_value(b, ir.Constant(ops.ints, [0] * 8)) for _ in range(used)]
    with cgutils.for_range(b, b.udiv(chunks, ir.Constant(i64, GROUP))) as loop:
        for total, part in zip(totals, widened(b.mul(loop.index, ir.Constant(i64, GROUP)))):
            b.store(b.add(b.load(total), part), total)
    groups = -(-used // LANES)
    sums = [b.load(total) for total in totals] + [ir.Constant(ops.ints, [0] * 8)] * (LANES * groups - used)

    def larger(x, y):
        return b.select(b.icmp_signed(">", x, y), x, y)

    def picked(x, y, order):
        return b.shuffle_vector(x, y, ir.Constant(ops.ints, order))

    # per group, sums[k] = [rows 0..3 of the first window | rows 0..3 of the second]: the best of each four, as
    # [first window's q0 q1 q2 q3 | second window's q0 q1 q2 q3], in two interleave-and-max steps
    low, high = [0, 8, 1, 9, 4, 12, 5, 13], [2, 10, 3, 11, 6, 14, 7, 15]
    for group in range(groups):
        own = sums[LANES * group:LANES * (group + 1)]
        pairs = [larger(picked(own[k], own[k + 1], low), picked(own[k], own[k + 1], high)) for k in (0, 2)]
        best = larger(picked(pairs[0], pairs[1], [0, 1, 8, 9, 4, 5, 12, 13]),
                      picked(pairs[0], pairs[1], [2, 3, 10, 11, 6, 7, 14, 15]))
        for address, half in ((first, [0, 1, 2, 3]), (second, [4, 5, 6, 7])):
            target = b.add(address, ir.Constant(address.type, 4 * LANES * group))
            b.store(b.shuffle_vector(best, best, ir.Constant(four, half)), b.inttoptr(target, four.as_pointer()),
                    align=4)


def _codegen_of(generate, rows: int):
    """A numba intrinsic's codegen: `generate(builder, its first `rows` arguments (the stored rows), the others)`."""
    def codegen(context, builder, signature, args):
        generate(builder, args[:rows], *args[rows:])
        return context.get_dummy_value()

    return codegen


if numba is not None:
    @intrinsic
    def _best_of_four(typingctx, row, queries, stride, chunks, best):
        """best[0:4] = max(best[0:4], row . queries[k] for k < 4), the rows at `row` (u8) and `queries + k * stride`
        (s8), `chunks` x 32 bytes each, `best` four int32."""
        return types.void(row, queries, stride, chunks, best), _codegen_of(_plain_codegen, 1)

    @intrinsic
    def _best_of_four_pair(typingctx, row, other, queries, stride, chunks, best):
        """`_best_of_four` of two stored rows (at `row` and `other`) in one pass."""
        return types.void(row, other, queries, stride, chunks, best), _codegen_of(_plain_codegen, 2)

    @intrinsic
    def _packed_best_of_four(typingctx, row, dim, fifth, queries, best):
        """`_best_of_four` for one packed row at `row` (D levels: nibbles, then fifth bits when `fifth`), the
        four query rows at `queries` (D bytes apart)."""
        return types.void(row, dim, fifth, queries, best), _codegen_of(_packed_codegen, 1)

    @intrinsic
    def _packed_best_of_four_pair(typingctx, row, other, dim, fifth, queries, best):
        """`_packed_best_of_four` of two packed rows (at `row` and `other`) in one pass."""
        return types.void(row, other, dim, fifth, queries, best), _codegen_of(_packed_codegen, 2)

    def _interleaved_best_of(used: int):
        """An intrinsic: out[first] and out[second] (four int32 per group of four query rows) = the best row of each
        of the block's two windows for each of the first `used` query rows at `queries` (`_interleaved_codegen`)."""
        @intrinsic
        def best(typingctx, block, queries, dim, first, second):
            return types.void(block, queries, dim, first, second), \
                _codegen_of(functools.partial(_interleaved_codegen, used=used), 1)

        return best

    (_interleaved_best_1, _interleaved_best_2, _interleaved_best_3, _interleaved_best_4,
     _interleaved_best_5, _interleaved_best_6, _interleaved_best_7, _interleaved_best_8) = \
        [_interleaved_best_of(used) for used in range(1, 2 * LANES + 1)]

    @numba.njit(nogil=True, boundscheck=False, cache=True, inline="always")
    def _interleaved_block(at, asked, dim, first, second, used):
        """`_interleaved_best_of(used)` for the first `used` (1-8) query rows from `asked` on: two groups of four in
        one pass, and a short last group (a 5-token prompt is a group of four rows and one of one) multiplies only
        its real rows. A chain of calls because each intrinsic is compiled for one row count."""
        if used >= 2 * LANES:
            _interleaved_best_8(at, asked, dim, first, second)
        elif used == 7:
            _interleaved_best_7(at, asked, dim, first, second)
        elif used == 6:
            _interleaved_best_6(at, asked, dim, first, second)
        elif used == 5:
            _interleaved_best_5(at, asked, dim, first, second)
        elif used == 4:
            _interleaved_best_4(at, asked, dim, first, second)
        elif used == 3:
            _interleaved_best_3(at, asked, dim, first, second)
        elif used == 2:
            _interleaved_best_2(at, asked, dim, first, second)
        else:
            _interleaved_best_1(at, asked, dim, first, second)

    @intrinsic
    def _prefetch(typingctx, address):
        """Ask for the cache line at `address` (an integer) to be loaded (x86 `prefetcht0`; never faults)."""
        signature = types.void(address)

        def codegen(context, builder, signature, args):
            pointer = ir.IntType(8).as_pointer()
            i32 = ir.IntType(32)
            prefetch = cgutils.get_or_insert_function(
                builder.module, ir.FunctionType(ir.VoidType(), [pointer, i32, i32, i32]), "llvm.prefetch.p0i8")
            builder.call(prefetch, [builder.inttoptr(args[0], pointer), ir.Constant(i32, 0), ir.Constant(i32, 3),
                                    ir.Constant(i32, 1)])  # read, keep in all levels, data
            return context.get_dummy_value()

        return signature, codegen

    @numba.njit(nogil=True, boundscheck=False, cache=True, inline="always")
    def _prefetch_row(address, size):
        for line in range(0, size, LINE):
            _prefetch(address + line)

    @numba.njit(nogil=True, boundscheck=False, cache=True)
    def _window_maxima(levels, queries, width, out):
        dim, lanes = levels.shape[1], queries.shape[0]
        chunks = dim // CHUNK
        rows, asked, kept = levels.ctypes.data, queries.ctypes.data, out.ctypes.data  # C-contiguous: plain offsets
        for window in range(levels.shape[0] // width):
            out[window, :] = -2147483648  # each window's maxima are kept in its own row of `out`
            for offset in range(0, width - 1, 2):  # two rows a call (`_Lanes`), the last one alone when width is odd
                row = rows + (window * width + offset) * dim
                _prefetch_row(row + PREFETCH_BYTES, 2 * dim)
                for first in range(0, lanes, LANES):
                    _best_of_four_pair(row, row + dim, asked + first * dim, dim, chunks,
                                       kept + (window * lanes + first) * 4)
            if width % 2:
                row = rows + (window * width + width - 1) * dim
                _prefetch_row(row + PREFETCH_BYTES, dim)
                for first in range(0, lanes, LANES):
                    _best_of_four(row, asked + first * dim, dim, chunks, kept + (window * lanes + first) * 4)

    @numba.njit(nogil=True, boundscheck=False, cache=True)
    def _picked_window_maxima(windows, picks, queries, out):
        width, dim, lanes = windows.shape[1], windows.shape[2], queries.shape[0]
        chunks, span, count = dim // CHUNK, width * dim, picks.shape[0]
        rows, asked, kept = windows.ctypes.data, queries.ctypes.data, out.ctypes.data
        for window in range(count):
            out[window, :] = -2147483648
            base = rows + picks[window] * span
            following = rows + picks[window + 1] * span if window + 1 < count else base + span
            for offset in range(0, width, 2):  # as in `_window_maxima`: rows in pairs, an odd last one alone
                row = base + offset * dim
                pair = offset + 1 < width
                ahead = offset * dim + PREFETCH_BYTES  # past this window's rows: the next picked window's first ones
                _prefetch_row(base + ahead if ahead < span else following + ahead - span, dim)
                if pair:
                    ahead += dim
                    _prefetch_row(base + ahead if ahead < span else following + ahead - span, dim)
                for first in range(0, lanes, LANES):
                    if pair:
                        _best_of_four_pair(row, row + dim, asked + first * dim, dim, chunks,
                                           kept + (window * lanes + first) * 4)
                    else:
                        _best_of_four(row, asked + first * dim, dim, chunks, kept + (window * lanes + first) * 4)

    @numba.njit(nogil=True, boundscheck=False, cache=True)
    def _packed_window_maxima(packed, starts, counts, dim, fifth, queries, out):
        lanes, count = queries.shape[0], starts.shape[0]
        rows, asked, kept, stride = packed.ctypes.data, queries.ctypes.data, out.ctypes.data, packed.shape[1]
        for window in range(count):
            out[window, :] = -2147483648
            base, span = rows + starts[window] * stride, counts[window] * stride
            following = rows + starts[window + 1] * stride if window + 1 < count else base + span
            for row in range(0, counts[window], 2):  # rows in pairs, an odd last one alone
                pair = row + 1 < counts[window]
                ahead = row * stride + PREFETCH_BYTES  # as in `_picked_window_maxima`: the next window's rows
                # one line per row (80 bytes): a second one asked for lines already asked for, and an exact scan of
                # packed rows took 221 ms against 205 ms without prefetching and 202 ms with one line (same process)
                _prefetch(base + ahead if ahead < span else following + ahead - span)
                if pair:
                    ahead += stride
                    _prefetch(base + ahead if ahead < span else following + ahead - span)
                at = base + row * stride
                for first in range(0, lanes, LANES):
                    if pair:
                        _packed_best_of_four_pair(at, at + stride, dim, fifth, asked + first * dim,
                                                  kept + (window * lanes + first) * 4)
                    else:
                        _packed_best_of_four(at, dim, fifth, asked + first * dim, kept + (window * lanes + first) * 4)

    @numba.njit(nogil=True, boundscheck=False, cache=True)
    def _interleaved_window_maxima(table, queries, out):
        blocks, span = table.shape
        groups, asked_span = queries.shape
        lanes, dim = out.shape[1], span // BLOCK_ROWS
        rows, asked, kept = table.ctypes.data, queries.ctypes.data, out.ctypes.data
        for block in range(blocks):
            at = rows + block * span
            _prefetch_row(at + PREFETCH_BYTES, span)
            for group in range(0, groups, 2):  # eight query rows a pass (`_interleaved_codegen`)
                _interleaved_block(at, asked + group * asked_span, dim, kept + (2 * block * lanes + LANES * group) * 4,
                                   kept + ((2 * block + 1) * lanes + LANES * group) * 4, lanes - LANES * group)

    @numba.njit(nogil=True, boundscheck=False, cache=True)
    def _interleave_queries(q8, out):
        rows, dim = q8.shape
        for group in range(out.shape[0]):
            at = 0
            for chunk in range(dim // 4):
                for lane in range(LANES):
                    row = group * LANES + lane
                    for copy in range(BLOCK_ROWS):
                        for byte in range(4):
                            out[group, at] = q8[row, 4 * chunk + byte] if row < rows else 0
                            at += 1

    @numba.njit(nogil=True, boundscheck=False, cache=True)
    def _interleaved_scores(table, queries, windows, starts, weights, bias, scores):
        blocks, span = table.shape
        groups, asked_span = queries.shape
        lanes, dim = LANES * groups, span // BLOCK_ROWS
        maxima = np.empty((2 * PIECE_BLOCKS, lanes), np.int32)  # one piece's, reused
        totals = np.empty(2 * PIECE_BLOCKS, np.float32)  # the sums' scratch, reused
        rows, asked, kept = table.ctypes.data, queries.ctypes.data, maxima.ctypes.data
        used = starts[-1]  # the query rows the sums read: a last group's padding is not multiplied
        for first in range(0, blocks, PIECE_BLOCKS):
            last = min(blocks, first + PIECE_BLOCKS)
            for block in range(first, last):
                at = rows + block * span
                _prefetch_row(at + PREFETCH_BYTES, span)
                local = block - first
                for group in range(0, groups, 2):  # eight query rows a pass (`_interleaved_codegen`)
                    _interleaved_block(at, asked + group * asked_span, dim,
                                       kept + (2 * local * lanes + LANES * group) * 4,
                                       kept + ((2 * local + 1) * lanes + LANES * group) * 4, used - LANES * group)
            stop = min(2 * last, windows)
            _sums_into(maxima, stop - 2 * first, starts, weights, bias, scores, 2 * first, totals)
