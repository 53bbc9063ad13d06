"""The rigs animators use, built by Blender itself: detection, Apply, and refusals that name the bones.

The Rigify meta-rig and the generated Rigify rig come from Rigify (shipped with Blender): generated
once per session and saved to a .blend that each test opens. The other naming schemes are
armatures built here with each product's bone names (Mixamo with and without the prefix, UE5,
Auto-Rig Pro, Character Creator, Daz Genesis 8, SMPL) and an A-pose UE5 rig. Poses are measured as
Blender evaluates them (depsgraph), on the deform bones for the generated Rigify rig.

    .venv-bpy42/bin/python -m pytest -q tests/addon_bpy/test_real_rigs.py
"""

from __future__ import annotations

import numpy as np
import pytest

bpy = pytest.importorskip("bpy")

from addon_bpy import rigs  # noqa: E402
from addon_pure.retarget_fixtures import SOURCE_SMPL, Y_TO_Z_UP, BoneSpec, mixamo_spec, walking_take  # noqa: E402

pytestmark = pytest.mark.bpy

SIDED = ("hip", "knee", "ankle", "foot", "collar", "shoulder", "elbow", "wrist")
CENTRE = ("pelvis", "spine1", "spine2", "spine3", "neck", "head")


def scheme(centre: tuple[str, ...], parts: tuple[str, ...], left: str, right: str) -> dict[str, str]:
    """SMPL joint -> bone name: six centre names, eight limb part names and the side spelling."""
    table = dict(zip(CENTRE, centre))
    for side, style in (("left", left), ("right", right)):
        table.update({f"{side}_{joint}": style.format(part) for joint, part in zip(SIDED, parts)})
    return table


MIXAMO_PARTS = ("UpLeg", "Leg", "Foot", "ToeBase", "Shoulder", "Arm", "ForeArm", "Hand")
RIGIFY_PARTS = ("thigh", "shin", "foot", "toe", "shoulder", "upper_arm", "forearm", "hand")
RIGIFY_CENTRE = ("spine", "spine.001", "spine.002", "spine.003", "spine.004", "spine.006")
EXPECTED = {
    "rigify_meta": scheme(RIGIFY_CENTRE, RIGIFY_PARTS, "{}.L", "{}.R"),
    "rigify": scheme(tuple("DEF-" + n for n in RIGIFY_CENTRE), RIGIFY_PARTS, "DEF-{}.L", "DEF-{}.R"),
    "mixamo": scheme(("mixamorig:Hips", "mixamorig:Spine", "mixamorig:Spine1", "mixamorig:Spine2", "mixamorig:Neck",
                      "mixamorig:Head"), MIXAMO_PARTS, "mixamorig:Left{}", "mixamorig:Right{}"),
    "mixamo_bare": scheme(("Hips", "Spine", "Spine1", "Spine2", "Neck", "Head"), MIXAMO_PARTS, "Left{}", "Right{}"),
    "unreal5": scheme(("pelvis", "spine_01", "spine_03", "spine_05", "neck_01", "head"),
                      ("thigh", "calf", "foot", "ball", "clavicle", "upperarm", "lowerarm", "hand"), "{}_l", "{}_r"),
    "auto_rig_pro": scheme(("root.x", "spine_01.x", "spine_02.x", "spine_03.x", "neck.x", "head.x"),
                           ("thigh_stretch", "leg_stretch", "foot", "toes_01", "shoulder", "arm_stretch",
                            "forearm_stretch", "hand"), "{}.l", "{}.r"),
    "iclone_cc": scheme(("CC_Base_Hip", "CC_Base_Waist", "CC_Base_Spine01", "CC_Base_Spine02", "CC_Base_NeckTwist01",
                         "CC_Base_Head"), ("Thigh", "Calf", "Foot", "ToeBase", "Clavicle", "Upperarm", "Forearm",
                                           "Hand"), "CC_Base_L_{}", "CC_Base_R_{}"),
    "daz_genesis8": scheme(("hip", "abdomenLower", "abdomenUpper", "chestUpper", "neckLower", "head"),
                           ("ThighBend", "Shin", "Foot", "Toe", "Collar", "ShldrBend", "ForearmBend", "Hand"),
                           "l{}", "r{}"),
    "smpl": scheme(("m_avg_Pelvis", "m_avg_Spine1", "m_avg_Spine2", "m_avg_Spine3", "m_avg_Neck", "m_avg_Head"),
                   ("Hip", "Knee", "Ankle", "Foot", "Collar", "Shoulder", "Elbow", "Wrist"),
                   "m_avg_L_{}", "m_avg_R_{}"),
}
EXPECTED["unreal5_apose"] = EXPECTED["unreal5"]  # the UE5 names on an A-pose body with FBX-style bone tails
EXPECTED["auto_rig_pro_controls"] = EXPECTED["auto_rig_pro"]  # plus c_ controls the deform bones copy
PRESET = {"mixamo_bare": "mixamo", "unreal5_apose": "unreal5", "auto_rig_pro_controls": "auto_rig_pro"}


