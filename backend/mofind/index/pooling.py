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
