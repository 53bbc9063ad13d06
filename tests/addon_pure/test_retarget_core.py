"""The numpy retarget core on synthetic chains: poses are re-evaluated here with Blender's formula.

`evaluate_pose` below rebuilds every bone's armature-space matrix from the returned local
quaternions exactly as Blender does (world = parent_world @ rest_parent^-1 @ rest @ basis), with
scipy for the quaternions, so the core is checked against an independent evaluator.
"""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from addon_pure.retarget_fixtures import (
    SOURCE_SMPL, Y_TO_Z_UP, BoneSpec, mixamo_spec, rest_matrices, rigify_spec, source_rest_blender,
    unreal_apose_spec, walking_take,
)

RIGS = {"mixamo": mixamo_spec, "rigify": rigify_spec, "unreal_apose": unreal_apose_spec}


@pytest.fixture(scope="module")
def core(addon_pkg):
    return importlib.import_module("mofind_addon.retarget.core")


@pytest.fixture(scope="module")
def mapping(addon_pkg):
    return importlib.import_module("mofind_addon.retarget.mapping")


@pytest.fixture(scope="module")
def take():
    return walking_take(seconds=2.0, fps=30.0)


def evaluate_pose(parents, rest, keys):
    """(T, B, 4, 4) armature-space bone matrices from TargetKeys, the way Blender evaluates a pose."""
    frames, count = keys.rotations.shape[:2]
    basis = np.tile(np.eye(4), (frames, count, 1, 1))
    basis[..., :3, :3] = Rotation.from_quat(keys.rotations.reshape(-1, 4), scalar_first=True).as_matrix().reshape(
        frames, count, 3, 3)
    basis[:, list(keys.bone_names).index(keys.root_bone), :3, 3] = keys.root_location
    world = np.empty((frames, count, 4, 4))
    for b in range(count):  # specs list parents before children
        p = parents[b]
        world[:, b] = rest[b] @ basis[:, b] if p < 0 else world[:, p] @ np.linalg.inv(rest[p]) @ rest[b] @ basis[:, b]
    return world


def rig_from_specs(core, mapping, specs):
    names, parents, rest = rest_matrices(specs)
    return core.TargetRig(names, parents, rest, mapping.detect_bone_map(names).smpl_to_bone), rest


def identity_specs(take, scale=1.0, roll_seed=5):
    """A rig that *is* the source skeleton (Z-up metres, any rolls): bones sit on the source joints."""
    names = take.names
    parents = np.asarray(take.payload["skeleton"]["parents"])
    offsets = np.asarray(take.payload["skeleton"]["offsets"], dtype=float)
    rest = scale * source_rest_blender()
    rng = np.random.default_rng(roll_seed)
    specs = []
    for j, name in enumerate(names):
        children = [c for c in range(len(names)) if parents[c] == j and np.linalg.norm(offsets[c]) > 0]
        direction = rest[children[0]] - rest[j] if children else np.array([0.0, 0.0, 0.05])
        specs.append(BoneSpec(name, names[parents[j]] if parents[j] >= 0 else None, rest[j], rest[j] + direction,
                              float(rng.uniform(-np.pi, np.pi))))
    return specs


def angle_deg(a, b):
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))


def direction_pairs(mapping, pairs, src_rest_len, tgt_rest_len):
    """(joint, nearest mapped limb child) pairs with a real length on both sides: what must line up."""
    out = []
    for smpl in pairs:
        child = next((c for c in mapping.LIMB_CHAINS[smpl] if c in pairs), None)
        if child and src_rest_len(smpl, child) > 1e-6 and tgt_rest_len(smpl, child) > 1e-6:
            out.append((smpl, child))
    return out


# --- the transfer itself --------------------------------------------------------------------------


def test_source_fk_matches_an_independent_matrix_fk(core, take):
    rot, pos = core.source_forward_kinematics(core.SourceClip.from_payload(take.payload))
    assert np.abs(pos - take.positions).max() < 1e-3  # centimetres; payload quaternions are float32
    assert np.abs(rot - take.rotations).max() < 1e-5


