"""Boolean per-frame masks -> time intervals, with the clean-up every detector needs.

Short gaps are bridged and short runs dropped (both in seconds, so the result does not depend on the
frame rate); hysteresis keeps a signal hovering at a threshold from flickering on and off.
"""

from __future__ import annotations

import numpy as np


def runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[(start, stop)] frame ranges (stop exclusive) where `mask` is True."""
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        return []
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    return list(zip(np.flatnonzero(edges == 1).tolist(), np.flatnonzero(edges == -1).tolist()))


def hysteresis(signal: np.ndarray, high: float, low: float) -> np.ndarray:
    """True from where `signal` exceeds `high` until it falls below `low` (runs that never reach `high` drop)."""
    signal = np.asarray(signal, dtype=float)
    weak = signal > low
    out = np.zeros(len(signal), dtype=bool)
    strong = signal > high
    for start, stop in runs(weak):
        if strong[start:stop].any():
            out[start:stop] = True
    return out


def clean(mask: np.ndarray, fps: float, min_s: float = 0.0, gap_s: float = 0.0) -> list[tuple[int, int]]:
    """Runs of `mask` after bridging gaps shorter than `gap_s` and dropping runs shorter than `min_s`."""
    spans = runs(mask)
    merged: list[list[int]] = []
    for start, stop in spans:
        if merged and (start - merged[-1][1]) / fps < gap_s:
            merged[-1][1] = stop
        else:
            merged.append([start, stop])
    return [(a, b) for a, b in merged if (b - a) / fps >= min_s]


def overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Seconds two (start, end) intervals share."""
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
