"""Window-invariant angles: the same movement anywhere on the floor, facing anywhere, on any body size."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.synthetic import write_action_bvh
from mofind.features.angles import joint_angles41
from mofind.features.parts import COLUMNS41
from mofind.features.window import REFERENCE_LEG_M, canonical_window, leg_length, window_angles41
from mofind.io import load_motion
from mofind.model.motion_input import identity_stats, joints_to_input

PELVIS_TY = COLUMNS41.index("pelvis_ty")
TRANSLATION_COLUMNS = [COLUMNS41.index(name) for name in ("pelvis_tx", "pelvis_ty", "pelvis_tz")]


@pytest.fixture(scope="module")
def walk(tmp_path_factory) -> np.ndarray:
    path = write_action_bvh(tmp_path_factory.mktemp("walk") / "walk.bvh", "cmu", "walk", seconds=4.0, fps=60, seed=3)
    return load_motion(path).joints


def yaw_matrix(angle: float) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    return np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])


def test_a_window_cut_late_in_a_take_reads_like_one_at_its_start(walk):
    late = walk[40:88]
    moved = late @ yaw_matrix(2.3).T + np.array([7.0, 0.0, -4.0])
    raw_gap = np.abs(joint_angles41(late) - joint_angles41(moved.astype(np.float32))).max()
    assert raw_gap > 1.0, "the official angles do depend on where the window starts"
    # float32 rounding of the rotated joints moves near-degenerate angles by a few hundredths of a degree
    np.testing.assert_allclose(window_angles41(moved), window_angles41(late), atol=0.05)


def test_body_size_is_scaled_to_the_reference_leg(walk):
    window = walk[:48]
    small = window * 0.8
    assert leg_length(canonical_window(small)) == pytest.approx(REFERENCE_LEG_M, rel=1e-4)
    np.testing.assert_allclose(window_angles41(small), window_angles41(window), atol=1e-3)
    official = joint_angles41(small.astype(np.float32))[:, TRANSLATION_COLUMNS]
    assert not np.allclose(official, joint_angles41(window)[:, TRANSLATION_COLUMNS], atol=1e-3)


def test_pelvis_height_is_relative_to_the_window_but_a_crouch_stays_visible(walk):
    window = walk[:48].copy()
    angles = window_angles41(window)
    assert np.median(angles[:, PELVIS_TY]) == pytest.approx(0.0, abs=1e-9)
    crouched = window.copy()
    crouched[24:, :, 1] -= 0.3  # the whole body drops 30 cm half-way through (the feet too: floor stays the lowest)
    heights = window_angles41(crouched)[:, PELVIS_TY]
    assert heights[:24].mean() - heights[24:].mean() > 0.2


def test_joint_angles_other_than_translation_are_unchanged(walk):
    window = walk[:48]
    rotation_columns = [i for i in range(41) if i not in range(3, 18) and i != 2]  # 2: absolute yaw of the pelvis
    np.testing.assert_allclose(window_angles41(window)[:, rotation_columns],
                               joint_angles41(canonical_window(window))[:, rotation_columns], atol=1e-9)


def test_model_input_uses_window_angles_only_when_the_config_asks(walk):
    window = walk[:48]
    stats = identity_stats()
    official, _ = joints_to_input(window, stats, 96)
    invariant, valid = joints_to_input(window, stats, 96, window_invariant=True)
    assert valid == 48 and not np.allclose(official, invariant)
    np.testing.assert_array_equal(invariant[valid:], 0.0)


def test_a_pelvis_at_or_below_the_hips_is_repaired_and_other_rigs_are_untouched(tmp_path):
    """A rig rooted at the thighs (the Daz-style CMU rig) would flip the pelvis frame by about 180 degrees."""
    from mofind.features.window import pelvis_over_hips, repair_pelvis

    joints = load_motion(write_action_bvh(tmp_path / "walk.bvh", "bandai", "walk", seconds=2.0,
                                          seed=0)).joints.astype(np.float32)
    assert pelvis_over_hips(joints) > 0 and repair_pelvis(joints) is joints
    broken = joints.copy()
    hips = 0.5 * (joints[:, 1] + joints[:, 2])
    broken[:, 0] = hips - np.array([0.0, 0.03, 0.0], np.float32)  # 3 cm below the hip midpoint
    assert pelvis_over_hips(broken) < 0
    assert np.median(np.abs(joint_angles41(broken)[:, 0])) > 120  # the raw angles flip
    repaired = window_angles41(broken)
    assert np.median(np.abs(repaired[:, 0])) < 20 and np.median(np.abs(repaired[:, 28])) < 30
