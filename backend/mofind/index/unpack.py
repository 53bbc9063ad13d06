"""Packed codes -> level indices (codec.py's layout), compiled with numba when it is installed.

Why compiled: every search unpacks the codes it scores (the pooled vectors of the middle stage, the patches of
the re-rank), and numpy needs three passes with short inner loops per row (mask, shift, fifth-bit table):
~52 ns per 5-bit row, a third of a two-stage search at 100k windows. One compiled loop over 8-byte words
does the same in ~17 ns per row (Xeon with AVX-512, 672k rows, in cache-sized blocks), and can gather the
rows it unpacks straight from the memory-mapped chunk (no copy of the picked windows first). numpy's
version stays as the reference (tests compare the two) and as the fallback where numba has no wheel.

Layout (codec.py): byte j < D/2 holds the low nibbles of dims j and j + D/2; at 5 bits, the next D/8
bytes hold the fifth bit of every dim, dims in order, most significant bit first.
"""

from __future__ import annotations

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - the project installs numba; this keeps other platforms working
    numba = None

UNPACK_ROWS = 2048  # rows per numpy pass: the slices stay in cache
_LOW_NIBBLES = np.uint64(0x0F0F0F0F0F0F0F0F)
#: one fifth-bit plane byte -> the 16s of its 8 dimensions, as one little-endian uint64 (8 level bytes)
FIFTH_BITS = (((np.arange(256)[:, None] >> (7 - np.arange(8))[None, :]) & 1) * 16).astype(np.uint8) \
    .view(np.uint64).reshape(256)


def compiled() -> bool:
    """Whether the numba kernels are in use."""
    return numba is not None


def levels(packed: np.ndarray, dim: int, bits: int) -> np.ndarray:
    """(n, bytes per vector) uint8 -> (n, dim) uint8 level indices 0 .. 2**bits - 1."""
    packed = np.asarray(packed, dtype=np.uint8)
    if not _compilable(packed, dim):
        return levels_numpy(packed, dim, bits)
    out = np.empty((len(packed), dim), np.uint8)
    _unpack_rows(packed.view(np.uint64), packed, _NO_ROWS, 0, bits == 5, FIFTH_BITS, out.view(np.uint64))
    return out


def gather_levels(packed: np.ndarray, starts: np.ndarray, width: int, dim: int, bits: int) -> np.ndarray:
    """Rows [start, start + width) of `packed` for every start, unpacked: (len(starts) * width, dim) uint8.

    The rows are read where they lie (a memory map, typically): no gathered copy of the codes is made."""
    packed = np.asarray(packed, dtype=np.uint8)
    starts = np.asarray(starts, dtype=np.int64)
    if len(starts) and (starts.min() < 0 or starts.max() + width > len(packed)):
        raise IndexError(f"rows {starts.min()}..{starts.max() + width} are outside the {len(packed)} stored rows")
    if not _compilable(packed, dim):
        rows = (starts[:, None] + np.arange(width)[None, :]).reshape(-1)
        return levels_numpy(np.take(packed, rows, axis=0), dim, bits)
    out = np.empty((len(starts) * width, dim), np.uint8)
    _unpack_rows(packed.view(np.uint64), packed, starts, width, bits == 5, FIFTH_BITS, out.view(np.uint64))
    return out


def levels_numpy(packed: np.ndarray, dim: int, bits: int) -> np.ndarray:
    """The numpy reference: two ufuncs split the nibbles into one preallocated array, and the fifth-bit plane
    is spread by FIFTH_BITS and OR-ed in 8 bytes at a time, in slices of UNPACK_ROWS rows."""
    packed = np.asarray(packed, dtype=np.uint8)
    half = dim // 2
    out = np.empty((len(packed), dim), np.uint8)
    for start in range(0, len(packed), UNPACK_ROWS):
        rows = packed[start:start + UNPACK_ROWS]
        part = out[start:start + UNPACK_ROWS]
        nibbles = rows[:, :half]
        np.bitwise_and(nibbles, 15, out=part[:, :half])
        np.right_shift(nibbles, 4, out=part[:, half:])
        if bits == 5:
            words = part.view(np.uint64)  # (rows, D / 8): one word per plane byte, dims in order
            words |= np.take(FIFTH_BITS, rows[:, half:])
    return out


def _compilable(packed: np.ndarray, dim: int) -> bool:
    """The compiled loop reads rows as whole uint64 words (D = 128: 80 or 64 bytes per row)."""
    return numba is not None and dim % 16 == 0 and packed.ndim == 2 and packed.shape[1] % 8 == 0 \
        and packed.flags.c_contiguous


_NO_ROWS = np.zeros(0, np.int64)  # `starts` of a plain (not gathered) unpack


def _unpack_rows_python(words, planes, starts, width, fifth, table, out):
    """out (rows, D/8) uint64 <- the codes of rows `starts[i] + j` (j < width), or of row i itself when `width`
    is 0; `words` and `planes` are the same codes as uint64 words and as bytes. Writes exactly `out`'s rows."""
    half_words = out.shape[1] // 2  # D/16: words of nibbles per row
    for row in range(out.shape[0]):
        source = starts[row // width] + row % width if width > 0 else row
        for j in range(half_words):
            word = words[source, j]
            out[row, j] = word & _LOW_NIBBLES
            out[row, j + half_words] = (word >> np.uint64(4)) & _LOW_NIBBLES
        if fifth:
            base = half_words * 8
            for k in range(2 * half_words):
                out[row, k] |= table[planes[source, base + k]]


# compiled once per machine (numba's cache); without numba `_compilable` is False and only numpy runs
_unpack_rows = numba.njit(cache=True, nogil=True, boundscheck=False)(_unpack_rows_python) if numba else None