def test_rig_identical_to_the_source_reproduces_every_joint_and_twist(core, mapping):
    take = walking_take(seconds=1.0, still_helpers=True)
    specs = identity_specs(take)
    names, parents, rest = rest_matrices(specs)
    rig = core.TargetRig(names, parents, rest, dict(SOURCE_SMPL))
    keys = core.retarget(core.SourceClip.from_payload(take.payload), rig)
    world = evaluate_pose(parents, rest, keys)

    assert keys.scale == pytest.approx(1.0)
    expected = take.blender_positions()
    hips = 0.5 * (expected[:, names.index("LeftUpLeg")] + expected[:, names.index("RightUpLeg")])
    expected[..., :2] -= hips[0, :2]  # the take starts over the armature origin
    assert np.abs(world[..., :3, 3] - expected).max() < 2e-5
    # Orientation including the twist about each bone: source world rotation times the bone's rest.
    src_rot = Y_TO_Z_UP @ take.rotations @ Y_TO_Z_UP.T
    for smpl, name in SOURCE_SMPL.items():
        b = names.index(name)
        assert np.abs(world[:, b, :3, :3] - src_rot[:, b] @ rest[b, :3, :3]).max() < 1e-5, smpl


@pytest.mark.parametrize("rig_name", sorted(RIGS))
def test_mapped_bones_point_like_the_source_and_feet_follow(core, mapping, take, rig_name):
    rig, rest = rig_from_specs(core, mapping, RIGS[rig_name]())
    keys = core.retarget(core.SourceClip.from_payload(take.payload), rig)
    world = evaluate_pose(rig.parents, rest, keys)
    heads = world[..., :3, 3]
    src = take.blender_positions()
    src_rest = source_rest_blender()
    names = list(rig.names)
    bone = {smpl: names.index(b) for smpl, b in rig.smpl_to_bone.items()}
    joint = {smpl: take.names.index(j) for smpl, j in SOURCE_SMPL.items()}
    pairs = [s for s in bone if s in joint]
    checks = direction_pairs(
        mapping, pairs,
        lambda a, b: np.linalg.norm(src_rest[joint[b]] - src_rest[joint[a]]),
        lambda a, b: np.linalg.norm(rest[bone[b], :3, 3] - rest[bone[a], :3, 3]))
    assert len(checks) >= 16  # 22 joints less 5 limb ends and the pelvis (CMU LowerBack sits on Hips)
    for smpl, child in checks:
        got = heads[:, bone[child]] - heads[:, bone[smpl]]
        want = src[:, joint[child]] - src[:, joint[smpl]]
        assert angle_deg(got, want).max() < 0.01, (smpl, child)

    # Leg-length ratio: target thigh + shin over source thigh + shin, measured on the rest poses.
    leg = lambda p, a, b, c: np.linalg.norm(p[b] - p[a]) + np.linalg.norm(p[c] - p[b])  # noqa: E731
    ratio = (leg(rest[:, :3, 3], bone["left_hip"], bone["left_knee"], bone["left_ankle"])
             / leg(src_rest, joint["left_hip"], joint["left_knee"], joint["left_ankle"]))
    assert keys.scale == pytest.approx(ratio)
    for side in ("left", "right"):
        foot_height = heads[:, bone[f"{side}_ankle"], 2]
        assert np.abs(foot_height - ratio * src[:, joint[f"{side}_ankle"], 2]).max() < 0.02


