"""joint_angles41: official reference vectors (when ../shared is there) and hand-posed skeletons."""

from __future__ import annotations

import numpy as np
import pytest

from mofind.features.angles import AngleInputError, joint_angles41
from mofind.features.parts import COLUMNS41, USED_INDICES

REFERENCE_IDS = ["012314", "012314_first60", "012314_fwdrev", "M012314"]
TOLERANCE_DEG = 1e-4  # what the implementation guarantees against the official output
COL = {name: i for i, name in enumerate(COLUMNS41)}
ANGLE_COLS = [i for i, n in enumerate(COLUMNS41) if not n.endswith(("_tx", "_ty", "_tz"))]

# SMPL-22 indices used to pose the test skeleton.
PELVIS, L_HIP, R_HIP, SPINE1, L_KNEE, R_KNEE, SPINE2, L_ANKLE, R_ANKLE, SPINE3 = range(10)
L_FOOT, R_FOOT, NECK, L_COLLAR, R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER = range(10, 18)
L_ELBOW, R_ELBOW, L_WRIST, R_WRIST = range(18, 22)
UPPER_BODY = [SPINE1, SPINE2, SPINE3, NECK, L_COLLAR, R_COLLAR, HEAD, L_SHOULDER, R_SHOULDER,
              L_ELBOW, R_ELBOW, L_WRIST, R_WRIST]


def standing_pose() -> np.ndarray:
    """One frame (22, 3), HumanML3D convention: faces +Z, left is +X, Y up; arms hang straight
    down, legs straight, feet flat (foot joint straight ahead of the ankle)."""
    j = np.zeros((22, 3))
    j[PELVIS] = (0, 0.95, 0)
    for side, x in ((0, 0.09), (1, -0.09)):  # 0 = left (+x), 1 = right
        j[L_HIP + side] = (x, 0.90, 0)
        j[L_KNEE + side] = (x, 0.50, 0)
        j[L_ANKLE + side] = (x, 0.10, 0)
        j[L_FOOT + side] = (x, 0.10, 0.12)
        j[L_COLLAR + side] = (x / 2, 1.45, 0)
        j[L_SHOULDER + side] = (2 * x, 1.45, 0)
        j[L_ELBOW + side] = (2 * x, 1.17, 0)
        j[L_WRIST + side] = (2 * x, 0.92, 0)
    j[SPINE1], j[SPINE2], j[SPINE3] = (0, 1.05, 0), (0, 1.2, 0), (0, 1.3, 0)
    j[NECK], j[HEAD] = (0, 1.5, 0), (0, 1.62, 0)
    return j


def angles_of(*poses: np.ndarray) -> np.ndarray:
    return joint_angles41(np.stack(poses).astype(np.float32))


def rotation_x(deg: float) -> np.ndarray:
    """Rotation about +X (the body's left axis): positive tips +Y towards +Z, i.e. leans forward."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rotation_y(deg: float) -> np.ndarray:
    """Rotation about +Y (up): positive turns +Z (facing) towards +X (the body's left)."""
    c, s = np.cos(np.radians(deg)), np.sin(np.radians(deg))
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


# ---------------------------------------------------------------- official reference vectors

@pytest.mark.needs_shared
@pytest.mark.parametrize("clip", REFERENCE_IDS)
def test_matches_official_angles_on_every_column(reference_dir, clip):
    joints = np.load(reference_dir / "inputs" / f"joints_{clip}.npy")
    expected = np.load(reference_dir / "angles" / f"angles41_{clip}.npy")
    got = joint_angles41(joints)
    assert got.shape == expected.shape and got.dtype == np.float64
    err = np.abs(got - expected).max(axis=0)
    worst = {COLUMNS41[i]: float(err[i]) for i in np.flatnonzero(err > TOLERANCE_DEG)}
    assert not worst, f"columns beyond {TOLERANCE_DEG} deg: {worst}"


@pytest.mark.needs_shared
@pytest.mark.parametrize("clip", REFERENCE_IDS)
def test_used_columns_match_official_selection(reference_dir, clip):
    joints = np.load(reference_dir / "inputs" / f"joints_{clip}.npy")
    expected = np.load(reference_dir / "angles" / f"used29_{clip}.npy")
    got = joint_angles41(joints)[:, list(USED_INDICES)]
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE_DEG)