@pytest.fixture(scope="module")
def apply():
    return rigs.addon_module("retarget.apply")


@pytest.fixture(scope="module")
def mapping():
    return rigs.addon_module("retarget.mapping")


@pytest.fixture(scope="module")
def take():
    return walking_take(seconds=1.0, fps=30.0)


@pytest.fixture(scope="session")
def rigify_blend(tmp_path_factory):
    """Rigify's Human meta-rig and the rig Rigify generates from it, saved once for the session."""
    import addon_utils

    addon_utils.enable("rigify", default_set=True)
    rigs.reset_scene(fps=30)
    bpy.ops.object.armature_human_metarig_add()
    bpy.ops.pose.rigify_generate()
    path = tmp_path_factory.mktemp("rigify") / "rigify.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path), copy=True)
    return path


def open_rig(rig_name: str, rigify_blend=None):
    """A fresh scene holding the armature `rig_name` (Rigify rigs come from the saved session file)."""
    if rig_name.startswith("rigify"):
        bpy.ops.wm.open_mainfile(filepath=str(rigify_blend))
        scene = bpy.context.scene
        scene.render.fps, scene.render.fps_base = 30, 1.0
        return bpy.data.objects["metarig" if rig_name == "rigify_meta" else "rig"]
    rigs.reset_scene(fps=30)
    if rig_name == "unreal5_apose":
        return rigs.build_apose_rig(rig_name)
    if rig_name == "auto_rig_pro_controls":
        return arp_with_controls()
    return rigs.build_armature(renamed_mixamo(EXPECTED[rig_name]), rig_name)


def renamed_mixamo(names: dict[str, str]) -> list[BoneSpec]:
    """The Mixamo test body with its 22 body bones renamed to another product's names (ends dropped)."""
    specs = [s for s in mixamo_spec(scale=1.0, arm_scale=1.0) if not s.name.endswith("_End")]
    mixamo = {bone: joint for joint, bone in EXPECTED["mixamo"].items()}
    rename = {spec.name: names[mixamo[spec.name]] for spec in specs}
    return [BoneSpec(rename[s.name], rename.get(s.parent), s.head, s.tail, s.roll) for s in specs]


def arp_with_controls():
    """Auto-Rig Pro names with a control rig on top: each deform bone copies the transforms of its
    c_ control, and the controls form the same hierarchy among themselves."""
    deform = renamed_mixamo(EXPECTED["auto_rig_pro"])
    controls = {name: control for level in rigs.addon_module("retarget.mapping").DRIVES["auto_rig_pro"].levels
                for control, name, _ in level}
    specs = list(deform)
    for spec in deform:
        specs.append(BoneSpec(controls[spec.name], controls.get(spec.parent), spec.head, spec.tail, spec.roll))
    armature = rigs.build_armature(specs, "auto_rig_pro_controls")
    for spec in deform:
        constraint = armature.pose.bones[spec.name].constraints.new("COPY_TRANSFORMS")
        constraint.target, constraint.subtarget = armature, controls[spec.name]
    return armature


def evaluated(armature, frames, bones):
    """(F, B, 4, 4) pose matrices in armature space, as Blender evaluates them (constraints included)."""
    scene = bpy.context.scene
    out = np.empty((len(frames), len(bones), 4, 4))
    for i, frame in enumerate(frames):
        scene.frame_set(frame)
        pose = armature.evaluated_get(bpy.context.evaluated_depsgraph_get()).pose.bones
        out[i] = [np.array(pose[b].matrix) for b in bones]
    return out


def angle_deg(a, b):
    a = a / np.linalg.norm(a, axis=-1, keepdims=True)
    b = b / np.linalg.norm(b, axis=-1, keepdims=True)
    return np.degrees(np.arccos(np.clip(np.sum(a * b, axis=-1), -1.0, 1.0)))