@pytest.mark.parametrize("rig_name", ["mixamo", "rigify"])
def test_hands_follow_the_source_hand_although_they_are_limb_ends(core, mapping, take, rig_name):
    # The source hand points at LeftFingerBase; the rig's hand bone points along its forearm at rest.
    rig, rest = rig_from_specs(core, mapping, RIGS[rig_name]())
    world = evaluate_pose(rig.parents, rest, core.retarget(core.SourceClip.from_payload(take.payload), rig))
    src = take.blender_positions()
    for side, s in (("left", "Left"), ("right", "Right")):
        b = list(rig.names).index(rig.smpl_to_bone[f"{side}_wrist"])
        hand_dir = world[:, b, :3, 1]  # bone +Y
        want = src[:, take.names.index(f"{s}FingerBase")] - src[:, take.names.index(f"{s}Hand")]
        assert angle_deg(hand_dir, want).max() < 0.01


def test_bone_rolls_change_only_the_rest_not_the_motion(core, mapping, take):
    source = core.SourceClip.from_payload(take.payload)
    worlds = []
    for seed in (1, 2):
        rig, rest = rig_from_specs(core, mapping, mixamo_spec(roll_seed=seed))
        worlds.append((evaluate_pose(rig.parents, rest, core.retarget(source, rig)), rest))
    (w1, r1), (w2, r2) = worlds
    assert not np.allclose(r1[:, :3, :3], r2[:, :3, :3])
    # Same physical motion: world @ rest^-1 is roll-free.
    assert np.abs(w1[..., :3, :3] @ np.swapaxes(r1[:, :3, :3], -1, -2)
                  - w2[..., :3, :3] @ np.swapaxes(r2[:, :3, :3], -1, -2)).max() < 1e-6
    assert np.abs(w1[..., :3, 3] - w2[..., :3, 3]).max() < 1e-9


def test_half_size_rig_moves_half_as_far(core, mapping):
    take = walking_take(seconds=1.0, still_helpers=True)
    names, parents, rest = rest_matrices(identity_specs(take, scale=0.5))
    keys = core.retarget(core.SourceClip.from_payload(take.payload),
                         core.TargetRig(names, parents, rest, dict(SOURCE_SMPL)))
    heads = evaluate_pose(parents, rest, keys)[..., :3, 3]
    src = take.blender_positions()
    assert keys.scale == pytest.approx(0.5)
    travelled = heads[-1, names.index("Hips")] - heads[0, names.index("Hips")]
    assert travelled[:2] == pytest.approx(0.5 * (src[-1, 0, :2] - src[0, 0, :2]), abs=1e-6)
    assert heads[..., 2] == pytest.approx(0.5 * src[..., 2], abs=1e-6)


def test_in_place_keeps_the_hips_over_the_rest_position(core, mapping, take):
    rig, rest = rig_from_specs(core, mapping, mixamo_spec())
    keys = core.retarget(core.SourceClip.from_payload(take.payload), rig, core.RetargetOptions(in_place=True))
    heads = evaluate_pose(rig.parents, rest, keys)[..., :3, 3]
    names = list(rig.names)
    hips = 0.5 * (heads[:, names.index("mixamorig:LeftUpLeg")] + heads[:, names.index("mixamorig:RightUpLeg")])
    assert np.abs(hips[:, :2]).max() < 1e-9
    assert np.ptp(hips[:, 2]) > 0.01  # the bob stays


def test_z_up_copy_of_the_take_gives_the_same_keys(core, mapping, take):
    payload = dict(take.payload)
    skeleton = dict(payload["skeleton"])
    skeleton["offsets"] = (np.asarray(skeleton["offsets"]) @ Y_TO_Z_UP.T).tolist()
    payload["skeleton"] = skeleton
    payload["root_translation"] = np.asarray(payload["root_translation"], dtype=float) @ Y_TO_Z_UP.T
    turn = Rotation.from_matrix(Y_TO_Z_UP)
    rotations = Rotation.from_quat(np.asarray(payload["rotations"], dtype=float).reshape(-1, 4), scalar_first=True)
    payload["rotations"] = (turn * rotations * turn.inv()).as_quat(scalar_first=True).reshape(-1, len(take.names), 4)
    payload["up_axis"] = "Z"
    rig, _ = rig_from_specs(core, mapping, mixamo_spec())
    y_up = core.retarget(core.SourceClip.from_payload(take.payload), rig)
    z_up = core.retarget(core.SourceClip.from_payload(payload), rig)
    assert np.abs(np.abs(np.sum(y_up.rotations * z_up.rotations, axis=-1)) - 1).max() < 1e-9
    assert np.abs(y_up.root_location - z_up.root_location).max() < 1e-9


