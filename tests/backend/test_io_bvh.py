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


@pytest.mark.parametrize("order", ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"])
@pytest.mark.parametrize("position_channels", [3, 0])
def test_any_rotation_order_reproduces_the_same_pose(tmp_path, order, position_channels):
    clip = make_action("cmu", "wave_right", seconds=0.25)
    skel = clip.skeleton
    rot = [f"{axis}rotation" for axis in order]
    pos = ["Xposition", "Yposition", "Zposition"][:position_channels]
    skel.channels = [(["Zposition", "Xposition", "Yposition"] + rot if p < 0 else pos + rot) for p in skel.parents]
    path = write_bvh(tmp_path / f"{order}.bvh", skel, clip.fps, clip.local_rotations, clip.root_translation)
    bvh = read_bvh(path)
    assert bvh.skeleton.rotation_order(3) == order
    np.testing.assert_allclose(forward_kinematics(bvh), _fk_from_clip(clip), atol=1e-4)


def test_euler_channels_follow_the_intrinsic_bvh_convention(tmp_path):
    """'Zrotation Xrotation Yrotation' = Rz @ Rx @ Ry applied to the child offset (hand-computed case)."""
    text = """HIERARCHY
ROOT root
{
  OFFSET 0 0 0
  CHANNELS 3 Zrotation Xrotation Yrotation
  JOINT tip
  {
    OFFSET 0 1 0
    CHANNELS 3 Zrotation Xrotation Yrotation
    End Site
    {
      OFFSET 0 0 1
    }
  }
}
MOTION
Frames: 1
Frame Time: 0.5
90 90 0 0 0 0
"""
    path = tmp_path / "tiny.bvh"
    path.write_text(text)
    bvh = read_bvh(path)
    assert bvh.fps == 2.0 and bvh.skeleton.end_sites[1].tolist() == [0, 0, 1]
    # Rx(90) takes +Y to +Z; then Rz(90) leaves +Z alone: the tip sits at (0, 0, 1)
    np.testing.assert_allclose(forward_kinematics(bvh)[0, 1], [0.0, 0.0, 1.0], atol=1e-12)
    q = local_quaternions(bvh)[0, 0]
    np.testing.assert_allclose(q, [0.5, 0.5, 0.5, 0.5], atol=1e-12)  # Rz(90)·Rx(90) as w,x,y,z


def test_position_channels_replace_the_offset(tmp_path):
    skel = make_skeleton("bandai")
    clip = make_action("bandai", "walk", seconds=0.5)
    bvh = read_bvh(write_action_bvh(tmp_path / "w.bvh", "bandai", "walk", seconds=0.5))
    hips = skel.index("Hips")
    np.testing.assert_allclose(local_translations(bvh)[:, hips], clip.joint_translations[:, hips], atol=1e-5)
    assert np.ptp(local_translations(bvh)[:, hips, 2]) > 30.0  # the Hips carry the walk (cm)


@pytest.mark.parametrize("order", ["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX", "ZXZ", "Y", "ZX"])
def test_numpy_euler_conversion_matches_scipy(order):
    from scipy.spatial.transform import Rotation

    from mofind.io.rotations import euler_to_matrices, euler_to_quats

    angles = np.random.default_rng(3).uniform(-180.0, 180.0, (500, len(order)))
    expected = Rotation.from_euler(order, angles, degrees=True)
    np.testing.assert_allclose(euler_to_matrices(angles, order), expected.as_matrix(), atol=1e-12)
    quats = euler_to_quats(angles, order)
    assert (quats[:, 0] >= 0).all()
    same = np.abs(np.sum(quats * expected.as_quat(scalar_first=True), axis=1))
    np.testing.assert_allclose(same, 1.0, atol=1e-12)
