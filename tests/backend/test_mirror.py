"""Left/right mirroring of joints (HumanML3D augmentation) and of captions."""

from __future__ import annotations

import numpy as np
import pytest

from mofind.features.angles import joint_angles41
from mofind.features.mirror import mirror_caption, mirror_joints
from mofind.features.parts import COLUMNS41

L_HIP, R_HIP, L_KNEE, R_KNEE, L_ANKLE, R_ANKLE = 1, 2, 4, 5, 7, 8
L_SHOULDER, R_SHOULDER, L_WRIST, R_WRIST = 16, 17, 20, 21


def random_motion(frames: int = 12, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(frames, 22, 3)).astype(np.float32)


def stepping_pose() -> np.ndarray:
    """A clearly asymmetric pose: left knee lifted forward, right leg straight, hips level."""
    j = np.zeros((22, 3))
    j[0] = (0, 0.95, 0)
    j[L_HIP], j[R_HIP] = (0.09, 0.90, 0), (-0.09, 0.90, 0)
    j[L_KNEE], j[L_ANKLE] = (0.10, 0.80, 0.38), (0.11, 0.42, 0.30)
    j[R_KNEE], j[R_ANKLE] = (-0.10, 0.50, -0.02), (-0.11, 0.10, -0.05)
    j[10], j[11] = j[L_ANKLE] + (0, -0.02, 0.12), j[R_ANKLE] + (0, 0, 0.12)
    j[3], j[6], j[9], j[12], j[15] = (0, 1.05, 0), (0, 1.2, 0), (0, 1.3, 0), (0, 1.5, 0.01), (0, 1.62, 0.03)
    j[13], j[14] = (0.05, 1.45, 0), (-0.05, 1.45, 0)
    j[L_SHOULDER], j[R_SHOULDER] = (0.18, 1.45, 0), (-0.18, 1.45, 0)
    j[18], j[19] = (0.2, 1.17, -0.05), (-0.2, 1.18, 0.06)
    j[L_WRIST], j[R_WRIST] = (0.22, 0.93, 0.02), (-0.2, 1.0, 0.25)
    return j


@pytest.mark.needs_shared
def test_matches_the_reference_mirrored_clip(reference_dir):
    joints = np.load(reference_dir / "inputs" / "joints_012314.npy")
    expected = np.load(reference_dir / "inputs" / "joints_M012314.npy")
    np.testing.assert_array_equal(mirror_joints(joints), expected)


def test_mirroring_twice_is_identity_and_input_is_untouched():
    motion = random_motion()
    before = motion.copy()
    once = mirror_joints(motion)
    assert once.dtype == motion.dtype and once.shape == motion.shape
    assert not np.array_equal(once, motion)
    np.testing.assert_array_equal(mirror_joints(once), motion)
    np.testing.assert_array_equal(motion, before)


def test_left_hand_trajectory_becomes_the_right_hand_trajectory():
    motion = random_motion()
    mirrored = mirror_joints(motion)
    np.testing.assert_array_equal(mirrored[:, R_WRIST, 0], -motion[:, L_WRIST, 0])
    np.testing.assert_array_equal(mirrored[:, R_WRIST, 1:], motion[:, L_WRIST, 1:])
    np.testing.assert_array_equal(mirrored[:, 0, 0], -motion[:, 0, 0])  # the pelvis stays itself


def test_mirrored_legs_swap_their_joint_angles():
    pose = stepping_pose()[None].astype(np.float32)
    original, mirrored = joint_angles41(pose)[0], joint_angles41(mirror_joints(pose))[0]
    col = {n: i for i, n in enumerate(COLUMNS41)}
    assert original[col["hip_flexion_l"]] > 30 > abs(original[col["hip_flexion_r"]])
    for a, b in [("hip_flexion_r", "hip_flexion_l"), ("hip_adduction_r", "hip_adduction_l"),
                 ("hip_rotation_r", "hip_rotation_l"), ("knee_angle_r", "knee_angle_l"),
                 ("ankle_angle_r", "ankle_angle_l"), ("elbow_flex_r", "elbow_flex_l")]:
        assert mirrored[col[a]] == pytest.approx(original[col[b]], abs=1e-3), a
        assert mirrored[col[b]] == pytest.approx(original[col[a]], abs=1e-3), b
    for name in ("pelvis_list", "pelvis_rotation", "lumbar_bending"):  # sideways quantities flip
        assert mirrored[col[name]] == pytest.approx(-original[col[name]], abs=1e-3), name


def test_wrong_shape_is_rejected():
    with pytest.raises(ValueError, match="shape"):
        mirror_joints(np.zeros((5, 24, 3)))


@pytest.mark.parametrize("text, expected", [
    ("a person kicks with the left leg", "a person kicks with the right leg"),
    ("Right hand waves, then the LEFT foot taps", "Left hand waves, then the RIGHT foot taps"),
    ("turns clockwise then counterclockwise", "turns counterclockwise then clockwise"),
    ("spins counter-clockwise", "spins clockwise"),
    ("moves leftward and then rightwards", "moves rightward and then leftwards"),
    ("a left-handed throw with the right-hand side", "a right-handed throw with the left-hand side"),
    ("eats the leftovers, stands upright in bright light", "eats the leftovers, stands upright in bright light"),
    ("left, right, left.", "right, left, right."),
])
def test_caption_sides_are_swapped_case_preserving_and_word_safe(text, expected):
    assert mirror_caption(text) == expected


def test_caption_mirroring_twice_restores_side_words():
    text = "A man raises his Left arm, steps right and turns clockwise"
    assert mirror_caption(mirror_caption(text)) == text
