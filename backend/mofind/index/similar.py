"""Query by example: takes that move like a given window, by motion-to-motion MaxSim (symmetrised).

s(a -> b) averages, over the example's patches, the best matching patch of window b; s(b -> a) does the
reverse. Their mean is symmetric, so a short gesture does not match every long take that happens to
contain it somewhere while missing the rest.
"""

from __future__ import annotations

import numpy as np

from .explain import choose_window
from .kernels import BLOCK_WINDOWS, symmetric_dots
from .search import Filters, Hit, Searcher, _hit, default_candidates


def similar(searcher: Searcher, clip_id: str, k: int = 10, start_frame: int | None = None,
            filters: Filters | dict | None = None, mode: str = "auto",
            candidates: int | None = None) -> list[Hit]:
    """The k takes most similar to a window of `clip_id` (KeyError if it is not indexed); itself excluded.

    `start_frame` (source frames) picks the example window; by default the clip's first window.
    """
    if k < 1:
        raise ValueError("k must be at least 1")
    if not isinstance(filters, Filters):
        filters = Filters.from_dict(filters)
    snapshot = searcher.snapshot
    reader = snapshot.reader
    example = choose_window(reader, clip_id, None, start_frame)
    stored = example.chunk.window_packed(example.index)
    top_level = reader.codec.level_count - 1
    centred = 2 * reader.codec.levels(stored).astype(np.int32) - top_level  # odd integers, bin centres x 2/step
    alpha = np.ascontiguousarray(centred.astype(np.int8))  # (A, D)
    alpha_sum = centred.sum(1).astype(np.int32)
    allowed = searcher.allowed_windows(snapshot, filters)
    allowed = allowed[np.array([snapshot.clips[c]["clip_id"] != clip_id for c in snapshot.window_clip[allowed]],
                               dtype=bool)] if len(allowed) else allowed
    if len(allowed) == 0:
        return []
    mode = searcher.resolve_mode(mode, snapshot)
    candidates = candidates or default_candidates(len(allowed))
    if mode == "two_stage" and len(allowed) > candidates:
        # shortlist with the example's own pooled vectors as a text-like query, then score exactly
        pooled = reader.pooled_codec.decode_original(
            example.chunk.arrays["pooled"][example.index * _pool_width(example.chunk):
                                           (example.index + 1) * _pool_width(example.chunk)])
        first = searcher.first_stage_scores([pooled], allowed, snapshot)[:, 0]
        allowed = allowed[np.argpartition(-first, candidates - 1)[:candidates]]
    scores = np.empty(len(allowed))
    kernel = getattr(searcher, "local", searcher).kernel  # a sharded searcher scores examples on its local copy
    chunks = snapshot.window_chunk[allowed]
    for c in np.unique(chunks):
        scan = snapshot.scans[c]
        where = np.flatnonzero(chunks == c)
        local = snapshot.window_index[allowed[where]]
        for start in range(0, len(local), BLOCK_WINDOWS):  # fixed-size blocks: bounded memory
            part = local[start:start + BLOCK_WINDOWS]
            forward, backward = symmetric_dots(scan.window_levels(part), scan.real(part), alpha, alpha_sum,
                                               top_level, kernel)
            scores[where[start:start + len(part)]] = (forward + backward) / 2.0
    scores *= (reader.codec.step / 2.0) ** 2
    return _best_takes(snapshot, allowed, scores, k)


def _pool_width(chunk) -> int:
    return len(chunk.arrays["pooled"]) // max(chunk.num_windows, 1)


def _best_takes(snapshot, allowed: np.ndarray, scores: np.ndarray, k: int) -> list[Hit]:
    clips = snapshot.window_clip[allowed]
    best: dict[int, int] = {}
    for position in np.argsort(-scores, kind="stable"):
        clip = int(clips[position])
        if clip not in best:
            best[clip] = int(position)
            if len(best) == k:
                break
    return [_hit(snapshot, int(allowed[p]), float(scores[p])) for p in best.values()]