def test_rig_facing_plus_y_gets_the_motion_turned_with_it(core, mapping, take):
    turn = np.diag([-1.0, -1.0, 1.0])  # 180 degrees about Z
    specs = [BoneSpec(s.name, s.parent, turn @ s.head, turn @ s.tail, s.roll) for s in mixamo_spec()]
    source = core.SourceClip.from_payload(take.payload)
    base_rig, base_rest = rig_from_specs(core, mapping, mixamo_spec())
    turned_rig, turned_rest = rig_from_specs(core, mapping, specs)
    base = evaluate_pose(base_rig.parents, base_rest, core.retarget(source, base_rig))[..., :3, 3]
    turned = evaluate_pose(turned_rig.parents, turned_rest, core.retarget(source, turned_rig))[..., :3, 3]
    assert np.abs(turned - base @ turn.T).max() < 1e-6


def test_output_frame_rate_resamples_by_slerp(core, mapping, take):
    rig, _ = rig_from_specs(core, mapping, mixamo_spec())
    source = core.SourceClip.from_payload(take.payload)
    native = core.retarget(source, rig)
    at_24 = core.retarget(source, rig, core.RetargetOptions(fps=24.0))
    assert at_24.fps == 24.0 and native.fps == 30.0
    assert at_24.num_frames == (take.payload["rotations"].shape[0] - 1) * 24 // 30 + 1
    # Every 4th output frame lands on every 5th source frame: identical poses there.
    dots = np.abs(np.sum(at_24.rotations[::4] * native.rotations[::5][: len(at_24.rotations[::4])], axis=-1))
    assert np.abs(dots - 1).max() < 1e-9


def test_resample_interpolates_a_steady_turn_exactly(core):
    angles = np.radians(np.arange(11) * 9.0)  # 9 degrees per frame about Z at 10 fps
    rotations = np.stack([np.cos(angles / 2), 0 * angles, 0 * angles, np.sin(angles / 2)], -1)[:, None]
    clip = core.SourceClip(("root",), [-1], [[0, 0, 0]], rotations, np.zeros((11, 3)), fps=10.0)
    out = core.resample(clip, 25.0)
    assert out.num_frames == 26
    want = np.radians(np.arange(26) * 9.0 * 10 / 25)
    got = 2 * np.arctan2(out.rotations[:, 0, 3], out.rotations[:, 0, 0])
    assert got == pytest.approx(want, abs=1e-9)


def test_keys_are_continuous_and_cover_mapped_bones_and_their_parents(core, mapping, take):
    rig, _ = rig_from_specs(core, mapping, rigify_spec())
    keys = core.retarget(core.SourceClip.from_payload(take.payload), rig)
    assert np.all(np.sum(keys.rotations[1:] * keys.rotations[:-1], axis=-1) > 0)
    keyed = {n for n, k in zip(keys.bone_names, keys.keyed) if k}
    assert set(rig.smpl_to_bone.values()) <= keyed
    assert "DEF-upper_arm.L.001" in keyed  # between mapped bones: pinned to rest by keys
    assert not {"torso", "MCH-spine", "upper_arm_fk.L", "DEF-pelvis.L"} & keyed
    assert keys.root_bone == "DEF-spine"
    assert keys.pairs["left_shoulder"] == ("LeftArm", "DEF-upper_arm.L")


