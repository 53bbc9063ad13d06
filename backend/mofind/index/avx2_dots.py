"""MaxSim maxima on integers with AVX2's byte multiply-add (`vpmaddubsw`), compiled by numba: the kernel for
CPUs without VNNI.

Why hand-written: a search multiplies hundreds of thousands of stored rows by a handful of query rows (a prompt
is 2 to 10 tokens), and without VNNI the libraries' int8 products are built for the other shape. On an AMD EPYC
(Zen 3, AVX2, one thread) oneDNN's u8 x s8 inner product took 0.99 ms for 256 windows x 168 patches against 4
query rows, and numba's own loops, integer or float, never came near it (LLVM does not vectorise their
reductions into `vpmaddwd`); this kernel took 0.39 ms (0.71 against 1.24 ms at 8 query rows), the max over each
window's rows fused in, no product array written. The instructions are reached through LLVM's intrinsics
(`llvm.x86.avx2.pmadd.ub.sw`, `llvm.x86.avx2.pmadd.wd`, `llvm.x86.avx2.phadd.d`) from a numba `intrinsic`.

Exact: stored levels are u8 0..31 and query rows s8 -127..127 (-128 too), so each 16-bit pair sum of `vpmaddubsw` is
at most 2 x 31 x 128 = 7,936 (no saturation), and four chunks' sums (31,744 < 2**15) are widened to 32 bits
(`vpmaddwd` by ones) together. The calibration checks every kernel against a float64 product before it can be chosen (kernels.py).
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
except ImportError:  # pragma: no cover - the project installs numba; this keeps other platforms working
    numba = None

LANES = 4  # query rows per call: their four sums come out of one horizontal reduction
CHUNK = 32  # bytes per AVX2 register
GROUP = 4  # chunks summed in 16 bits before widening: 4 x 7,936 = 31,744 < 2**15


@functools.cache
def available() -> bool:
    """numba is here, this CPU has AVX2, and the kernel compiles and gives the right integers on a tiny case."""
    if numba is None:
        return False
    try:
        from llvmlite import binding

        if not binding.get_host_cpu_features().get("avx2", False):
            return False
        levels = np.arange(2 * CHUNK, dtype=np.uint8).reshape(2, CHUNK) % 32
        q8 = np.arange(-CHUNK, CHUNK, dtype=np.int8).reshape(2, CHUNK)
        return bool(np.array_equal(max_dots(levels, padded_queries(q8), 1, 2),
                                   levels.astype(np.int64) @ q8.T.astype(np.int64)))
    except Exception:  # noqa: BLE001 - any failure to compile or run means: not on this machine
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


if numba is not None:
    @intrinsic
    def _packed_best_of_four(typingctx, row, dim, fifth, queries, best):
        """`_best_of_four` for one packed row at `row` (D levels: nibbles, then fifth bits when `fifth`), the
        four query rows at `queries` (D bytes apart)."""
        signature = types.void(row, dim, fifth, queries, best)

        def codegen(context, builder, signature, args):
            row, dim, fifth, queries, best = args
            i8, i16, i32, i64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
            bytes32, shorts, ints, four = (ir.VectorType(i8, 32), ir.VectorType(i16, 16), ir.VectorType(i32, 8),
                                           ir.VectorType(i32, 4))
            module = builder.module
            madd_bytes = cgutils.get_or_insert_function(module, ir.FunctionType(shorts, [bytes32, bytes32]),
                                                        "llvm.x86.avx2.pmadd.ub.sw")
            madd_shorts = cgutils.get_or_insert_function(module, ir.FunctionType(ints, [shorts, shorts]),
                                                         "llvm.x86.avx2.pmadd.wd")
            pair_add = cgutils.get_or_insert_function(module, ir.FunctionType(ints, [ints, ints]),
                                                      "llvm.x86.avx2.phadd.d")
            byte_ptr = ir.IntType(8).as_pointer()
            base = builder.inttoptr(row, byte_ptr)
            half = builder.udiv(dim, ir.Constant(i64, 2))
            half_chunks = builder.udiv(half, ir.Constant(i64, CHUNK))
            asked = [builder.inttoptr(builder.add(queries, builder.mul(dim, ir.Constant(i64, k))), bytes32.as_pointer())
                     for k in range(LANES)]
            low_mask = ir.Constant(bytes32, [15] * 32)
            bit_of = ir.Constant(bytes32, [0x80 >> (k % 8) for k in range(32)])
            spread = ir.Constant(ir.VectorType(i32, 32), [k // 8 for k in range(32)])
            ones = ir.Constant(shorts, [1] * 16)
            with_fifth = builder.icmp_unsigned("!=", fifth, ir.Constant(fifth.type, 0))
            sums = [cgutils.alloca_once_value(builder, ir.Constant(ints, [0] * 8)) for _ in range(LANES)]
            with cgutils.for_range(builder, builder.udiv(dim, ir.Constant(i64, CHUNK))) as loop:
                chunk = loop.index  # dims 32 c .. 32 c + 31
                upper = builder.icmp_unsigned(">=", chunk, half_chunks)
                source = builder.select(upper, builder.sub(chunk, half_chunks), chunk)
                raw = builder.load(builder.bitcast(builder.gep(base, [builder.mul(source, ir.Constant(i64, CHUNK))]),
                                                   bytes32.as_pointer()), align=1)
                shifted = builder.bitcast(builder.lshr(builder.bitcast(raw, shorts), ir.Constant(shorts, [4] * 16)),
                                          bytes32)
                levels = builder.and_(builder.select(upper, shifted, raw), low_mask)
                plane = builder.gep(base, [builder.add(half, builder.mul(chunk, ir.Constant(i64, 4)))])
                word = builder.load(builder.bitcast(plane, ir.VectorType(i8, 4).as_pointer()), align=1)
                bits = builder.and_(builder.shuffle_vector(word, word, spread), bit_of)
                sixteens = builder.select(builder.icmp_unsigned("!=", bits, ir.Constant(bytes32, [0] * 32)),
                                          ir.Constant(bytes32, [16] * 32), ir.Constant(bytes32, [0] * 32))
                levels = builder.select(with_fifth, builder.or_(levels, sixteens), levels)
                for k in range(LANES):
                    pairs = builder.call(madd_bytes, [levels, builder.load(builder.gep(asked[k], [chunk]), align=1)])
                    builder.store(builder.add(builder.load(sums[k]), builder.call(madd_shorts, [pairs, ones])), sums[k])
            v = [builder.load(s) for s in sums]
            halves = builder.call(pair_add, [builder.call(pair_add, [v[0], v[1]]), builder.call(pair_add, [v[2], v[3]])])
            total = builder.add(builder.shuffle_vector(halves, halves, ir.Constant(four, [0, 1, 2, 3])),
                                builder.shuffle_vector(halves, halves, ir.Constant(four, [4, 5, 6, 7])))
            target = builder.inttoptr(best, four.as_pointer())
            old = builder.load(target, align=4)
            builder.store(builder.select(builder.icmp_signed(">", total, old), total, old), target, align=4)
            return context.get_dummy_value()

        return signature, codegen

    @intrinsic
    def _best_of_four(typingctx, row, queries, stride, chunks, best):
        """best[0:4] = max(best[0:4], row . queries[k] for k < 4), the rows at `row` (u8) and `queries + k * stride`
        (s8), `chunks` x 32 bytes each, `best` four int32."""
        signature = types.void(row, queries, stride, chunks, best)

        def codegen(context, builder, signature, args):
            row, queries, stride, chunks, best = args
            i8, i16, i32 = ir.IntType(8), ir.IntType(16), ir.IntType(32)
            bytes32, shorts, ints, four = (ir.VectorType(i8, 32), ir.VectorType(i16, 16), ir.VectorType(i32, 8),
                                           ir.VectorType(i32, 4))
            module = builder.module
            madd_bytes = cgutils.get_or_insert_function(module, ir.FunctionType(shorts, [bytes32, bytes32]),
                                                        "llvm.x86.avx2.pmadd.ub.sw")
            madd_shorts = cgutils.get_or_insert_function(module, ir.FunctionType(ints, [shorts, shorts]),
                                                         "llvm.x86.avx2.pmadd.wd")
            pair_add = cgutils.get_or_insert_function(module, ir.FunctionType(ints, [ints, ints]),
                                                      "llvm.x86.avx2.phadd.d")
            stored = builder.inttoptr(row, bytes32.as_pointer())
            asked = [builder.inttoptr(builder.add(queries, builder.mul(stride, ir.Constant(stride.type, k))),
                                      bytes32.as_pointer()) for k in range(LANES)]
            ones = ir.Constant(shorts, [1] * 16)
            sums = [cgutils.alloca_once_value(builder, ir.Constant(ints, [0] * 8)) for _ in range(LANES)]

            def add_chunks(first, count):  # `count` chunks summed in 16 bits, then widened into `sums`
                pairs = [None] * LANES
                for step in range(count):
                    index = builder.add(first, ir.Constant(first.type, step))
                    chunk = builder.load(builder.gep(stored, [index]), align=1)
                    for k in range(LANES):
                        product = builder.call(madd_bytes, [chunk, builder.load(builder.gep(asked[k], [index]), align=1)])
                        pairs[k] = product if pairs[k] is None else builder.add(pairs[k], product)
                for k in range(LANES):
                    builder.store(builder.add(builder.load(sums[k]), builder.call(madd_shorts, [pairs[k], ones])), sums[k])

            group = ir.Constant(chunks.type, GROUP)
            with cgutils.for_range(builder, builder.udiv(chunks, group)) as loop:
                add_chunks(builder.mul(loop.index, group), GROUP)
            done = builder.mul(builder.udiv(chunks, group), group)
            with cgutils.for_range(builder, builder.sub(chunks, done)) as loop:
                add_chunks(builder.add(done, loop.index), 1)
            v = [builder.load(s) for s in sums]
            halves = builder.call(pair_add, [builder.call(pair_add, [v[0], v[1]]), builder.call(pair_add, [v[2], v[3]])])
            low = builder.shuffle_vector(halves, halves, ir.Constant(four, [0, 1, 2, 3]))
            high = builder.shuffle_vector(halves, halves, ir.Constant(four, [4, 5, 6, 7]))
            total = builder.add(low, high)
            target = builder.inttoptr(best, four.as_pointer())
            old = builder.load(target, align=4)
            builder.store(builder.select(builder.icmp_signed(">", total, old), total, old), target, align=4)
            return context.get_dummy_value()

        return signature, codegen

    @numba.njit(nogil=True, boundscheck=False, cache=True)
    def _window_maxima(levels, queries, width, out):
        dim = levels.shape[1]
        chunks = dim // CHUNK
        best = np.empty(queries.shape[0], np.int32)
        rows, asked, kept = levels.ctypes.data, queries.ctypes.data, best.ctypes.data  # C-contiguous: plain offsets
        for window in range(levels.shape[0] // width):
            best[:] = -2147483648
            for offset in range(width):
                row = rows + (window * width + offset) * dim
                for first in range(0, queries.shape[0], LANES):
                    _best_of_four(row, asked + first * dim, dim, chunks, kept + first * 4)
            out[window] = best

    @numba.njit(nogil=True, boundscheck=False, cache=True)
    def _packed_window_maxima(packed, starts, counts, dim, fifth, queries, out):
        best = np.empty(queries.shape[0], np.int32)
        rows, asked, kept, stride = packed.ctypes.data, queries.ctypes.data, best.ctypes.data, packed.shape[1]
        for window in range(starts.shape[0]):
            best[:] = -2147483648
            for row in range(starts[window], starts[window] + counts[window]):
                for first in range(0, queries.shape[0], LANES):
                    _packed_best_of_four(rows + row * stride, dim, fifth, asked + first * dim, kept + first * 4)
            out[window] = best