# ---------------------------------------------------------------- behaviour on posed skeletons

def test_neutral_standing_pose_has_zero_angles_and_official_positions():
    pose = standing_pose()
    out = angles_of(pose)[0]
    np.testing.assert_allclose(out[ANGLE_COLS], 0, atol=1e-3)
    # position columns: x = HumanML3D z, y = y, z = -x
    np.testing.assert_allclose(out[[COL["pelvis_tx"], COL["pelvis_ty"], COL["pelvis_tz"]]], (0, 0.95, 0),
                               atol=1e-6)
    np.testing.assert_allclose(out[[COL["left_hip_tx"], COL["left_hip_ty"], COL["left_hip_tz"]]],
                               (0, 0.90, -0.09), atol=1e-6)


def test_elbow_flexed_ninety_degrees():
    pose = standing_pose()
    pose[L_WRIST] = pose[L_ELBOW] + (0, 0, 0.25)  # left forearm points forward
    out = angles_of(pose)[0]
    assert out[COL["elbow_flex_l"]] == pytest.approx(90, abs=1e-3)
    assert out[COL["elbow_flex_r"]] == pytest.approx(0, abs=1e-3)
    assert out[COL["arm_flex_l"]] == pytest.approx(0, abs=1e-3)  # the upper arm did not move


def test_knee_flexion_and_hip_rotation_follow_the_shank():
    pose = standing_pose()
    pose[R_ANKLE] = pose[R_KNEE] + (0, 0, -0.4)  # right shank straight back
    out = angles_of(pose)[0]
    assert out[COL["knee_angle_r"]] == pytest.approx(90, abs=1e-3)
    assert out[COL["knee_angle_l"]] == pytest.approx(0, abs=1e-3)
    assert out[COL["hip_flexion_r"]] == pytest.approx(0, abs=1e-3)
    assert out[COL["hip_rotation_r"]] == pytest.approx(0, abs=1e-3)

    # the same bent knee with the shank swung 60 degrees outwards twists the thigh by 60 degrees,
    # with the same value on both sides for mirror-image poses
    out_r, out_l = standing_pose(), standing_pose()
    s, c = np.sin(np.radians(60)), np.cos(np.radians(60))
    out_r[R_ANKLE] = out_r[R_KNEE] + 0.4 * np.array([-s, 0, -c])  # right: outwards is -x
    out_l[L_ANKLE] = out_l[L_KNEE] + 0.4 * np.array([s, 0, -c])
    both = angles_of(out_r, out_l)
    assert abs(both[0, COL["hip_rotation_r"]]) == pytest.approx(60, abs=1e-3)
    assert both[0, COL["hip_rotation_r"]] == pytest.approx(both[1, COL["hip_rotation_l"]], abs=1e-3)
    assert both[0, COL["knee_angle_r"]] == pytest.approx(90, abs=1e-3)


def test_raising_the_left_arm_changes_left_shoulder_columns_only():
    neutral = standing_pose()
    raised = standing_pose()
    raised[L_ELBOW] = raised[L_SHOULDER] + (0, 0, 0.28)  # arm straight forward
    raised[L_WRIST] = raised[L_SHOULDER] + (0, 0, 0.53)
    out = angles_of(neutral, raised)
    left = [COL["arm_flex_l"], COL["arm_add_l"], COL["arm_rot_l"]]
    right = [COL["arm_flex_r"], COL["arm_add_r"], COL["arm_rot_r"], COL["elbow_flex_r"]]
    assert out[1, COL["arm_flex_l"]] == pytest.approx(90, abs=1e-3)
    assert np.abs(out[1, left] - out[0, left]).max() > 80
    np.testing.assert_allclose(out[1, right], out[0, right], atol=1e-6)
    others = [i for i in ANGLE_COLS if i not in left]
    np.testing.assert_allclose(out[1, others], out[0, others], atol=1e-6)


