"""The synthetic-take generator other test suites rely on: stable, deterministic, complete."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.synthetic import ACTIONS, KIND_INFO, KINDS, make_action, make_skeleton, write_action_bvh, write_action_library
from mofind.io import read_bvh


def test_skeleton_kinds_have_the_documented_shape():
    bandai, cmu, zup = (make_skeleton(k) for k in KINDS)
    assert bandai.num_joints == 22 and bandai.names[:3] == ["joint_Root", "Hips", "Spine"]
    assert all(len(c) == 6 for c in bandai.channels)
    assert cmu.num_joints == 31 and {"LHipJoint", "LeftToeBase", "LeftHandIndex1", "RThumb"} <= set(cmu.names)
    assert len(cmu.channels[0]) == 6 and all(len(c) == 3 for c in cmu.channels[1:])
    assert zup.num_joints > 50 and "CC_Base_L_Upperarm" in zup.names and "CC_Base_R_Pinky3" in zup.names
    assert KIND_INFO["zup"].up_axis == "Z" and KIND_INFO["cmu"].default_fps == 120.0


def test_library_is_deterministic_and_seeded(tmp_path):
    paths = write_action_library(tmp_path / "a", kinds=("bandai", "cmu"), seconds=0.5)
    again = write_action_library(tmp_path / "b", kinds=("bandai", "cmu"), seconds=0.5)
    assert len(paths) == 2 * len(ACTIONS) and paths[0].name == "bandai_idle.bvh"
    assert all(p.read_bytes() == q.read_bytes() for p, q in zip(paths, again))
    one = read_bvh(write_action_bvh(tmp_path / "s1.bvh", "bandai", "walk", seconds=0.5, seed=1)).values
    two = read_bvh(write_action_bvh(tmp_path / "s2.bvh", "bandai", "walk", seconds=0.5, seed=2)).values
    assert one.shape == two.shape and not np.allclose(one, two)


def test_frame_count_and_rate_follow_the_arguments(tmp_path):
    bvh = read_bvh(write_action_bvh(tmp_path / "x.bvh", "zup", "turn_left", seconds=1.5, fps=24))
    assert bvh.fps == 24.0 and bvh.num_frames == 36
    clip = make_action("bandai", "idle", seconds=1.0)
    assert clip.local_rotations.shape == (30, 22, 4) and clip.joint_translations.shape == (30, 22, 3)
    np.testing.assert_allclose(np.linalg.norm(clip.local_rotations, axis=-1), 1.0, atol=1e-12)


def test_unknown_kind_or_action_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="unknown skeleton kind"):
        make_skeleton("robot")
    with pytest.raises(ValueError, match="unknown action"):
        write_action_bvh(tmp_path / "x.bvh", "bandai", "dance")
