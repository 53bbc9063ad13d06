"""apply_clip in real Blender scenes: Blender evaluates the pose at every frame and we measure it.

Runs on the bpy wheel (4.2 flat actions and 5.x layered actions/slots alike):
    .venv-bpy42/bin/python -m pytest -q tests/addon_bpy/test_retarget_apply.py
"""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from addon_bpy import rigs  # noqa: E402
from addon_pure.retarget_fixtures import SOURCE_SMPL, source_rest_blender, walking_take  # noqa: E402

pytestmark = pytest.mark.bpy

BUILDERS = {"mixamo": rigs.build_mixamo_rig, "rigify": rigs.build_rigify_rig, "apose": rigs.build_apose_rig}


@pytest.fixture(scope="module")
def apply():
    return rigs.addon_module("retarget.apply")


@pytest.fixture(scope="module")
def mapping():
    return rigs.addon_module("retarget.mapping")


@pytest.fixture(autouse=True)
def scene():
    return rigs.reset_scene(fps=30)


@pytest.fixture(scope="module")
def take():
    return walking_take(seconds=2.0, fps=30.0)


def fcurves_of(action):
    """Every F-curve of an action, whichever action model this Blender uses."""
    if hasattr(action, "layers") and len(action.layers):
        return [fc for layer in action.layers for strip in layer.strips for bag in strip.channelbags
                for fc in bag.fcurves]
    return list(action.fcurves)


def evaluated_heads(armature, frames, bone_names):
    """(F, B, 3) pose-bone heads and (F, B, 3) +Y axes in armature space, as Blender evaluates them."""
    scene = bpy.context.scene
    heads = np.empty((len(frames), len(bone_names), 3))
    axes = np.empty_like(heads)
    for i, frame in enumerate(frames):
        scene.frame_set(frame)
        evaluated = armature.evaluated_get(bpy.context.evaluated_depsgraph_get())
        for b, name in enumerate(bone_names):
            matrix = np.array(evaluated.pose.bones[name].matrix)
            heads[i, b], axes[i, b] = matrix[:3, 3], matrix[:3, 1]
    return heads, axes


def angle_deg(a, b):
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))


@pytest.mark.parametrize("rig_name", sorted(BUILDERS))
def test_every_mapped_bone_points_like_the_source_and_feet_stay_on_the_scaled_track(apply, mapping, take, rig_name):
    armature = BUILDERS[rig_name]()
    bone_map = mapping.detect_bone_map([b.name for b in armature.data.bones])
    assert bone_map.unmatched == []
    apply.apply_clip(bpy.context, armature, take.payload, start_frame=1, plant_feet=False)

    smpl = [j for j in bone_map.smpl_to_bone if j in SOURCE_SMPL]
    bones = [bone_map.smpl_to_bone[j] for j in smpl]
    frames = list(range(1, len(take.payload["rotations"]) + 1))
    heads, axes = evaluated_heads(armature, frames, bones)
    src = take.blender_positions()
    src_rest = source_rest_blender()
    rest = {b.name: np.array(b.head_local) for b in armature.data.bones}
    joint = {j: take.names.index(SOURCE_SMPL[j]) for j in smpl}
    col = {j: i for i, j in enumerate(smpl)}

    checked = 0
    for j in smpl:
        child = next((c for c in mapping.LIMB_CHAINS[j] if c in col), None)
        if child is None or np.linalg.norm(src_rest[joint[child]] - src_rest[joint[j]]) < 1e-6:
            continue  # limb ends, and CMU's zero-length LowerBack above the pelvis
        want = src[:, joint[child]] - src[:, joint[j]]
        got = heads[:, col[child]] - heads[:, col[j]]
        assert angle_deg(got, want).max() < 1.0, (rig_name, j)
        if rig_name != "apose":  # these rigs' tails sit on the child joint: the bone's own +Y lines up too
            assert angle_deg(axes[:, col[j]], want).max() < 1.0, (rig_name, j)
        checked += 1
    assert checked == 16

    # Feet: the rig's ankles follow the source ankles scaled by the leg-length ratio (rest poses).
    leg = lambda p: np.linalg.norm(p[1] - p[0]) + np.linalg.norm(p[2] - p[1])  # noqa: E731
    chain = ["left_hip", "left_knee", "left_ankle"]
    ratio = leg([rest[bone_map.smpl_to_bone[j]] for j in chain]) / leg([src_rest[joint[j]] for j in chain])
    for side in ("left", "right"):
        foot = heads[:, col[f"{side}_ankle"], 2]
        assert np.abs(foot - ratio * src[:, joint[f"{side}_ankle"], 2]).max() < 0.02, (rig_name, side)


def test_one_named_action_per_apply_and_a_second_apply_makes_a_second_action(apply, take):
    armature = rigs.build_mixamo_rig()
    before = set(bpy.data.actions)
    first = apply.apply_clip(bpy.context, armature, take.payload, name="Walk take")
    second = apply.apply_clip(bpy.context, armature, take.payload)
    assert set(bpy.data.actions) - before == {first, second}
    assert first.name == "Walk take"
    assert second.name == "MoFind clip 0-60"
    assert armature.animation_data.action == second
    if apply.uses_layered_actions():
        assert [s.identifier for s in second.slots] == ["OB" + armature.name]
        assert armature.animation_data.action_slot == second.slots[0]
    assert second["mofind"]["preset"] == "mixamo"


