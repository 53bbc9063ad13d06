"""The editable bone map: detect it on a real armature, edit a row, and apply a motion with it."""

from __future__ import annotations

import sys

import pytest

from addon_bpy import rigs
from addon_bpy.conftest import ADDON_MODULE

pytestmark = pytest.mark.bpy


@pytest.fixture
def core_motion(addon):
    return sys.modules[f"{ADDON_MODULE}.core.motion"]


def rotation_keyed(action) -> set[str]:
    if getattr(action, "layers", None):
        curves = [c for layer in action.layers for strip in layer.strips for bag in strip.channelbags
                  for c in bag.fcurves]
    else:
        curves = list(action.fcurves)
    return {c.data_path.split('"')[1] for c in curves if c.data_path.endswith("rotation_quaternion")}


def test_detect_fills_one_row_per_joint(bpy, addon):
    rig = rigs.build_mixamo_rig()
    assert bpy.ops.mofind.detect_bones() == {"FINISHED"}
    rows = {pair.joint: pair.bone for pair in rig.mofind.bone_map}
    assert len(rows) == 22 and rig.mofind.preset == "mixamo"
    assert rows["pelvis"] == "mixamorig:Hips" and rows["left_wrist"] == "mixamorig:LeftHand"
    assert "all 22 joints mapped" in bpy.context.window_manager.mofind.status


def test_detect_on_a_mesh_is_a_clear_message(bpy, addon):
    mesh = bpy.data.objects.new("Cube", bpy.data.meshes.new("Cube"))
    bpy.context.scene.collection.objects.link(mesh)
    bpy.context.view_layer.objects.active = mesh
    assert bpy.ops.mofind.detect_bones() == {"CANCELLED"}


def test_apply_follows_the_edited_map_until_it_is_switched_off(bpy, addon, core_motion):
    rigs.reset_scene(fps=30)
    rig = rigs.build_mixamo_rig()
    bpy.ops.mofind.detect_bones(armature=rig.name)
    for pair in rig.mofind.bone_map:
        if pair.joint == "left_wrist":
            pair.bone = ""  # the user unmaps the left hand
    payload = rigs.walking_payload(seconds=1.0, fps=30.0)

    with pytest.raises(ValueError, match="no bone for left_wrist"):  # a gap in the full body is refused
        core_motion.apply_payload(rig.name, payload, core_motion.ApplyOptions(), "Edited")
    edited = core_motion.apply_payload(rig.name, payload, core_motion.ApplyOptions(body_scope="MAPPED"), "Edited")
    assert "mixamorig:LeftHand" not in rotation_keyed(edited)
    assert "mixamorig:RightHand" in rotation_keyed(edited)

    rig.mofind.use_bone_map = False
    detected = core_motion.apply_payload(rig.name, payload, core_motion.ApplyOptions(), "Detected")
    assert "mixamorig:LeftHand" in rotation_keyed(detected)


def test_a_map_naming_a_missing_bone_is_refused_clearly(bpy, addon, core_motion):
    rig = rigs.build_mixamo_rig()
    bpy.ops.mofind.detect_bones(armature=rig.name)
    rig.mofind.bone_map[0].bone = "NoSuchBone"
    with pytest.raises(ValueError, match="NoSuchBone"):
        core_motion.apply_payload(rig.name, rigs.walking_payload(seconds=0.5), core_motion.ApplyOptions(), "x")


def test_apply_options_default_to_full_body_planted_feet_and_the_actions_frame_range(bpy, addon, core_motion):
    scene = rigs.reset_scene(fps=30)
    options = core_motion.ApplyOptions.from_scene(scene.mofind)
    assert (options.body_scope, options.plant_feet, options.set_frame_range) == ("FULL", True, True)
    operator = bpy.ops.mofind.apply_clip.get_rna_type().properties
    assert operator["body_scope"].default == "FULL" and operator["plant_feet"].default is True
    assert operator["set_frame_range"].default is True
    rig = rigs.build_mixamo_rig()
    scene.mofind.start_frame = 11
    core_motion.apply_payload(rig.name, rigs.walking_payload(seconds=1.0, fps=30.0),
                              core_motion.ApplyOptions.from_scene(scene.mofind), "Ranged")
    assert (scene.frame_start, scene.frame_end) == (11, 40)
    scene.mofind.set_frame_range = False
    core_motion.apply_payload(rig.name, rigs.walking_payload(seconds=2.0, fps=30.0),
                              core_motion.ApplyOptions.from_scene(scene.mofind), "Unranged")
    assert (scene.frame_start, scene.frame_end) == (11, 40)
