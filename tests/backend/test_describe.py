"""The kinematic describer on procedural motions: which body part does what, on which side, in what order."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.synthetic import write_action_bvh
from mofind.describe import Description, Phrase, describe_motion
from mofind.features.mirror import mirror_joints
from mofind.features.parts import PART_NAMES
from mofind.io import load_motion


@pytest.fixture(scope="module")
def joints(tmp_path_factory):
    """action -> SMPL-22 joints at 20 fps, through the real BVH writer and loader."""
    folder = tmp_path_factory.mktemp("describe")
    out = {}
    for action in ("idle", "walk", "wave_left", "wave_right", "raise_left", "raise_both", "turn_left", "turn_right",
                   "jump", "squat", "kick_right", "sit"):
        out[action] = load_motion(write_action_bvh(folder / f"{action}.bvh", "bandai", action, seconds=4.0)).joints
    return out


def kinds(d: Description) -> list[tuple[str, str | None]]:
    return [(p.kind, _side(p)) for p in d.phrases]


def _side(p: Phrase) -> str | None:
    left, right = any(x.startswith("l_") for x in p.parts), any(x.startswith("r_") for x in p.parts)
    return "both" if left and right else "left" if left else "right" if right else None


@pytest.mark.parametrize("action, expected", [
    ("raise_left", [("raise_arm", "left")]),
    ("raise_both", [("raise_arm", "both")]),
    ("squat", [("squat", "both")]),
    ("jump", [("jump", "both")]),
    ("idle", [("stand_still", None)]),
    ("sit", [("sit", "both"), ("stand_up", "both")]),
])
def test_single_actions(joints, action, expected):
    assert kinds(describe_motion(joints[action], 20.0)) == expected


def test_left_arm_raise_names_the_left_arm_above_the_head(joints):
    d = describe_motion(joints["raise_left"], 20.0)
    assert d.sentence == "a person raises the left arm above the head"
    assert d.phrases[0].parts == ("l_shoulder", "l_elbow")
    assert d.phrases[0].part_words == ("raises", "left", "arm")
    assert 0.5 < d.phrases[0].start_s < 1.5 and d.phrases[0].end_s == pytest.approx(4.0, abs=0.1)


@pytest.mark.parametrize("action, side", [("wave_left", "left"), ("wave_right", "right")])
def test_waves_name_the_waving_hand_and_mirroring_swaps_it(joints, action, side):
    other = {"left": "right", "right": "left"}[side]
    d = describe_motion(joints[action], 20.0)
    assert ("wave", side) in kinds(d) and f"waves the {side} hand" in d.sentence and other not in d.sentence
    m = describe_motion(mirror_joints(joints[action]), 20.0)
    assert ("wave", other) in kinds(m) and f"waves the {other} hand" in m.sentence


@pytest.mark.parametrize("action, direction", [("turn_left", "left"), ("turn_right", "right")])
def test_turn_direction_during_a_walk(joints, action, direction):
    d = describe_motion(joints[action], 20.0)
    turn = [p for p in d.phrases if p.kind == "turn"]
    assert len(turn) == 1 and turn[0].text == f"turns {direction}" and turn[0].parts == ("pelvis", "global")
    gait = [p for p in d.phrases if p.kind in ("walk", "jog", "run")]
    assert gait and set(gait[0].parts) == {"global", "l_hip", "r_hip", "l_knee", "r_knee", "l_ankle", "r_ankle"}
    assert " and turns " in d.sentence  # walking and turning happen together


def test_kick_names_the_kicking_leg_and_mirroring_swaps_it(joints):
    d = describe_motion(joints["kick_right"], 20.0)
    kicks = [p for p in d.phrases if p.kind == "kick"]
    assert len(kicks) == 1 and kicks[0].parts == ("r_hip", "r_knee", "r_ankle")
    assert "kicks forward with the right leg" in d.sentence and "left" not in d.sentence
    assert 1.0 < kicks[0].start_s < kicks[0].end_s < 2.2
    m = describe_motion(mirror_joints(joints["kick_right"]), 20.0)
    assert [p.parts for p in m.phrases if p.kind == "kick"] == [("l_hip", "l_knee", "l_ankle")]


def test_order_in_time(joints):
    both = np.concatenate([joints["squat"], joints["raise_left"]])
    d = describe_motion(both, 20.0)
    assert [p.kind for p in d.phrases] == ["squat", "raise_arm"]
    assert d.sentence.startswith("a person squats down") and ", then raises the left arm" in d.sentence


def test_frame_rate_does_not_change_the_description(tmp_path):
    for action in ("wave_left", "jump", "squat", "turn_left"):
        path = write_action_bvh(tmp_path / f"{action}.bvh", "bandai", action, seconds=4.0)
        slow, fast = load_motion(path, fps=20.0), load_motion(path, fps=60.0)
        assert describe_motion(slow.joints, 20.0).sentence == describe_motion(fast.joints, 60.0).sentence, action


def test_varied_wording_keeps_meaning_and_parts(joints):
    canonical = describe_motion(joints["wave_left"], 20.0)
    assert describe_motion(joints["wave_left"], 20.0) == canonical  # deterministic
    varied = [describe_motion(joints["wave_left"], 20.0, np.random.default_rng(seed)) for seed in range(12)]
    assert len({v.sentence for v in varied}) >= 3
    for v in varied:
        assert [p.kind for p in v.phrases] == [p.kind for p in canonical.phrases]
        assert [p.parts for p in v.phrases] == [p.parts for p in canonical.phrases]
        assert "left" in v.sentence and "right" not in v.sentence


def test_parts_are_patch_columns_and_part_words_are_in_the_text(joints):
    for action, j in joints.items():
        for p in describe_motion(j, 20.0, np.random.default_rng(1)).phrases:
            assert set(p.parts) <= set(PART_NAMES), (action, p)
            assert all(w in p.text.split() for w in p.part_words), (action, p)
            assert 0.0 <= p.start_s <= p.end_s


def test_bad_input_is_refused_clearly(joints):
    with pytest.raises(ValueError, match="22, 3"):
        describe_motion(np.zeros((10, 21, 3)), 20.0)
    with pytest.raises(ValueError, match="NaN"):
        describe_motion(np.full((10, 22, 3), np.nan), 20.0)
    with pytest.raises(ValueError, match="fps"):
        describe_motion(np.zeros((10, 22, 3)), 0.0)
    with pytest.raises(ValueError, match="leg length"):
        describe_motion(np.zeros((10, 22, 3)), 20.0)  # every joint at one point
    with pytest.raises(ValueError, match="metres"):
        describe_motion(joints["idle"] * 100.0, 20.0)  # centimetres
    assert describe_motion(joints["idle"][:1], 20.0).sentence == "a person stands still"  # one frame is fine


def test_marker_jitter_does_not_change_the_description(joints):
    rng = np.random.default_rng(3)
    for action in ("wave_left", "turn_right", "jump", "squat", "kick_right", "idle"):
        clean = describe_motion(joints[action], 20.0)
        noisy = describe_motion(joints[action] + rng.normal(0.0, 0.005, joints[action].shape), 20.0)
        assert noisy.sentence == clean.sentence, action
