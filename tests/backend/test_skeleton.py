"""SMPL-22 conversion on generated takes: presets, units, up axis, sides, facing, resampling."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures.synthetic import KINDS, make_action, write_action_bvh
from mofind.io import write_bvh
from mofind.io.motion import SourceSkeleton
from mofind.skeleton import SMPL22_INDEX as I
from mofind.skeleton import SMPL22_NAMES, SMPL22_PARENTS, canonicalize, load_motion, map_skeleton, resample

EXPECTED = {"bandai": ("bandai", "cm", "Y"), "cmu": ("cmu_bvh", "cmu", "Y"), "zup": ("iclone_cc", "cm", "Z")}


def test_smpl22_tables_match_humanml3d():
    assert len(SMPL22_NAMES) == 22 and SMPL22_NAMES[12] == "neck" and SMPL22_NAMES[21] == "right_wrist"
    assert SMPL22_PARENTS.tolist() == [-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19]


@pytest.mark.parametrize("kind", KINDS)
def test_units_up_axis_and_height_are_detected(tmp_path, kind):
    motion = load_motion(write_action_bvh(tmp_path / "a.bvh", kind, "idle", seconds=1.0))
    preset, unit, up = EXPECTED[kind]
    assert motion.mapping["preset"] == preset
    assert motion.mapping["unit"] == unit and motion.mapping["up_axis"] == up
    assert 1.6 < motion.mapping["height_m"] < 1.8  # the synthetic body is 1.72 m
    assert motion.fps == 20.0 and motion.joints.shape == (20, 22, 3) and motion.joints.dtype == np.float32
    feet = motion.joints[:, [I["left_foot"], I["right_foot"], I["left_ankle"], I["right_ankle"]], 1]
    assert feet.min() == pytest.approx(0.0, abs=1e-6) and feet.max() < 0.15
    assert motion.joints[:, I["head"], 1].min() > 1.4


@pytest.mark.parametrize("kind", KINDS)
def test_left_is_plus_x_and_the_body_faces_plus_z(tmp_path, kind):
    j = load_motion(write_action_bvh(tmp_path / "w.bvh", kind, "walk", seconds=2.0)).joints
    assert j[0, I["left_hip"], 0] > j[0, I["right_hip"], 0] + 0.1
    assert j[0, I["left_shoulder"], 0] > j[0, I["right_shoulder"], 0] + 0.2
    np.testing.assert_allclose(j[0, 0, [0, 2]], 0.0, atol=1e-6)
    assert j[-1, 0, 2] > 1.5 and abs(j[-1, 0, 0]) < 0.2  # walked forward along +Z
    toes = j[:, [I["left_foot"], I["right_foot"]], 2] - j[:, [I["left_ankle"], I["right_ankle"]], 2]
    assert toes.mean() > 0.05  # toes point forward


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("action, up, down", [("raise_left", "left_wrist", "right_wrist"),
                                              ("raise_right", "right_wrist", "left_wrist"),
                                              ("wave_left", "left_wrist", "right_wrist")])
def test_the_named_arm_is_the_one_that_rises(tmp_path, kind, action, up, down):
    j = load_motion(write_action_bvh(tmp_path / "r.bvh", kind, action, seconds=2.0)).joints
    head = j[-1, I["head"], 1]
    assert j[-1, I[up], 1] > head and j[-1, I[down], 1] < j[-1, I["pelvis"], 1]
    side = 1.0 if up.startswith("left") else -1.0
    assert side * j[-1, I[up], 0] > 0.1  # the raised arm stays on its own side


@pytest.mark.parametrize("action", ["turn_left", "turn_right"])
def test_turns_go_to_the_body_left_or_right(tmp_path, action):
    j = load_motion(write_action_bvh(tmp_path / "t.bvh", "bandai", action, seconds=3.0)).joints
    sign = 1.0 if action == "turn_left" else -1.0
    assert sign * j[-1, 0, 0] > 1.0  # facing +Z with left = +X: a left turn ends at +X
    across = j[-1, I["right_hip"]] - j[-1, I["left_hip"]]
    heading = np.cross([0.0, 1.0, 0.0], across)
    assert sign * heading[0] > 0.8 * np.linalg.norm(heading)


def test_all_kinds_give_the_same_smpl_joints(tmp_path):
    """The three rigs share one body: after conversion their SMPL-22 tracks must agree."""
    tracks = [load_motion(write_action_bvh(tmp_path / f"{k}.bvh", k, "wave_right", seconds=1.5)).joints
              for k in KINDS]
    for other in tracks[1:]:
        assert other.shape == tracks[0].shape
        np.testing.assert_allclose(other, tracks[0], atol=0.02)


def test_source_animation_is_kept_for_retargeting(tmp_path):
    clip = make_action("bandai", "walk", seconds=1.0)
    motion = load_motion(write_action_bvh(tmp_path / "w.bvh", "bandai", "walk", seconds=1.0))
    assert motion.source_fps == 30.0 and motion.frame_range == (0, 30)
    assert motion.local_rotations.shape == (30, 22, 4)
    dots = np.abs(np.sum(motion.local_rotations * clip.local_rotations, axis=-1))
    assert dots.min() > 1 - 1e-5  # same rotations up to quaternion sign
    np.testing.assert_allclose(motion.root_translation, clip.root_translation, atol=1e-4)
    np.testing.assert_allclose(motion.joint_translations, clip.joint_translations, atol=1e-4)
    assert motion.mapping["smpl_to_source"]["left_wrist"] == "Hand_L"
    assert motion.mapping["unit_scale"] == 0.01


def test_resample_is_linear_and_never_runs_past_the_end():
    ramp = np.arange(121, dtype=float)[:, None] * np.array([1.0, 2.0])  # 1 s at 120 fps
    out = resample(ramp, 120.0, 20.0)
    assert out.shape == (21, 2)
    np.testing.assert_allclose(out[:, 0], np.arange(21) * 6.0)
    odd = resample(np.arange(10, dtype=float), 30.0, 20.0)  # 0.3 s -> 0, 0.05, ... 0.3
    np.testing.assert_allclose(odd, np.arange(7) * 1.5)
    assert resample(ramp, 20.0, 20.0).shape == ramp.shape


def test_fps_argument_changes_the_output_rate(tmp_path):
    path = write_action_bvh(tmp_path / "w.bvh", "cmu", "walk", seconds=1.0)
    assert load_motion(path, fps=30.0).joints.shape[0] == 30  # 120 frames span 119/120 s
    assert load_motion(path, fps=20.0).joints.shape[0] == 20


def test_canonicalize_rotates_any_heading_to_plus_z(tmp_path):
    j = load_motion(write_action_bvh(tmp_path / "w.bvh", "bandai", "idle", seconds=0.5)).joints.astype(float)
    yaw = np.radians(130.0)
    rot = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
    moved = j @ rot.T + np.array([3.0, 0.5, -2.0])
    np.testing.assert_allclose(canonicalize(moved), j, atol=1e-5)


RENAMES = {
    "mixamo": {"Hips": "mixamorig:Hips", "LowerBack": "mixamorig:Spine", "Spine": "mixamorig:Spine1",
               "Spine1": "mixamorig:Spine2", "Neck1": "mixamorig:Neck", "Neck": "mixamorig:NeckRoot"},
    "rigify": {"Hips": "DEF-spine", "LowerBack": "DEF-spine.001", "Spine": "DEF-spine.002", "Spine1": "DEF-spine.003",
               "Neck1": "DEF-spine.004", "Head": "DEF-spine.006", "LeftUpLeg": "DEF-thigh.L", "LeftLeg": "DEF-shin.L",
               "LeftFoot": "DEF-foot.L", "LeftToeBase": "DEF-toe.L", "LeftShoulder": "DEF-shoulder.L",
               "LeftArm": "DEF-upper_arm.L", "LeftForeArm": "DEF-forearm.L", "LeftHand": "DEF-hand.L"},
    "unreal5": {"Hips": "pelvis", "LowerBack": "spine_01", "Spine": "spine_03", "Spine1": "spine_05",
                "Neck1": "neck_01", "Head": "head", "LeftUpLeg": "thigh_l", "LeftLeg": "calf_l", "LeftFoot": "foot_l",
                "LeftToeBase": "ball_l", "LeftShoulder": "clavicle_l", "LeftArm": "upperarm_l",
                "LeftForeArm": "lowerarm_l", "LeftHand": "hand_l"},
    None: {"Hips": "Bip01 Pelvis", "LeftUpLeg": "Bip01 L Thigh", "LeftLeg": "Bip01 L Calf",
           "LeftFoot": "Bip01 L Foot", "LeftToeBase": "Bip01 L Toe0", "LeftShoulder": "Bip01 L Clavicle",
           "LeftArm": "Bip01 L UpperArm", "LeftForeArm": "Bip01 L Forearm", "LeftHand": "Bip01 L Hand",
           "Spine": "Bip01 Spine1", "Spine1": "Bip01 Spine2", "Neck1": "Bip01 Neck", "Head": "Bip01 Head",
           "LowerBack": "Bip01 Spine", "Neck": "Bip01 Neck0Helper", "LHipJoint": "Bip01 L HipHelper",
           "LeftFingerBase": "Bip01 L Finger0", "LeftHandIndex1": "Bip01 L Finger01", "LThumb": "Bip01 L Finger1"},
}


def _right_side(name: str) -> str:
    for left, right in ((".L", ".R"), ("_l", "_r"), (" L ", " R "), ("Left", "Right"), ("LHip", "RHip"),
                        ("LThumb", "RThumb")):
        if left in name:
            return name.replace(left, right)
    return name


def _renamed(clip, renames) -> SourceSkeleton:
    full = dict(renames)
    for old, new in renames.items():
        if _right_side(old) != old:
            full[_right_side(old)] = _right_side(new)
    skel = clip.skeleton
    skel.names = [full.get(n, n) for n in skel.names]
    assert len(set(skel.names)) == len(skel.names)
    return skel


@pytest.mark.parametrize("preset", ["mixamo", "rigify", "unreal5", None])
def test_other_rigs_map_by_preset_or_heuristic(tmp_path, preset):
    clip = make_action("cmu", "raise_left", seconds=1.0)
    skel = _renamed(clip, RENAMES[preset])
    path = write_bvh(tmp_path / "rig.bvh", skel, clip.fps, clip.local_rotations, clip.root_translation)
    motion = load_motion(path)
    assert motion.mapping["preset"] == preset
    s2s = motion.mapping["smpl_to_source"]
    assert "L" in s2s["left_wrist"] or "l" in s2s["left_wrist"][-2:]
    assert s2s["left_wrist"] != s2s["right_wrist"]
    reference = load_motion(write_action_bvh(tmp_path / "ref.bvh", "cmu", "raise_left", seconds=1.0)).joints
    limbs = [I[n] for n in ("left_wrist", "right_wrist", "left_ankle", "right_knee", "head", "pelvis")]
    np.testing.assert_allclose(motion.joints[:, limbs], reference[:, limbs], atol=0.03)


def test_heuristic_reports_unmapped_and_ignored_joints():
    clip = make_action("cmu", "idle", seconds=0.1)
    skel = _renamed(clip, RENAMES[None])
    mapping = map_skeleton(skel)
    assert mapping.preset is None
    assert mapping.smpl_to_source["left_hip"] == "Bip01 L Thigh"
    assert mapping.smpl_to_source["left_collar"] == "Bip01 L Clavicle"
    assert mapping.smpl_to_source["neck"] == "Bip01 Neck"
    assert "Bip01 L Finger01" in mapping.ignored
    assert set(mapping.unmapped) <= {"spine1", "spine2", "spine3"}