def test_root_bone_above_the_pelvis_carries_the_motion_when_it_is_the_common_parent(core, mapping, take):
    # Legs hang off "root" directly, the spine off "pelvis": only "root" moves everything.
    specs = unreal_apose_spec()
    for spec in specs:
        if spec.name.startswith("thigh_"):
            spec.parent = "root"
    rig, rest = rig_from_specs(core, mapping, specs)
    keys = core.retarget(core.SourceClip.from_payload(take.payload), rig)
    assert keys.root_bone == "root"
    heads = evaluate_pose(rig.parents, rest, keys)[..., :3, 3]
    names = list(rig.names)
    src = take.blender_positions()
    foot = heads[:, names.index("foot_l"), 2]
    assert np.abs(foot - keys.scale * src[:, take.names.index("LeftFoot"), 2]).max() < 0.02


def test_backend_synthetic_bvh_round_trip_retargets(core, mapping, tmp_path):
    """Engineer A's writer and reader (the server's path): Bandai-style takes keep translations on Hips."""
    synthetic = pytest.importorskip("fixtures.synthetic")
    skeleton_mod = pytest.importorskip("mofind.skeleton")
    bvh_mod = pytest.importorskip("mofind.io.bvh")
    rig, rest = rig_from_specs(core, mapping, mixamo_spec())
    for kind in ("bandai", "cmu", "zup"):
        path = synthetic.write_action_bvh(tmp_path / f"{kind}.bvh", kind, "walk", seconds=1.0)
        motion = skeleton_mod.load_motion(path)
        payload = payload_from_motion(motion)
        keys = core.retarget(core.SourceClip.from_payload(payload), rig)
        world = evaluate_pose(rig.parents, rest, keys)
        positions = bvh_mod.forward_kinematics(bvh_mod.read_bvh(path))
        to_z = Y_TO_Z_UP if payload["up_axis"] == "Y" else np.eye(3)
        src = positions @ to_z.T
        names = list(rig.names)
        for smpl, child in (("left_hip", "left_knee"), ("right_knee", "right_ankle"), ("left_shoulder", "left_elbow"),
                            ("right_elbow", "right_wrist"), ("spine3", "neck")):
            if smpl not in payload["smpl_to_source"] or child not in payload["smpl_to_source"]:
                continue
            j = motion.skeleton.names.index(payload["smpl_to_source"][smpl])
            jc = motion.skeleton.names.index(payload["smpl_to_source"][child])
            got = (world[:, names.index(rig.smpl_to_bone[child]), :3, 3]
                   - world[:, names.index(rig.smpl_to_bone[smpl]), :3, 3])
            assert angle_deg(got, src[:, jc] - src[:, j]).max() < 0.05, (kind, smpl)
        hips = world[:, names.index("mixamorig:Hips"), :3, 3]
        assert np.linalg.norm(hips[-1, :2] - hips[0, :2]) > 0.5, kind  # ~1.2 m/s for a second, scaled to the rig


def payload_from_motion(motion) -> dict:
    """What the server's get_motion sends, built from a backend Motion."""
    payload = {
        "skeleton": motion.skeleton.to_dict(), "fps": motion.source_fps, "start_frame": 0,
        "end_frame": len(motion.local_rotations), "unit_scale": motion.mapping["unit_scale"],
        "up_axis": motion.mapping["up_axis"], "rotations": motion.local_rotations,
        "root_translation": motion.root_translation, "smpl_to_source": motion.mapping["smpl_to_source"],
    }
    if getattr(motion, "joint_translations", None) is not None:
        payload["joint_translations"] = motion.joint_translations
    return payload