def test_keys_cover_mapped_bones_and_the_root_location_only(apply, take):
    armature = rigs.build_65_bone_rig()
    action = apply.apply_clip(bpy.context, armature, take.payload, start_frame=10)
    curves = fcurves_of(action)
    paths = {(fc.data_path, fc.array_index) for fc in curves}
    assert ('pose.bones["mixamorig:Hips"].location', 2) in paths
    assert not any("LeftHandIndex" in p or "Toe_End" in p for p, _ in paths)
    rotated = {p.split('"')[1] for p, _ in paths if p.endswith("rotation_quaternion")}
    assert len(rotated) == 22
    assert all(fc.group.name == fc.data_path.split('"')[1] for fc in curves)  # grouped per bone
    dense = 0
    for fc in curves:
        points = fc.keyframe_points
        co = np.empty(2 * len(points), dtype=np.float32)
        points.foreach_get("co", co)
        if len(points) == 1:  # a channel that never moves (a hinge knee has no twist) gets one key
            assert co[0] == 10
            continue
        dense += 1
        assert co[0::2] == pytest.approx(np.arange(10, 70))
        assert all(p.interpolation == "LINEAR" for p in points)
    assert dense >= 22 * 4 - 4
    assert all(armature.pose.bones[b].rotation_mode == "QUATERNION" for b in rotated)
    assert armature.pose.bones["mixamorig:LeftHandIndex1"].rotation_mode == "QUATERNION"  # Blender's default


def test_scene_frame_rate_resamples_and_can_be_switched_off(apply, take, scene):
    armature = rigs.build_mixamo_rig()
    scene.render.fps = 24
    resampled = apply.apply_clip(bpy.context, armature, take.payload)
    native = apply.apply_clip(bpy.context, armature, take.payload, match_fps=False)
    assert len(fcurves_of(resampled)[0].keyframe_points) == 59 * 24 // 30 + 1
    assert len(fcurves_of(native)[0].keyframe_points) == 60
    assert resampled["mofind"]["fps"] == 24.0


def test_push_to_nla_leaves_the_active_action_alone_and_plays_the_same_pose(apply, take, scene):
    armature = rigs.build_mixamo_rig()
    active = apply.apply_clip(bpy.context, armature, take.payload, start_frame=1)
    pose_active, _ = evaluated_heads(armature, [25], ["mixamorig:LeftHand", "mixamorig:Head"])
    armature.animation_data.action = None
    pushed = apply.apply_clip(bpy.context, armature, take.payload, start_frame=1, push_to_nla=True)
    assert armature.animation_data.action is None
    tracks = armature.animation_data.nla_tracks
    assert len(tracks) == 1 and tracks[0].strips[0].action == pushed
    if apply.uses_layered_actions():
        assert tracks[0].strips[0].action_slot == pushed.slots[0]
    pose_nla, _ = evaluated_heads(armature, [25], ["mixamorig:LeftHand", "mixamorig:Head"])
    assert np.abs(pose_nla - pose_active).max() < 1e-5
    assert active.name != pushed.name


def test_edited_bone_map_dict_limits_what_is_keyed(apply, take):
    armature = rigs.build_mixamo_rig()
    arms = {"left_shoulder": "mixamorig:LeftArm", "left_elbow": "mixamorig:LeftForeArm"}
    action = apply.apply_clip(bpy.context, armature, take.payload, bone_map=arms, scope="MAPPED")
    rotated = {fc.data_path.split('"')[1] for fc in fcurves_of(action) if fc.data_path.endswith("rotation_quaternion")}
    assert rotated == {"mixamorig:Hips", "mixamorig:Spine", "mixamorig:Spine1", "mixamorig:Spine2",
                       "mixamorig:LeftShoulder", "mixamorig:LeftArm", "mixamorig:LeftForeArm"}


@pytest.mark.parametrize("bad, message", [
    ({"bone_map": {"pelvis": "NoSuchBone"}}, "pelvis -> 'NoSuchBone' (no such bone)"),
    ({"bone_map": {"wing": "mixamorig:Hips"}}, "not SMPL-22: wing"),
    ({"payload": {"fps": 30}}, "motion payload lacks skeleton, rotations, root_translation"),
])
def test_bad_input_raises_a_retarget_error_and_creates_no_action(apply, take, bad, message):
    armature = rigs.build_mixamo_rig()
    before = len(bpy.data.actions)
    with pytest.raises(apply.RetargetError) as error:
        apply.apply_clip(bpy.context, armature, bad.get("payload", take.payload), bone_map=bad.get("bone_map"))
    assert message in str(error.value)
    assert len(bpy.data.actions) == before


def test_non_armature_object_is_refused(apply, take):
    mesh = bpy.data.objects.new("NotARig", bpy.data.meshes.new("m"))
    with pytest.raises(apply.RetargetError, match="needs an armature object, got 'NotARig' \\(MESH\\)"):
        apply.apply_clip(bpy.context, mesh, take.payload)
