"""Validation report: per-label breakdown that exposes left/right confusions."""

from __future__ import annotations

import numpy as np
import pytest

from mofind.train.report import label_breakdown, side_of


def test_side_of_reads_the_side_word_of_a_label():
    assert side_of("wave-left-hand") == "left" and side_of("walk-turn-right") == "right"
    assert side_of("wave-both-hands") is None and side_of("run") is None


def test_breakdown_separates_exact_label_and_side_hits():
    labels = [{"content": c, "style": s} for c, s in [("wave-left-hand", "normal"), ("wave-left-hand", "elderly"),
                                                       ("wave-right-hand", "normal"), ("raise-up-left-hand", "normal")]]
    captions = [f"{l['style']} {l['content']}" for l in labels]
    scores = np.array([
        [0.9, 0.1, 0.2, 0.3],  # exact hit
        [0.9, 0.1, 0.2, 0.3],  # right content, wrong style: no R@1, content hit
        [0.8, 0.1, 0.2, 0.3],  # right-hand query finds a left-hand wave: content and side wrong
        [0.1, 0.9, 0.2, 0.3],  # left raise finds a left wave: content wrong, side right
    ])
    out = label_breakdown(scores, captions, labels, "content", ["wave-left-hand", "wave-right-hand",
                                                               "raise-up-left-hand", "run"])
    assert out["wave-left-hand"] == {"queries": 2, "t2m_r1": 50.0, "content_top1": 100.0, "side_top1": 100.0}
    assert out["wave-right-hand"] == {"queries": 1, "t2m_r1": 0.0, "content_top1": 0.0, "side_top1": 0.0}
    assert out["raise-up-left-hand"] == {"queries": 1, "t2m_r1": 0.0, "content_top1": 0.0, "side_top1": 100.0}
    assert "run" not in out  # no queries of that label


def test_pooled_weights_each_label_by_its_queries():
    from mofind.train.report import pooled

    breakdown = {"wave-left-hand": {"queries": 1, "t2m_r1": 100.0, "content_top1": 100.0, "side_top1": 100.0},
                 "raise-up-left-hand": {"queries": 3, "t2m_r1": 0.0, "content_top1": 100.0, "side_top1": 50.0}}
    out = pooled(breakdown, {"left": ("wave-left-hand", "raise-up-left-hand"), "right": ("wave-right-hand",)})
    assert out == {"left": {"queries": 4, "t2m_r1": 25.0, "content_top1": 100.0, "side_top1": 62.5}}


def test_free_form_queries_use_words_the_templates_never_do():
    """The free-form report must measure wording the model was not taught by the templates: every query has at
    least two content words outside the template vocabulary, and most content words overall are new."""
    from mofind.train.report import FREE_FORM_QUERIES, MIN_NEW_WORDS, template_overlap

    overlap = template_overlap()
    print(f"content words also in the templates: {100 * overlap['content_word_overlap']:.0f} %")
    for row in overlap["queries"]:
        print(f"  {row['query']!r}: template {row['template_words']}, new {row['new_words']}")
    assert len(FREE_FORM_QUERIES) >= 30
    assert overlap["min_new_words"] >= MIN_NEW_WORDS
    assert overlap["content_word_overlap"] < 0.5
    contents = {content for _, content in FREE_FORM_QUERIES}
    assert len(contents) == 10  # every Bandai content is asked for


def test_cmu_retrieval_recall_counts_ties_against_the_query_and_gives_chance():
    from mofind.train.heldout import recall

    scores = np.array([[0.9, 0.1, 0.2], [0.5, 0.5, 0.1], [0.3, 0.2, 0.1]])
    out = recall(scores, [0, 1, 2], ks=(1, 2))
    assert out["t2m_r1"] == pytest.approx(100 / 3) and out["t2m_r2"] == pytest.approx(200 / 3)  # tie: ranked 2nd
    assert out["chance_r1"] == pytest.approx(100 / 3) and out["chance_r2"] == pytest.approx(200 / 3)
    assert out["gallery"] == 3
