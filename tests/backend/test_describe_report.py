"""The describer's agreement report: scoring rules always; the measured thresholds when ../shared is present."""

from __future__ import annotations

import pytest

from mofind.describe import Description, Phrase
from mofind.describe.report import bandai_report, bandai_split, mentions, score_bandai


def _d(*phrases: tuple[str, tuple[str, ...], str]) -> Description:
    return Description("", [Phrase(text, parts, 0.0, 1.0, kind) for text, parts, kind in phrases])


def test_caption_words_and_their_inflections():
    assert mentions("a man is running in place", "run") and mentions("someone ran", "run")
    assert mentions("a person waving hello", "wave") and not mentions("a person walks", "wave")
    assert mentions("he sat down", "sit") and mentions("lying on the floor", "lie")
    assert not mentions("a person walks", "run")


def test_scoring_rules_follow_the_file_name_labels():
    left_wave = _d(("waves the left hand", ("l_shoulder", "l_elbow"), "wave"))
    assert score_bandai("dataset-2_wave-left-hand_normal_001", left_wave) == {"hand": True}
    assert score_bandai("dataset-2_raise-up-right-hand_normal_001", left_wave) == {"hand": False}
    both = _d(("raises both arms", ("l_shoulder", "l_elbow", "r_shoulder", "r_elbow"), "raise_arm"))
    assert score_bandai("dataset-2_raise-up-both-hands_normal_001", both) == {"both_hands": True}
    turn = _d(("walks forward", ("global",), "walk"), ("turns right", ("pelvis", "global"), "turn"))
    assert score_bandai("dataset-2_walk-turn-right_normal_001", turn) == {"turn": True}
    assert score_bandai("dataset-2_walk-turn-left_normal_001", turn) == {"turn": False}
    assert score_bandai("dataset-2_run_normal_001", turn) == {"run_vs_walk": False}
    assert score_bandai("dataset-2_walk_normal_001", turn) == {"run_vs_walk": True}
    assert score_bandai("dataset-2_run_normal_001", _d()) == {"run_vs_walk": False}  # saying nothing is wrong


def test_tuning_and_report_halves_split_every_group():
    names = [f"dataset-2_walk_{style}_{n:03d}" for style in ("normal", "active") for n in range(1, 6)]
    split = bandai_split(names)
    assert [split[n] for n in names[:5]] == ["tune", "tune", "report", "report", "report"]
    assert sum(v == "tune" for v in split.values()) == 4


@pytest.mark.needs_shared
@pytest.mark.slow
def test_measured_agreement_on_the_held_out_half(shared):
    checks = bandai_report("report")["checks"]
    assert checks["hand"]["rate"] >= 0.98 and checks["hand"]["of"] > 400
    assert checks["turn"]["rate"] >= 0.95 and checks["turn"]["of"] > 150
    assert checks["run_vs_walk"]["rate"] >= 0.95 and checks["run_vs_walk"]["of"] > 150
