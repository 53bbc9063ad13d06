"""First-stage scores from integer maxima: each query's token rows weighted and summed, in one compiled pass.

A batch stacks its queries' token rows (query 0's rows, then query 1's, ...), and a query's score is an affine
map of its own rows' maxima only: score[w, q] = sum over q's rows l of maxima[w, l] * weight[l], plus bias[q].
Written as a product with a (rows, Q) matrix, that map is zero outside each query's rows.

Why not that product: with BLAS it multiplied every query by every row (62x the work for the 62 prompts of the
match-quality null bank), and a small one paid numpy's conversions around it. At 8,193 windows and one query,
turning the int32 maxima into float32 and multiplying took 60-80 us with caches cold (a search's pattern), more
than a third of the table pass itself (AMD EPYC, Zen 3). Here each query's rows are summed in order, in float32,
straight from the integers.

Every first-stage table goes through `query_sums`, so all of them give identical scores.

`query_means` is the same for the exact scores (the middle stage's and the re-rank's): each row's cosine estimate
as `QuantizedQueries.to_scores` gives it, averaged over the query's rows in order in float64, for only the
(window, query) pairs asked for. So a query's score depends on its own quantised rows alone (which the batch's
rotation, one BLAS product, can round differently beside other rows: ~1e-7), and a batch whose queries each
re-rank their own shortlist pays for those pairs alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:
    import numba
except ImportError:  # pragma: no cover - the project installs numba; this keeps other platforms working
    numba = None


@dataclass(frozen=True)
class QueryMap:
    """The affine map from a batch's integer maxima to its queries' scores: query q's rows are
    starts[q] .. starts[q + 1] - 1, each weighted by `weights` (float32), then `bias[q]` added."""

    starts: np.ndarray  # (Q + 1,) int64
    weights: np.ndarray  # (rows,) float32
    bias: np.ndarray  # (Q,) float32

    @property
    def rows(self) -> int:
        return int(self.starts[-1])

    @property
    def queries(self) -> int:
        return len(self.bias)


def query_sums(maxima: np.ndarray, query_map: QueryMap, out: np.ndarray | None = None) -> np.ndarray:
    """(n, >= rows) maxima (int32, or floats holding integers; extra columns are padding and ignored) ->
    (n, Q) float32 scores, written into `out` when given."""
    maxima = np.asarray(maxima)
    if maxima.ndim != 2 or maxima.shape[1] < query_map.rows:
        raise ValueError(f"maxima {maxima.shape} hold fewer than the map's {query_map.rows} rows")
    if out is None:
        out = np.empty((len(maxima), query_map.queries), np.float32)
    if out.shape != (len(maxima), query_map.queries) or out.dtype != np.float32:
        raise ValueError(f"scores {out.shape} {out.dtype} do not fit {len(maxima)} windows x {query_map.queries}")
    if numba is None:  # pragma: no cover - the project installs numba
        return query_sums_numpy(maxima, query_map, out)
    _query_sums(maxima, query_map.starts, query_map.weights, query_map.bias, out)
    return out


def query_sums_numpy(maxima: np.ndarray, query_map: QueryMap, out: np.ndarray) -> np.ndarray:
    """`query_sums` in numpy: the same float32 operations in the same order, so the same scores (tested)."""
    for q in range(query_map.queries):
        total = np.zeros(len(maxima), np.float32)
        for row in range(query_map.starts[q], query_map.starts[q + 1]):
            total += maxima[:, row].astype(np.float32) * query_map.weights[row]
        out[:, q] = total + query_map.bias[q]
    return out


def query_means(maxima: np.ndarray, factor: np.ndarray, offset: np.ndarray, starts: np.ndarray,
                picked: np.ndarray | None = None) -> np.ndarray:
    """(n, >= rows) int32 maxima -> (n, Q) float64 mean cosines: row l's estimate is
    float32((2 * maxima - offset[l]) * factor[l]) (`QuantizedQueries.to_scores`), query q's score the mean of its
    rows' estimates, summed in row order. With `picked` ((n, Q) bool) only those entries; -inf elsewhere."""
    maxima = np.asarray(maxima)
    queries = len(starts) - 1
    if maxima.ndim != 2 or maxima.shape[1] < starts[-1]:
        raise ValueError(f"maxima {maxima.shape} hold fewer than the batch's {starts[-1]} rows")
    if picked is None:
        picked = np.ones((len(maxima), queries), bool)
    elif picked.shape != (len(maxima), queries):
        raise ValueError(f"picked {picked.shape} does not fit {len(maxima)} windows x {queries} queries")
    out = np.full((len(maxima), queries), -np.inf)
    factor, offset = np.asarray(factor, np.float64), np.asarray(offset, np.float64)
    if numba is None:  # pragma: no cover - the project installs numba
        return query_means_numpy(maxima, factor, offset, starts, picked, out)
    _query_means(maxima, factor, offset, np.asarray(starts, np.int64), np.ascontiguousarray(picked), out)
    return out


def query_means_numpy(maxima, factor, offset, starts, picked, out) -> np.ndarray:
    """`query_means` in numpy: the same operations in the same order, so the same scores (tested)."""
    for q in range(len(starts) - 1):
        total = np.zeros(len(maxima))
        for row in range(starts[q], starts[q + 1]):
            cosine = ((2.0 * maxima[:, row].astype(np.float64) - offset[row]) * factor[row]).astype(np.float32)
            total += cosine.astype(np.float64) * (1.0 / (starts[q + 1] - starts[q]))
        out[:, q] = np.where(picked[:, q], total, -np.inf)
    return out


if numba is not None:
    @numba.njit(nogil=True, boundscheck=False, cache=True)
    def _query_means(maxima, factor, offset, starts, picked, out):
        for window in range(out.shape[0]):
            for query in range(out.shape[1]):
                if not picked[window, query]:
                    continue
                share = 1.0 / (starts[query + 1] - starts[query])
                total = 0.0
                for row in range(starts[query], starts[query + 1]):
                    cosine = np.float32((2.0 * np.float64(maxima[window, row]) - offset[row]) * factor[row])
                    total += np.float64(cosine) * share
                out[window, query] = total

    @numba.njit(nogil=True, boundscheck=False, cache=True, inline="always")
    def _sums_into(maxima, count, starts, weights, bias, out, base, totals):
        """out[base + w] = the scores of maxima[w] for w < count; `totals`: scratch of >= count float32.

        Windows innermost, each window's rows still summed in row order (the same float32 operations): LLVM
        vectorises this loop. One query over 8,194 windows took 14 against 38 us with the rows innermost, and the
        fused table pass (`avx2_dots.interleaved_scores`, 512 windows a piece) 211 against 245 us for 4 rows
        (AMD EPYC Zen 3, side by side). Offsets rather than slices: with the pieces passed as slices the loop
        was not vectorised inside the table pass, and took as long as before."""
        for query in range(out.shape[1]):
            totals[:count] = 0.0
            for row in range(starts[query], starts[query + 1]):
                weight = weights[row]
                for window in range(count):
                    totals[window] += np.float32(maxima[window, row]) * weight
            for window in range(count):
                out[base + window, query] = totals[window] + bias[query]

    @numba.njit(nogil=True, boundscheck=False, cache=True)
    def _query_sums(maxima, starts, weights, bias, out):
        windows = out.shape[0]
        _sums_into(maxima, windows, starts, weights, bias, out, 0, np.empty(windows, np.float32))