def test_sideways_raise_is_abduction_with_the_same_sign_on_both_sides():
    lift = 80.0
    s, c = np.sin(np.radians(lift)), np.cos(np.radians(lift))
    left_up, right_up = standing_pose(), standing_pose()
    left_up[L_ELBOW] = left_up[L_SHOULDER] + 0.28 * np.array([s, -c, 0])  # out to the left (+x)
    left_up[L_WRIST] = left_up[L_SHOULDER] + 0.53 * np.array([s, -c, 0])
    right_up[R_ELBOW] = right_up[R_SHOULDER] + 0.28 * np.array([-s, -c, 0])
    right_up[R_WRIST] = right_up[R_SHOULDER] + 0.53 * np.array([-s, -c, 0])
    out = angles_of(left_up, right_up)
    assert out[0, COL["arm_add_l"]] == pytest.approx(-lift, abs=1e-3)
    assert out[1, COL["arm_add_r"]] == pytest.approx(-lift, abs=1e-3)
    assert out[0, COL["arm_flex_l"]] == pytest.approx(0, abs=1e-3)


def test_forward_trunk_lean_is_lumbar_flexion_and_arms_follow_the_thorax():
    pose = standing_pose()
    lean = rotation_x(30)
    pose[UPPER_BODY] = (pose[UPPER_BODY] - pose[PELVIS]) @ lean.T + pose[PELVIS]
    out = angles_of(pose)[0]
    assert out[COL["lumbar_extension"]] == pytest.approx(-30, abs=1e-3)  # flexion = negative extension
    assert out[COL["lumbar_bending"]] == pytest.approx(0, abs=1e-3)
    # arms hang along the leaning trunk: zero relative to the thorax
    for name in ("arm_flex_l", "arm_flex_r", "arm_add_l", "arm_add_r", "neck_flexion"):
        assert out[COL[name]] == pytest.approx(0, abs=1e-3), name
    assert out[COL["hip_flexion_l"]] == pytest.approx(0, abs=1e-3)


def test_turning_the_whole_body_is_pelvis_rotation_only():
    base = standing_pose()
    turned_left = base @ rotation_y(40).T
    turned_right = base @ rotation_y(-40).T
    out = angles_of(base, turned_left, turned_right)
    assert out[1, COL["pelvis_rotation"]] == pytest.approx(40, abs=1e-3)
    assert out[2, COL["pelvis_rotation"]] == pytest.approx(-40, abs=1e-3)
    joint_cols = [i for i in ANGLE_COLS if not COLUMNS41[i].startswith("pelvis_")]
    np.testing.assert_allclose(out[1:, joint_cols], np.broadcast_to(out[0, joint_cols], (2, len(joint_cols))),
                               atol=1e-3)


def test_float64_input_is_processed_as_float32_like_the_official_pipeline():
    rng = np.random.default_rng(3)
    poses = np.stack([standing_pose()] * 5) + rng.normal(scale=0.05, size=(5, 22, 3))
    np.testing.assert_array_equal(joint_angles41(poses), joint_angles41(poses.astype(np.float32)))


# ---------------------------------------------------------------- degenerate and invalid input

def test_degenerate_geometry_stays_finite():
    collapsed = np.zeros((22, 3))                  # every joint at the origin
    zero_forearm = standing_pose()
    zero_forearm[L_WRIST] = zero_forearm[L_ELBOW]  # zero-length segment
    arm_sideways = standing_pose()
    arm_sideways[R_ELBOW] = arm_sideways[R_SHOULDER] + (-0.28, 0, 0)  # exactly along the across axis
    with np.errstate(all="raise"):
        out = angles_of(collapsed, zero_forearm, arm_sideways)
    assert np.isfinite(out).all()
    assert out[2, COL["arm_add_r"]] == pytest.approx(-90, abs=1e-3)  # the geometric limit


def test_empty_clip_gives_empty_table():
    assert joint_angles41(np.zeros((0, 22, 3), np.float32)).shape == (0, 41)


def test_nan_input_raises_a_clear_error_naming_the_frame():
    poses = np.stack([standing_pose()] * 4).astype(np.float32)
    poses[2, L_WRIST, 1] = np.nan
    with pytest.raises(AngleInputError, match="frame 2"):
        joint_angles41(poses)
    assert issubclass(AngleInputError, ValueError)


@pytest.mark.parametrize("shape", [(10, 22), (10, 21, 3), (10, 22, 2)])
def test_wrong_shape_is_rejected(shape):
    with pytest.raises(AngleInputError, match="shape"):
        joint_angles41(np.zeros(shape, np.float32))
