"""Retrieval metrics (pure numpy): rank of the best ground-truth item, R@k, MedR.

Conventions follow the MotionColBert / TM2T evaluation: `rank` is the 0-based position of the best-ranked
ground-truth item in descending score order, R@k = 100 x fraction of queries with rank < k, and
MedR = median(0-based ranks) + 1 (so it can end in .5). Ties are handled explicitly, because a sort that
happens to put a tied ground truth first would silently inflate recall:

- "pessimistic" (default): every non-ground-truth item tied with the best ground truth ranks before it;
- "optimistic": tied non-ground-truth items rank after it;
- "expected": the mean rank under a uniformly random order of the tied items.
"""

from __future__ import annotations

import numpy as np

DEFAULT_KS = (1, 2, 3, 5, 10)
TIE_MODES = ("pessimistic", "optimistic", "expected")


def best_gt_ranks(scores: np.ndarray, gt: np.ndarray, ties: str = "pessimistic") -> np.ndarray:
    """0-based rank of the best ground-truth item per query row.

    Args:
        scores: (Q, G) higher is better.
        gt: (Q, G) bool, True where the gallery item is a correct answer; every row needs at least one.
        ties: one of TIE_MODES.

    >>> scores = np.array([[0.9, 0.5, 0.1], [0.2, 0.2, 0.7]])
    >>> gt = np.array([[False, True, False], [True, False, False]])
    >>> best_gt_ranks(scores, gt).tolist()                     # row 1: one non-GT tie + one better item
    [1.0, 2.0]
    >>> best_gt_ranks(scores, gt, ties="optimistic").tolist()
    [1.0, 1.0]
    >>> best_gt_ranks(scores, gt, ties="expected").tolist()
    [1.0, 1.5]
    """
    scores = np.asarray(scores, dtype=np.float64)
    gt = np.asarray(gt, dtype=bool)
    if scores.ndim != 2 or scores.shape != gt.shape:
        raise ValueError(f"scores {scores.shape} and gt {gt.shape} must be equal 2-D shapes")
    if not gt.any(axis=1).all():
        raise ValueError(f"query rows {np.flatnonzero(~gt.any(axis=1))[:5].tolist()} have no ground truth")
    if ties not in TIE_MODES:
        raise ValueError(f"ties must be one of {TIE_MODES}, got {ties!r}")
    if np.isnan(scores).any():
        raise ValueError("scores contain NaN")
    best = np.where(gt, scores, -np.inf).max(axis=1, keepdims=True)
    above = (scores > best).sum(axis=1)  # only non-GT items can beat the best GT
    tied_other = ((scores == best) & ~gt).sum(axis=1)
    tied_gt = ((scores == best) & gt).sum(axis=1)
    if ties == "optimistic":
        return above.astype(np.float64)
    if ties == "pessimistic":
        return (above + tied_other).astype(np.float64)
    # first of tied_gt GT items among tied_gt + tied_other shuffled: expected tied_other / (tied_gt + 1) before it
    return above + tied_other / (tied_gt + 1.0)


def recall_at_k(ranks: np.ndarray, ks=DEFAULT_KS) -> dict[int, float]:
    """R@k in percent from 0-based ranks (fractional "expected" ranks count as the chance of being < k).

    >>> recall_at_k(np.array([0, 1, 4, 12]), ks=(1, 5, 10))
    {1: 25.0, 5: 75.0, 10: 75.0}
    """
    ranks = np.asarray(ranks, dtype=np.float64)
    out = {}
    for k in ks:
        inside = np.clip(k - ranks, 0.0, 1.0)  # 1 for rank <= k-1; partial only for fractional ranks
        out[int(k)] = float(100.0 * inside.mean())
    return out


def median_rank(ranks: np.ndarray) -> float:
    """median(0-based ranks) + 1.

    >>> median_rank(np.array([0, 1, 2, 2]))
    2.5
    """
    return float(np.median(np.asarray(ranks, dtype=np.float64)) + 1.0)


def retrieval_metrics(scores: np.ndarray, gt: np.ndarray, ks=DEFAULT_KS, ties: str = "pessimistic") -> dict:
    """Both directions from one text x motion matrix: t2m uses rows, m2t the transpose.

    Returns keys t2m_r{k}, t2m_medr, m2t_r{k}, m2t_medr (R@k in percent).

    >>> scores = np.array([[0.9, 0.1], [0.2, 0.8]])
    >>> retrieval_metrics(scores, np.eye(2, dtype=bool), ks=(1,))
    {'t2m_r1': 100.0, 't2m_medr': 1.0, 'm2t_r1': 100.0, 'm2t_medr': 1.0}
    """
    scores = np.asarray(scores)
    gt = np.asarray(gt, dtype=bool)
    out = {}
    for prefix, s, g in (("t2m", scores, gt), ("m2t", scores.T, gt.T)):
        ranks = best_gt_ranks(s, g, ties)
        out.update({f"{prefix}_r{k}": v for k, v in recall_at_k(ranks, ks).items()})
        out[f"{prefix}_medr"] = median_rank(ranks)
    return out


def identical_caption_gt(captions: list[str]) -> np.ndarray:
    """(N, N) ground truth where every item whose caption string equals the query's counts (official rule).

    >>> identical_caption_gt(["a", "b", "a"]).astype(int).tolist()
    [[1, 0, 1], [0, 1, 0], [1, 0, 1]]
    """
    captions = np.asarray(captions, dtype=object)
    return captions[:, None] == captions[None, :]
