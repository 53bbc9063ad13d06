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

from mofind.features.parts import BODY_REGIONS

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
#: Chunks store their first-stage table under this name: one vector per body region (`region_coarse`).
REGIONS_ARRAY = "coarse_regions"
#: Chunks written before it store k-means centroids of the pooled vectors here (`coarse_from_pooled`).
KMEANS_ARRAY = "coarse"
COARSE_SIZE = len(BODY_REGIONS)  # 4: core, legs, right arm, left arm


def region_columns(part_names) -> list[np.ndarray]:
    """Grid columns of each body region (features.parts.BODY_REGIONS) for a model's part names."""
    columns = [[] for _ in BODY_REGIONS]
    for column, name in enumerate(part_names):
        region = next((r for r, (_, parts) in enumerate(BODY_REGIONS) if name in parts), 0)
        columns[region].append(column)
    return [np.asarray(c, np.int64) for c in columns]


def region_coarse(patches: np.ndarray, valid: np.ndarray, grid: tuple[int, int], part_names) -> np.ndarray:
    """(W, P, D) patches, (W, P) bool -> (W, COARSE_SIZE, D) unit vectors: per body region, the mean of the
    window's valid patches in that region's columns over every time row (a region without one: all of them).

    Why regions, not k-means of the pooled vectors: the model's words match single body-part patches (a raised
    left hand is a left-arm patch), and a k-means centroid averages that patch with whatever else moved.
    With the same 4 vectors per window, a middle stage of 10 % kept as much of the exact top 10 as 20 % did
    with k-means (docs/architecture.md, "Checked against the 1 M run").

    >>> x = np.zeros((1, 2 * 3, 2), np.float32); x[0, :, 0] = 1; x[0, [2, 5], :] = (0, 1)  # column 2 moves apart
    >>> coarse = region_coarse(x, np.ones((1, 6), bool), (2, 3), ("pelvis", "r_hip", "l_elbow"))[0]
    >>> [[round(float(v), 3) for v in row] for row in coarse]  # core, legs, right arm (no column here: all), left arm
    [[1.0, 0.0], [1.0, 0.0], [0.894, 0.447], [0.0, 1.0]]
    """
    patches = np.asarray(patches, np.float32)
    count, _, dim = patches.shape
    rows, cols = grid
    weights = np.asarray(valid, np.float32).reshape(count, rows, cols)
    grid_sums = np.einsum("wrc,wrcd->wcd", weights, patches.reshape(count, rows, cols, dim))  # per column
    column_counts = weights.sum(axis=1)  # (W, cols)
    every = grid_sums.sum(axis=1)
    out = np.empty((count, COARSE_SIZE, dim), np.float32)
    for region, columns in enumerate(region_columns(part_names)):
        sums = grid_sums[:, columns].sum(axis=1) if len(columns) else np.zeros_like(every)
        empty = (column_counts[:, columns].sum(axis=1) if len(columns) else np.zeros(count)) == 0
        sums[empty] = every[empty]
        out[:, region] = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return out


def region_codes(patches: np.ndarray, valid: np.ndarray, grid, part_names, pooled_codec, rotated: bool = False):
    """Packed first-stage codes (W * COARSE_SIZE, bytes) of windows' patches (model space, or the codec's rotated
    space when `rotated`: decoded codes), in the pooled vectors' codec."""
    coarse = region_coarse(patches, valid, grid, part_names).reshape(-1, pooled_codec.dim)
    return pooled_codec.encode_rotated(coarse) if rotated else pooled_codec.encode(coarse)


def coarse_from_pooled(pooled: np.ndarray, size: int = COARSE_SIZE) -> np.ndarray:
    """(W, K, D) pooled vectors (decoded, rotated space) -> (W, size, D) unit centroids of them: the first-stage
    table of chunks written before `region_coarse` (and without either table stored), so their search is as it
    was; compaction gives them region tables.
    """
    pooled = np.asarray(pooled, dtype=np.float32)
    pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=-1, keepdims=True), 1e-12)
    return cluster_pool(pooled, np.ones(pooled.shape[:2], bool), size=size)


def coarse_codes(packed_pooled: np.ndarray, pooled_codec, width: int) -> np.ndarray:
    """Packed pooled codes (W*K, bytes) -> packed k-means coarse codes (W*COARSE_SIZE, bytes), same codec."""
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


def coarse_kind(chunk) -> str:
    """"regions" when the chunk stores a region table, else "kmeans" (stored or derived from `pooled`)."""
    stored = chunk.arrays.get(REGIONS_ARRAY)
    return "regions" if stored is not None and len(stored) == chunk.num_windows * COARSE_SIZE else "kmeans"


def coarse_levels(chunk, pooled_codec, width: int) -> np.ndarray:
    """(W * COARSE_SIZE, D) int8 levels of a chunk's first-stage table: its region table, else its k-means one
    (stored, or derived from `pooled` for chunks older than both). See `coarse_kind`."""
    if coarse_kind(chunk) == "regions":
        return pooled_codec.levels(np.asarray(chunk.arrays[REGIONS_ARRAY]))
    packed = chunk.arrays.get(KMEANS_ARRAY)
    if packed is None or len(packed) != chunk.num_windows * COARSE_SIZE:
        packed = coarse_codes(chunk.arrays["pooled"], pooled_codec, width)
    return pooled_codec.levels(np.asarray(packed))