@pytest.mark.parametrize("rig_name", sorted(EXPECTED))
def test_detected_map_is_the_rigs_own_bones(mapping, rigify_blend, rig_name):
    armature = open_rig(rig_name, rigify_blend)
    found = mapping.detect_bone_map([b.name for b in armature.data.bones])
    assert found.smpl_to_bone == EXPECTED[rig_name]
    assert found.preset == PRESET.get(rig_name, rig_name)


@pytest.mark.slow
@pytest.mark.parametrize("rig_name", sorted(EXPECTED))
def test_apply_points_every_bone_like_the_source_and_turns_the_head_with_it(apply, take, rigify_blend, rig_name):
    armature = open_rig(rig_name, rigify_blend)
    expected = EXPECTED[rig_name]
    action = apply.apply_clip(bpy.context, armature, take.payload, plant_feet=False, set_frame_range=True)
    frames = list(range(1, len(take.payload["rotations"]) + 1))
    assert (bpy.context.scene.frame_start, bpy.context.scene.frame_end) == (1, frames[-1])
    assert action["mofind"]["preset"] == PRESET.get(rig_name, rig_name)

    joints = list(expected)
    matrices = evaluated(armature, frames[::3], [expected[j] for j in joints])
    heads = matrices[:, :, :3, 3]
    src = take.blender_positions()[::3]
    names = take.names
    for j in joints:
        child = next((c for c in rigs.addon_module("retarget.mapping").LIMB_CHAINS[j] if c in expected), None)
        want = src[:, names.index(SOURCE_SMPL[child])] - src[:, names.index(SOURCE_SMPL[j])] if child else None
        if want is None or np.linalg.norm(want, axis=1).min() < 1e-6:
            continue  # limb ends, and the source's zero-length LowerBack
        got = heads[:, joints.index(child)] - heads[:, joints.index(j)]
        assert angle_deg(got, want).max() < 1.0, (rig_name, j, angle_deg(got, want).max())

    # The pelvis turns like the source's: the left->right hip line (Rigify: DEF-thigh heads) follows.
    hip_line = heads[:, joints.index("left_hip")] - heads[:, joints.index("right_hip")]
    src_line = src[:, names.index("LeftUpLeg")] - src[:, names.index("RightUpLeg")]
    assert angle_deg(hip_line, src_line).max() < 1.0, angle_deg(hip_line, src_line).max()

    # The head faces where the source head faces: the rig's rest "forward" (-Y) carried by the head.
    head_bone = armature.data.bones[expected["head"]]
    rest = np.array(head_bone.matrix_local)[:3, :3]
    got_forward = matrices[:, joints.index("head"), :3, :3] @ (rest.T @ np.array([0.0, -1.0, 0.0]))
    src_head = take.rotations[::3, names.index("Head")]
    want_forward = Y_TO_Z_UP @ src_head @ Y_TO_Z_UP.T @ np.array([0.0, -1.0, 0.0])
    assert angle_deg(got_forward, want_forward).max() < 3.0

    if not rig_name.startswith("rigify"):  # the Mixamo body: ankles at the source's height times the leg ratio
        ankle = heads[:, joints.index("left_ankle"), 2]
        assert np.abs(ankle - action["mofind"]["scale"] * src[:, names.index("LeftFoot"), 2]).max() < 0.02


def test_a_control_rig_is_keyed_on_its_controls_only(apply, take):
    armature = open_rig("auto_rig_pro_controls")
    action = apply.apply_clip(bpy.context, armature, take.payload, plant_feet=False)
    curves = ([c for layer in action.layers for strip in layer.strips for bag in strip.channelbags for c in bag.fcurves]
              if getattr(action, "layers", None) else list(action.fcurves))
    assert {c.data_path.split('"')[1] for c in curves} == {
        "c_root.x", "c_spine_01.x", "c_spine_02.x", "c_spine_03.x", "c_neck.x", "c_head.x",
        *(f"c_{part}.{s}" for s in "lr" for part in ("thigh_fk", "leg_fk", "foot_fk", "toes_fk", "shoulder", "arm_fk",
                                                    "forearm_fk", "hand_fk"))}


