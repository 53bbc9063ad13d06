"""BVH reader/writer/FK on generated takes (always run) and on the real samples (when ../shared exists)."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.synthetic import ACTIONS, KIND_INFO, KINDS, make_action, make_skeleton, write_action_bvh
from mofind.io import BVHParseError, forward_kinematics, local_quaternions, read_bvh, write_bvh
from mofind.io.bvh import forward_kinematics_arrays, local_translations, root_translation
from mofind.io.rotations import quat_wxyz_to_rotation


def _fk_from_clip(clip):
    mats = quat_wxyz_to_rotation(clip.local_rotations.reshape(-1, 4)).as_matrix()
    mats = mats.reshape(*clip.local_rotations.shape[:2], 3, 3)
    return forward_kinematics_arrays(clip.skeleton.parents, mats, clip.joint_translations)


@pytest.mark.parametrize("kind", KINDS)
def test_written_take_reads_back_with_same_skeleton_and_positions(tmp_path, kind):
    clip = make_action(kind, "wave_left", seconds=1.0)
    path = write_action_bvh(tmp_path / f"{kind}.bvh", kind, "wave_left", seconds=1.0)
    bvh = read_bvh(path)
    skel = make_skeleton(kind)
    assert bvh.skeleton.names == skel.names
    np.testing.assert_array_equal(bvh.skeleton.parents, skel.parents)
    np.testing.assert_allclose(bvh.skeleton.offsets, skel.offsets, atol=1e-5)
    assert bvh.fps == KIND_INFO[kind].default_fps
    assert bvh.num_frames == clip.local_rotations.shape[0]
    np.testing.assert_allclose(forward_kinematics(bvh), _fk_from_clip(clip), atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
def test_round_trip_through_writer_is_exact_to_1e4(tmp_path, kind):
    first = read_bvh(write_action_bvh(tmp_path / "a.bvh", kind, "walk", seconds=1.0))
    write_bvh(tmp_path / "b.bvh", first.skeleton, first.fps, local_quaternions(first), root_translation(first),
              joint_translations=local_translations(first))
    second = read_bvh(tmp_path / "b.bvh")
    assert second.skeleton.channels == first.skeleton.channels
    np.testing.assert_allclose(forward_kinematics(second), forward_kinematics(first), atol=1e-4)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("action", ACTIONS)
def test_every_synthetic_action_parses(tmp_path, kind, action):
    bvh = read_bvh(write_action_bvh(tmp_path / "x.bvh", kind, action, seconds=0.5))
    pos = forward_kinematics(bvh) * KIND_INFO[kind].unit_scale
    assert np.isfinite(pos).all()
    up = "XYZ".index(KIND_INFO[kind].up_axis)
    height = (pos[:, :, up].max(axis=1) - pos[:, :, up].min(axis=1)).max()
    assert 1.4 < height < 2.1
