"""Retrieval metrics and protocols on hand-made score matrices with known answers."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest

from mofind.eval import metrics
from mofind.eval.metrics import best_gt_ranks, identical_caption_gt, median_rank, recall_at_k, retrieval_metrics
from mofind.eval.protocols import EmbeddedSet, markdown_table, protocol_all, protocol_batches, score_matrix


def test_doctests():
    result = doctest.testmod(metrics)
    assert result.attempted >= 8 and result.failed == 0


def test_ranks_by_hand():
    # query 0: GT at index 2 has the 3rd highest score -> rank 2; query 1: GT is the best -> 0
    scores = np.array([[0.9, 0.8, 0.7, 0.1], [0.1, 0.5, 0.2, 0.3]])
    gt = np.array([[0, 0, 1, 0], [0, 1, 0, 0]], bool)
    assert best_gt_ranks(scores, gt).tolist() == [2.0, 0.0]
    # several GT: the best-ranked one counts
    gt2 = np.array([[0, 0, 1, 1], [1, 0, 0, 1]], bool)
    assert best_gt_ranks(scores, gt2).tolist() == [2.0, 1.0]


def test_tie_modes():
    scores = np.array([[0.5, 0.5, 0.5, 0.9]])
    gt = np.array([[True, False, False, False]])
    assert best_gt_ranks(scores, gt, "optimistic").tolist() == [1.0]
    assert best_gt_ranks(scores, gt, "pessimistic").tolist() == [3.0]
    assert best_gt_ranks(scores, gt, "expected").tolist() == [2.0]  # 2 tied rivals, uniform order: mean 1
    gt_two = np.array([[True, True, False, False]])  # 2 GT and 1 rival tied: rival first with p=1/3
    assert best_gt_ranks(scores, gt_two, "expected")[0] == pytest.approx(1 + 1 / 3)
    # a constant score matrix is the worst case, not a perfect score
    flat = np.zeros((4, 4))
    assert retrieval_metrics(flat, np.eye(4, dtype=bool), ks=(1,))["t2m_r1"] == 0.0


def test_recall_and_median():
    ranks = np.array([0, 0, 1, 2, 4, 9, 10, 50])
    assert recall_at_k(ranks) == {1: 25.0, 2: 37.5, 3: 50.0, 5: 62.5, 10: 75.0}
    assert median_rank(ranks) == 4.0  # median of 0-based ranks (2 + 4) / 2 = 3, plus 1
    assert median_rank(np.array([0, 1, 2])) == 2.0


def test_bad_inputs():
    with pytest.raises(ValueError, match="no ground truth"):
        best_gt_ranks(np.zeros((2, 2)), np.array([[1, 0], [0, 0]], bool))
    with pytest.raises(ValueError, match="shapes"):
        best_gt_ranks(np.zeros((2, 3)), np.eye(2, dtype=bool))
    with pytest.raises(ValueError, match="NaN"):
        best_gt_ranks(np.full((1, 1), np.nan), np.ones((1, 1), bool))


@pytest.mark.needs_shared
def test_reproduces_official_evaluate(reference_dir):
    out = reference_dir / "outputs"
    data = np.load(out / "eval_protocol.npz")
    meta = json.loads((out / "meta.json").read_text())
    gt = identical_caption_gt(meta["evaluate_captions"])
    assert best_gt_ranks(data["sims"], gt).tolist() == data["t2m_ranks0"].tolist()
    assert best_gt_ranks(data["sims"].T, gt.T).tolist() == data["m2t_ranks0"].tolist()
    assert protocol_all(data["sims"], meta["evaluate_captions"]) == pytest.approx(meta["evaluate_metrics"])


def test_batch_protocol_groups_and_pooling():
    rng = np.random.default_rng(0)
    n = 70  # two full groups of 32, 6 items dropped
    captions = [f"caption {i}" for i in range(n)]
    perfect = np.eye(n) + 0.01 * rng.random((n, n))
    result = protocol_batches(perfect, captions)
    assert result["groups"] == 2 and result["t2m_r1"] == 100.0 and result["m2t_medr"] == 1.0
    # a score matrix where the GT is always the worst in the whole gallery: rank 31 inside each group
    worst = -np.eye(n)
    result = protocol_batches(worst, captions)
    assert result["t2m_r10"] == 0.0 and result["t2m_medr"] == 32.0
    all_result = protocol_all(worst, captions)
    assert all_result["t2m_medr"] == float(n)
    with pytest.raises(ValueError, match="at least 32"):
        protocol_batches(np.eye(5), captions[:5])


def test_score_matrix_matches_direct_maxsim_across_chunks():
    from mofind.model.maxsim import maxsim

    rng = np.random.default_rng(1)

    def unit(*shape):
        x = rng.standard_normal(shape).astype(np.float32)
        return x / np.linalg.norm(x, axis=-1, keepdims=True)

    tokens = [unit(n, 8) for n in (3, 1, 5, 2, 4)]
    patches, valid = unit(5, 6, 8), rng.random((5, 6)) < 0.7
    valid[:, 0] = True
    emb = EmbeddedSet(tokens, patches, valid, [str(i) for i in range(5)], [str(i) for i in range(5)])
    got = score_matrix(emb, use_patch_mask=True, text_chunk=2, motion_chunk=3)
    for i, t in enumerate(tokens):
        direct = maxsim(t[None].astype(np.float64), np.ones((1, len(t)), bool), patches.astype(np.float64), valid)
        np.testing.assert_allclose(got[i], direct[0], atol=1e-6)


def test_markdown_table():
    row = {f"{d}_{m}": 12.345 for d in ("t2m", "m2t") for m in ("r1", "r2", "r3", "r5", "r10", "medr")}
    table = markdown_table({"MaxSim": row})
    assert "T2M R@1" in table and "M2T MedR" in table and "| MaxSim | 12.35 |" in table