@pytest.mark.slow
def test_generated_rigify_rig_is_keyed_on_its_fk_controls_with_the_switches_on_fk(apply, take, rigify_blend):
    armature = open_rig("rigify", rigify_blend)
    action = apply.apply_clip(bpy.context, armature, take.payload, plant_feet=False)
    curves = ([c for layer in action.layers for strip in layer.strips for bag in strip.channelbags for c in bag.fcurves]
              if getattr(action, "layers", None) else list(action.fcurves))
    keyed = {c.data_path.split('"')[1] for c in curves}
    assert {"torso", "thigh_fk.L", "shin_fk.R", "upper_arm_fk.L", "hand_fk.R", "neck", "head"} <= keyed
    assert not any(name.startswith(("DEF-", "ORG-", "MCH-")) for name in keyed)
    for bone in ("thigh_parent.L", "thigh_parent.R", "upper_arm_parent.L", "upper_arm_parent.R"):
        assert armature.pose.bones[bone]["IK_FK"] == 1.0


def test_the_issue_map_on_the_meta_rig_is_refused_naming_the_missing_joints(apply, take, rigify_blend):
    """The map detection used to make: spine1 on the hip bone, spine3 on the head bone, no pelvis/neck/head."""
    armature = open_rig("rigify_meta", rigify_blend)
    bad = dict(EXPECTED["rigify_meta"])
    for joint in ("pelvis", "neck", "head", "spine2"):
        del bad[joint]
    bad.update(spine1="spine", spine3="spine.006")
    before = len(bpy.data.actions)
    with pytest.raises(apply.RetargetError, match="no bone for pelvis, neck, head") as error:
        apply.apply_clip(bpy.context, armature, take.payload, bone_map=bad)
    assert "Bone Map" in str(error.value)
    assert len(bpy.data.actions) == before


def test_bones_mapped_out_of_hierarchy_order_are_named(apply, take, rigify_blend):
    armature = open_rig("rigify_meta", rigify_blend)
    swapped = dict(EXPECTED["rigify_meta"], neck="spine.006", head="spine.004")
    with pytest.raises(apply.RetargetError, match=r"head -> 'spine.004' sits above neck -> 'spine.006'"):
        apply.apply_clip(bpy.context, armature, take.payload, bone_map=swapped)


def test_arms_only_is_an_explicit_scope_that_keys_only_the_arms(apply, take):
    armature = open_rig("mixamo_bare")
    arms = {j: b for j, b in EXPECTED["mixamo_bare"].items() if j.endswith(("collar", "shoulder", "elbow", "wrist"))}
    with pytest.raises(apply.RetargetError, match="no bone for pelvis, a spine bone"):
        apply.apply_clip(bpy.context, armature, take.payload, bone_map=arms)
    action = apply.apply_clip(bpy.context, armature, take.payload, bone_map=arms, scope="ARMS")
    assert action["mofind"]["scope"] == "ARMS"
    curves = ([c for layer in action.layers for strip in layer.strips for bag in strip.channelbags for c in bag.fcurves]
              if getattr(action, "layers", None) else list(action.fcurves))
    rotated = {c.data_path.split('"')[1] for c in curves if c.data_path.endswith("rotation_quaternion")}
    assert not rotated & {"LeftUpLeg", "RightLeg", "Neck", "Head"}
    travel = [c for c in curves if c.data_path.endswith(".location")]
    assert travel and all(len(c.keyframe_points) == 1 and c.keyframe_points[0].co[1] == 0.0 for c in travel)
    assert bpy.context.scene.frame_end == 250  # set_frame_range is off unless asked for


@pytest.mark.slow
def test_upper_body_on_the_generated_rigify_rig_leaves_legs_and_travel_alone(apply, rigify_blend):
    armature = open_rig("rigify", rigify_blend)
    short = walking_take(seconds=0.3, fps=30.0)
    action = apply.apply_clip(bpy.context, armature, short.payload, scope="UPPER")
    curves = ([c for layer in action.layers for strip in layer.strips for bag in strip.channelbags for c in bag.fcurves]
              if getattr(action, "layers", None) else list(action.fcurves))
    keyed = {c.data_path.split('"')[1] for c in curves if c.data_path.endswith("rotation_quaternion")}
    assert {"upper_arm_fk.L", "hand_fk.R", "neck", "head", "spine_fk.003"} <= keyed
    assert not keyed & {"thigh_fk.L", "shin_fk.R", "foot_fk.L", "spine_fk"}
    travel = [c for c in curves if c.data_path == 'pose.bones["torso"].location']
    assert len(travel) == 3 and all(c.keyframe_points[0].co[1] == 0.0 and len(c.keyframe_points) == 1 for c in travel)
