"""Few vectors per window that stand in for its 168 patches in the first stage of two-stage search.

Spherical k-means over a window's valid patches ("token pooling", Clavie et al. 2024, applied to motion
patches): MaxSim against the 32 centroids ranks windows much like MaxSim against all patches, at a fifth of
the cost. On the trained compact model's Bandai embeddings (1,107 windows, 40 queries), re-ranking 2 / 5 /
10 % of the windows kept 95 / 98.5 / 100 % of the exact top-10 takes with 32 centroids, against
80 / 92.5 / 99.5 % with 14 per-body-part means (bench/bench_index.py measures it on the current model). Deterministic: the centroids start from valid patches spread evenly over the
window, so the same window always pools the same way.
"""

from __future__ import annotations

import numpy as np

from .linalg import single_blas_thread

POOL_SIZE = 32
ITERATIONS = 6
NAME = f"kmeans-{POOL_SIZE}"


def cluster_pool(patches: np.ndarray, valid: np.ndarray, size: int = POOL_SIZE,
                 iterations: int = ITERATIONS) -> np.ndarray:
    """(W, P, D) unit patches, (W, P) bool -> (W, size, D) unit centroids of each window's valid patches.

    A window with fewer valid patches than `size` repeats some of them (duplicates never change a max).

    >>> x = np.eye(4, dtype=np.float32)[None]                       # one window, four orthogonal patches
    >>> pooled = cluster_pool(x, np.array([[True, True, True, False]]), size=2)
    >>> pooled.shape, bool(np.all(np.abs(np.linalg.norm(pooled, axis=-1) - 1) < 1e-6))
    ((1, 2, 4), True)
    >>> bool(np.all(pooled[0, :, 3] == 0))                          # the invalid patch is never used
    True
    """
    patches = np.asarray(patches, dtype=np.float32)
    valid = np.asarray(valid, dtype=bool)
    count, _, dim = patches.shape
    counts = valid.sum(1)
    if np.any(counts == 0):
        raise ValueError("every window needs at least one valid patch")
    order = np.argsort(~valid, axis=1, kind="stable")  # valid patch indices first, in grid order
    picks = np.floor(np.linspace(0, 1, size, endpoint=False)[None, :] * counts[:, None]).astype(np.int64)
    seeds = np.take_along_axis(order, picks, axis=1)
    centroids = np.take_along_axis(patches, seeds[:, :, None], axis=1)
    weights = valid.astype(np.float32)
    with single_blas_thread():
        for _ in range(iterations):
            assign = np.matmul(patches, centroids.transpose(0, 2, 1)).argmax(2)
            onehot = (assign[:, :, None] == np.arange(size)[None, None, :]).astype(np.float32) * weights[:, :, None]
            sums = np.matmul(onehot.transpose(0, 2, 1), patches)
            norms = np.linalg.norm(sums, axis=2, keepdims=True)
            centroids = np.where(norms > 1e-6, sums / np.maximum(norms, 1e-12), centroids)  # empty: keep
    return centroids.astype(np.float32)


# -- the two-stage first pass: a few vectors per window, in one compact table --------------------------------
COARSE_SIZE = 4


def coarse_from_pooled(pooled: np.ndarray, size: int = COARSE_SIZE) -> np.ndarray:
    """(W, K, D) pooled vectors (decoded, rotated space) -> (W, size, D) unit centroids of them.

    Why a second level: at a million windows even 32 pooled vectors per window are 98 GFLOP per 12-token
    query. Four centroids of the pooled vectors rank windows well enough to shortlist a few percent of the
    library for the 32-vector stage (recall measured in bench/bench_index.py), at an eighth of the cost.
    Computed from the stored codes, so a chunk written without the table gets the identical one at open.
    """
    pooled = np.asarray(pooled, dtype=np.float32)
    pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
    return cluster_pool(pooled, np.ones(pooled.shape[:2], bool), size=size)


def coarse_codes(packed_pooled: np.ndarray, pooled_codec, width: int) -> np.ndarray:
    """Packed pooled codes (W*K, bytes) -> packed coarse codes (W*COARSE_SIZE, bytes), same codec."""
    count = len(packed_pooled) // max(width, 1)
    if count == 0:
        return np.zeros((0, pooled_codec.bytes_per_vector), np.uint8)
    out = []
    step = 4096  # windows per batch: bounded memory on large chunks
    for start in range(0, count, step):
        stop = min(start + step, count)
        decoded = pooled_codec.decode(np.asarray(packed_pooled[start * width:stop * width]))
        centroids = coarse_from_pooled(decoded.reshape(stop - start, width, -1))
        out.append(pooled_codec.encode_rotated(centroids.reshape(-1, centroids.shape[-1])))
    return np.concatenate(out)


def coarse_levels(chunk, pooled_codec, width: int) -> np.ndarray:
    """(W * COARSE_SIZE, D) int8 levels of a chunk's first-stage table (stored, or derived from `pooled`)."""
    packed = chunk.arrays.get("coarse")
    if packed is None or len(packed) != chunk.num_windows * COARSE_SIZE:
        packed = coarse_codes(chunk.arrays["pooled"], pooled_codec, width)
    return pooled_codec.levels(np.asarray(packed))