@pytest.mark.needs_shared
def test_real_takes_retarget_onto_a_mixamo_rig(core, mapping, bvh_samples):
    skeleton_mod = pytest.importorskip("mofind.skeleton")
    bvh_mod = pytest.importorskip("mofind.io.bvh")
    rig, rest = rig_from_specs(core, mapping, mixamo_spec())
    names = list(rig.names)
    chosen = [p for p in bvh_samples if p.name.startswith(("dataset-2_walk", "cmu_01_01", "cmu_iclone_002"))]
    assert chosen
    for path in chosen:
        motion = skeleton_mod.load_motion(path)
        payload = payload_from_motion(motion)
        frames = slice(0, 240)
        for key in ("rotations", "root_translation", "joint_translations"):
            if key in payload:
                payload[key] = payload[key][frames]
        keys = core.retarget(core.SourceClip.from_payload(payload), rig)
        world = evaluate_pose(rig.parents, rest, keys)
        positions = bvh_mod.forward_kinematics(bvh_mod.read_bvh(path))[frames]
        src = positions @ (Y_TO_Z_UP if payload["up_axis"] == "Y" else np.eye(3)).T
        for smpl, child in (("left_hip", "left_knee"), ("left_knee", "left_ankle"), ("right_shoulder", "right_elbow"),
                            ("right_elbow", "right_wrist")):
            j = motion.skeleton.names.index(payload["smpl_to_source"][smpl])
            jc = motion.skeleton.names.index(payload["smpl_to_source"][child])
            got = (world[:, names.index(rig.smpl_to_bone[child]), :3, 3]
                   - world[:, names.index(rig.smpl_to_bone[smpl]), :3, 3])
            assert angle_deg(got, src[:, jc] - src[:, j]).max() < 1.0, (path.name, smpl)


# --- bad input -----------------------------------------------------------------------------------


def _bad(payload, **changes):
    out = dict(payload)
    skeleton = dict(out["skeleton"])
    for key, value in changes.items():
        if key in ("names", "parents", "offsets"):
            skeleton[key] = value
        elif value is None:
            out.pop(key)
        else:
            out[key] = value
    out["skeleton"] = skeleton
    return out


@pytest.mark.parametrize("changes, message", [
    ({"rotations": None}, "lacks rotations"),
    ({"rotations": {"$frame": 0, "dtype": "float32", "shape": [2, 27, 4]}}, "decode the binary frames"),
    ({"rotations": np.zeros((60, 27, 3))}, "rotations has shape (60, 27, 3)"),
    ({"rotations": np.zeros((60, 27, 4))}, "zero-length quaternions"),
    ({"root_translation": np.full((60, 3), np.nan)}, "root_translation contains NaN"),
    ({"root_translation": np.zeros((59, 3))}, "root_translation has shape (59, 3)"),
    ({"up_axis": "X"}, "up_axis must be 'Y' or 'Z'"),
    ({"unit_scale": 0}, "unit_scale must be positive"),
    ({"fps": "fast"}, "fps must be a number"),
    ({"parents": [-1] * 27}, "exactly one root joint"),
    ({"parents": [1, 0] + list(range(1, 26))}, "cycle"),
    ({"smpl_to_source": {"left_hip": "NoSuchJoint"}}, "no such source joint: left_hip -> 'NoSuchJoint'"),
    ({"smpl_to_source": {"tail": "Hips"}}, "not SMPL-22: tail"),
])
def test_bad_payloads_raise_a_clear_retarget_error(core, take, changes, message):
    with pytest.raises(core.RetargetError) as error:
        core.SourceClip.from_payload(_bad(take.payload, **changes))
    assert message in str(error.value)


def test_clip_and_rig_without_common_joints_is_refused(core, take):
    rig = core.TargetRig(("a", "b"), [-1, 0], np.tile(np.eye(4), (2, 1, 1)), {"head": "b"})
    source = core.SourceClip.from_payload(_bad(take.payload, smpl_to_source={"pelvis": "Hips"}))
    with pytest.raises(core.RetargetError, match="no body joint is mapped on both"):
        core.retarget(source, rig)


def test_bone_map_naming_a_missing_bone_is_refused(core):
    with pytest.raises(core.RetargetError, match="no such bone: pelvis -> 'Hips'"):
        core.TargetRig(("a",), [-1], np.eye(4)[None], {"pelvis": "Hips"})
