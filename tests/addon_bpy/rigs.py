"""Armatures built from code for the retarget tests and the add-on benchmark (needs bpy).

The bone layouts live in `addon_pure/retarget_fixtures.py` (numpy only) so the pure tests check the
same rigs; here they become real armatures through edit bones, and Blender computes the rest
matrices itself.

For the benchmark:

    from addon_bpy import rigs
    apply_clip = rigs.addon_module("retarget.apply").apply_clip
    armature = rigs.build_65_bone_rig()
    payload = rigs.walking_payload(seconds=10.0, fps=30.0)
    action = apply_clip(bpy.context, armature, payload)
"""

from __future__ import annotations

import importlib
import sys
import types
from pathlib import Path

import bpy

from addon_pure.retarget_fixtures import BoneSpec, mixamo_spec, rigify_spec, unreal_apose_spec, walking_take

ADDON_DIR = Path(__file__).resolve().parents[2] / "blender_addon"
PACKAGE = "mofind_addon"  # same stand-in package name as tests/addon_pure/conftest.py


def addon_module(name: str):
    """Import `blender_addon/<name>` (e.g. "retarget.apply") without running the add-on's register code."""
    if PACKAGE not in sys.modules:
        package = types.ModuleType(PACKAGE)
        package.__path__ = [str(ADDON_DIR)]
        sys.modules[PACKAGE] = package
    return importlib.import_module(f"{PACKAGE}.{name}")


def reset_scene(fps: int = 30) -> bpy.types.Scene:
    """An empty scene at `fps` (preferences and enabled add-ons are kept, unlike factory settings)."""
    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps, 1.0
    return scene


def build_armature(specs: list[BoneSpec], name: str) -> bpy.types.Object:
    """An armature object in the current scene with one edit bone per spec (head, tail, roll, parent)."""
    data = bpy.data.armatures.new(name)
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    bpy.context.view_layer.objects.active = obj
    bpy.ops.object.mode_set(mode="EDIT")
    try:
        edit = {}
        for spec in specs:
            bone = data.edit_bones.new(spec.name)
            bone.head, bone.tail, bone.roll = tuple(spec.head), tuple(spec.tail), spec.roll
            edit[spec.name] = bone
        for spec in specs:
            if spec.parent:
                edit[spec.name].parent = edit[spec.parent]
    finally:
        bpy.ops.object.mode_set(mode="OBJECT")
    return obj


def build_mixamo_rig(name: str = "MixamoRig", **options) -> bpy.types.Object:
    """Mixamo-named rig with other proportions and random rolls (see `mixamo_spec` for options)."""
    return build_armature(mixamo_spec(**options), name)


def build_rigify_rig(name: str = "RigifyRig") -> bpy.types.Object:
    """Rigify-style DEF- deform chain with twist segments, plus control and MCH bones."""
    return build_armature(rigify_spec(), name)


def build_apose_rig(name: str = "APoseRig") -> bpy.types.Object:
    """UE5-mannequin names, arms 45 degrees down, legs apart, FBX-like tails."""
    return build_armature(unreal_apose_spec(), name)


def build_65_bone_rig(name: str = "Rig65") -> bpy.types.Object:
    """A Mixamo-style rig with five four-bone fingers per hand: 65 bones, 22 of them mapped."""
    obj = build_armature(mixamo_spec(fingers=True), name)
    assert len(obj.data.bones) == 65
    return obj


def walking_payload(seconds: float = 2.0, fps: float = 30.0) -> dict:
    """A get_motion-like payload (arrays decoded): a CMU-named skeleton walking and turning."""
    return walking_take(seconds=seconds, fps=fps).payload
