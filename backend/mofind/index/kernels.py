"""The integer MaxSim kernel over the stored 5-bit codes, and the per-chunk caches it reads.

Scores are computed as integer dot products between int8 query rows and the stored level indices
(`torch._int_mm`, VNNI on x86), the max over a window's patches is taken on the integers (every factor
that turns them into cosines is per query row, see `codec.QuantizedQueries`), and only the (windows x
query rows) maxima are converted to float. Windows are processed in blocks so the intermediate stays
in cache.

Windows with fewer valid patches than the grid are padded in memory with copies of their first
patch: a duplicate never changes a max, so every window can share one (W, P, D) layout.
"""

from __future__ import annotations

import threading

import numpy as np

from .chunk import Chunk
from .codec import RotatedCodec

BLOCK_WINDOWS = 256


def int_matmul(a, b):
    """(m, k) int8 @ (k, n) int8 -> (m, n) int32, with an exact float fallback where `_int_mm` is missing."""
    import torch

    try:
        return torch._int_mm(a, b)
    except (RuntimeError, AttributeError):
        return (a.float() @ b.float()).round().to(torch.int32)  # |sums| < 2**24: exact in float32


def max_dots(levels, queries, block: int = BLOCK_WINDOWS):
    """(W, P, D) int8 levels x (D, Q) int8 query rows -> (W, Q) int32: per window, the best patch per row."""
    import torch

    count, patches, dim = levels.shape
    out = torch.empty((count, queries.shape[1]), dtype=torch.int32)
    for start in range(0, count, block):
        stop = min(start + block, count)
        flat = levels[start:stop].reshape(-1, dim)
        out[start:stop] = int_matmul(flat, queries).view(stop - start, patches, -1).amax(1)
    return out


def padded_rows(counts: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Row index into the packed patch array for each (window, slot) and whether the slot is real.

    >>> rows, real = padded_rows(np.array([2, 3]), 3)
    >>> rows.tolist(), real.tolist()
    ([[0, 1, 0], [2, 3, 4]], [[True, True, False], [True, True, True]])
    """
    offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
    slot = np.arange(width)[None, :]
    real = slot < counts[:, None]
    rows = offsets[:, None] + np.where(real, slot, 0)
    return rows, real


class ChunkScan:
    """Lazily unpacked int8 views of one chunk, built once and shared by every search thread."""

    def __init__(self, chunk: Chunk, codec: RotatedCodec, pooled_codec: RotatedCodec, num_patches: int):
        self.chunk = chunk
        self.codec = codec
        self.pooled_codec = pooled_codec
        self.num_patches = num_patches
        counts = np.diff(np.asarray(chunk.arrays["win_offsets"]))
        self.rows, self.real = padded_rows(counts, num_patches)
        self.pool_width = len(chunk.arrays["pooled"]) // max(chunk.num_windows, 1)
        self._levels = None
        self._pooled = None
        self._lock = threading.Lock()

    def levels(self):
        """(W, P, D) int8 level indices of every window (21 KiB per window at D=128: the exact-mode cache)."""
        with self._lock:
            if self._levels is None:
                self._levels = self.window_levels(np.arange(self.chunk.num_windows))
            return self._levels

    def window_levels(self, windows: np.ndarray):
        """(n, P, D) int8 for a subset of windows, unpacked on demand (two-stage re-ranking)."""
        import torch

        if self._levels is not None:
            return self._levels[torch.from_numpy(np.asarray(windows, dtype=np.int64))]
        packed = np.asarray(self.chunk.arrays["patches"])
        rows = self.rows[windows].reshape(-1)
        levels = self.codec.levels(packed[rows]).reshape(len(windows), self.num_patches, -1)
        return torch.from_numpy(levels)

    def pooled(self):
        """(W, K, D) int8 levels of the pooled vectors (the two-stage first pass)."""
        import torch

        with self._lock:
            if self._pooled is None:
                levels = self.pooled_codec.levels(np.asarray(self.chunk.arrays["pooled"]))
                self._pooled = torch.from_numpy(levels.reshape(self.chunk.num_windows, self.pool_width, -1))
            return self._pooled


def symmetric_dots(levels, real, alpha, alpha_sum, top_level: int, block: int = BLOCK_WINDOWS):
    """Motion-to-motion MaxSim in both directions, on integers.

    levels (W, P, D) int8 stored level indices k, real (W, P) bool, alpha (D, A) int8 = 2k - top_level of
    the example window's A valid patches (top_level = level_count - 1), alpha_sum (A,) int32. With a = alpha
    and b = 2k - top_level the integer dot of the two reconstructions is a.b = 2 (a.k) - top_level sum(a);
    one global factor (step/2)^2 turns it into a cosine, so maxima can be taken on the integers in both
    directions.

    Returns (forward (W,), backward (W,)) float64 sums divided by counts, still to be scaled by (step/2)^2:
    forward = mean over the example's patches of the best stored patch, backward = mean over each stored
    window's real patches of the best example patch.
    """
    import torch

    count, patches, dim = levels.shape
    forward = np.empty(count)
    backward = np.empty(count)
    real_t = torch.from_numpy(np.ascontiguousarray(real))
    offset = (top_level * alpha_sum).to(torch.int32)
    for start in range(0, count, block):
        stop = min(start + block, count)
        dots = int_matmul(levels[start:stop].reshape(-1, dim), alpha)
        dots = (2 * dots - offset).view(stop - start, patches, -1)
        forward[start:stop] = dots.amax(1).double().mean(1).numpy()
        best_example = dots.amax(2).double()
        mask = real_t[start:stop]
        backward[start:stop] = ((best_example * mask).sum(1) / mask.sum(1)).numpy()
    return forward, backward
