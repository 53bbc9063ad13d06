"""Bone-map detection on the bone lists of real rig families (and the real BVH files when present)."""

from __future__ import annotations

import importlib
import re

import pytest

from addon_pure.retarget_fixtures import mixamo_spec, rigify_spec, unreal_apose_spec


@pytest.fixture(scope="module")
def mapping(addon_pkg):
    return importlib.import_module("mofind_addon.retarget.mapping")


def _sides(template: str) -> list[str]:
    return [template.format(side=s) for s in ("l", "r")]


UE5_MANNEQUIN = [
    "root", "pelvis", "spine_01", "spine_02", "spine_03", "spine_04", "spine_05", "neck_01", "neck_02", "head",
    *[n for t in ("clavicle_{side}", "upperarm_{side}", "upperarm_twist_01_{side}", "upperarm_twist_02_{side}",
                  "lowerarm_{side}", "lowerarm_twist_01_{side}", "hand_{side}", "index_metacarpal_{side}",
                  "index_01_{side}", "thumb_01_{side}", "thigh_{side}", "thigh_twist_01_{side}", "calf_{side}",
                  "calf_twist_01_{side}", "foot_{side}", "ball_{side}", "ik_foot_{side}") for n in _sides(t)],
    "ik_foot_root", "ik_hand_root", "ik_hand_gun", "interaction", "center_of_mass",
]
RIGIFY_GENERATED = [
    "root", "torso", "hips", "chest", "MCH-torso.parent", "ORG-spine", "ORG-spine.001", "DEF-spine", "DEF-spine.001",
    "DEF-spine.002", "DEF-spine.003", "DEF-spine.004", "DEF-spine.005", "DEF-spine.006",
    *[n for s in ("L", "R") for n in (
        f"DEF-pelvis.{s}", f"DEF-thigh.{s}", f"DEF-thigh.{s}.001", f"DEF-shin.{s}", f"DEF-shin.{s}.001",
        f"DEF-foot.{s}", f"DEF-toe.{s}", f"DEF-shoulder.{s}", f"DEF-upper_arm.{s}", f"DEF-upper_arm.{s}.001",
        f"DEF-forearm.{s}", f"DEF-forearm.{s}.001", f"DEF-hand.{s}", f"DEF-breast.{s}", f"ORG-upper_arm.{s}",
        f"upper_arm_fk.{s}", f"upper_arm_ik.{s}", f"upper_arm_tweak.{s}", f"thigh_ik.{s}", f"MCH-thigh_ik.{s}",
        f"foot_ik.{s}", f"hand_ik.{s}", f"shoulder.{s}")],
]
CMU_31 = ("Hips LHipJoint LeftUpLeg LeftLeg LeftFoot LeftToeBase RHipJoint RightUpLeg RightLeg RightFoot "
          "RightToeBase LowerBack Spine Spine1 Neck Neck1 Head LeftShoulder LeftArm LeftForeArm LeftHand "
          "LeftFingerBase LFingers LThumb RightShoulder RightArm RightForeArm RightHand RightFingerBase RFingers "
          "RThumb").split()
BANDAI_22 = ("joint_Root Hips Spine Chest Neck Head Shoulder_L UpperArm_L LowerArm_L Hand_L Shoulder_R UpperArm_R "
             "LowerArm_R Hand_R UpperLeg_L LowerLeg_L Foot_L Toes_L UpperLeg_R LowerLeg_R Foot_R Toes_R").split()
SMPL_FBX = ["m_avg_root", "m_avg_Pelvis", "m_avg_L_Hip", "m_avg_R_Hip", "m_avg_Spine1", "m_avg_L_Knee", "m_avg_R_Knee",
            "m_avg_Spine2", "m_avg_L_Ankle", "m_avg_R_Ankle", "m_avg_Spine3", "m_avg_L_Foot", "m_avg_R_Foot",
            "m_avg_Neck", "m_avg_L_Collar", "m_avg_R_Collar", "m_avg_Head", "m_avg_L_Shoulder", "m_avg_R_Shoulder",
            "m_avg_L_Elbow", "m_avg_R_Elbow", "m_avg_L_Wrist", "m_avg_R_Wrist", "m_avg_L_Hand", "m_avg_R_Hand"]
SMPLX_ADDON = ["root", "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
               "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
               "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist", "jaw",
               "left_eye_smplhf", "left_index1", "right_thumb2"]
MAX_BIPED = ["Bip01", "Bip01 Pelvis", "Bip01 Spine", "Bip01 Spine1", "Bip01 Spine2", "Bip01 Neck", "Bip01 Head",
             *[f"Bip01 {s} {part}" for s in "LR" for part in ("Clavicle", "UpperArm", "Forearm", "Hand", "Finger0",
                                                             "Thigh", "Calf", "Foot", "Toe0")]]
VROID = ["Root", "J_Bip_C_Hips", "J_Bip_C_Spine", "J_Bip_C_Chest", "J_Bip_C_UpperChest", "J_Bip_C_Neck",
         "J_Bip_C_Head", *[f"J_Bip_{s}_{part}" for s in "LR" for part in (
             "Shoulder", "UpperArm", "LowerArm", "Hand", "Thumb1", "UpperLeg", "LowerLeg", "Foot", "ToeBase")]]


@pytest.mark.parametrize("name, expected", [
    ("mixamorig:LeftForeArm", ("left", "forearm")),
    ("mixamorig1:RightUpLeg", ("right", "upleg")),
    ("DEF-upper_arm.L.001", ("left", "upperarm001")),
    ("thigh_r", ("right", "thigh")),
    ("L_Hip", ("left", "hip")),
    ("Left_hip", ("left", "hip")),
    ("LHipJoint", ("left", "hipjoint")),
    ("Bip01 R Forearm", ("right", "forearm")),
    ("CC_Base_L_Thigh", ("left", "thigh")),
    ("ShoulderLeft", ("left", "shoulder")),
    ("J_Bip_L_UpperArm", ("left", "upperarm")),
    ("Armature|Hips", (None, "hips")),
    ("LowerBack", (None, "lowerback")),
    ("Root", (None, "root")),
    ("spine_03", (None, "spine03")),
])
def test_name_normaliser_splits_side_and_core(mapping, name, expected):
    assert mapping.split_bone_name(name) == expected


@pytest.mark.parametrize("names, preset, expected", [
    ([s.name for s in mixamo_spec(fingers=True)], "mixamo",
     {"pelvis": "mixamorig:Hips", "spine2": "mixamorig:Spine1", "left_collar": "mixamorig:LeftShoulder",
      "left_shoulder": "mixamorig:LeftArm", "right_foot": "mixamorig:RightToeBase"}),
    (RIGIFY_GENERATED, "rigify",
     {"pelvis": "DEF-spine", "neck": "DEF-spine.004", "head": "DEF-spine.006", "left_shoulder": "DEF-upper_arm.L",
      "right_elbow": "DEF-forearm.R", "left_knee": "DEF-shin.L", "right_collar": "DEF-shoulder.R"}),
    (UE5_MANNEQUIN, "unreal5",
     {"pelvis": "pelvis", "spine1": "spine_01", "spine2": "spine_03", "spine3": "spine_05", "neck": "neck_01",
      "left_elbow": "lowerarm_l", "right_foot": "ball_r"}),
    (["root", "pelvis", "spine_01", "spine_02", "spine_03", "neck_01", "head"]
     + [n for t in ("clavicle_{side}", "upperarm_{side}", "lowerarm_{side}", "hand_{side}", "thigh_{side}",
                    "calf_{side}", "foot_{side}", "ball_{side}") for n in _sides(t)], "unreal5",
     {"spine1": "spine_01", "spine2": "spine_02", "spine3": "spine_03"}),
    (SMPL_FBX, "smpl", {"pelvis": "m_avg_Pelvis", "left_collar": "m_avg_L_Collar",
                        "left_shoulder": "m_avg_L_Shoulder", "right_wrist": "m_avg_R_Wrist"}),
    (SMPLX_ADDON, "smpl", {"pelvis": "pelvis", "left_hip": "left_hip", "spine3": "spine3",
                           "right_shoulder": "right_shoulder"}),
    (CMU_31, "cmu_bvh", {"spine1": "LowerBack", "spine2": "Spine", "spine3": "Spine1", "neck": "Neck1",
                         "left_hip": "LeftUpLeg", "left_collar": "LeftShoulder", "left_shoulder": "LeftArm"}),
    (BANDAI_22, "bandai", {"pelvis": "Hips", "spine1": "Spine", "spine3": "Chest", "left_collar": "Shoulder_L",
                           "left_shoulder": "UpperArm_L", "right_foot": "Toes_R"}),
    (MAX_BIPED, None, {"pelvis": "Bip01 Pelvis", "spine1": "Bip01 Spine", "spine2": "Bip01 Spine1",
                       "spine3": "Bip01 Spine2", "left_collar": "Bip01 L Clavicle",
                       "left_shoulder": "Bip01 L UpperArm", "right_foot": "Bip01 R Toe0"}),
    (VROID, None, {"pelvis": "J_Bip_C_Hips", "spine1": "J_Bip_C_Spine", "spine2": "J_Bip_C_Chest",
                   "spine3": "J_Bip_C_UpperChest", "left_collar": "J_Bip_L_Shoulder",
                   "left_shoulder": "J_Bip_L_UpperArm", "left_knee": "J_Bip_L_LowerLeg"}),
])
def test_rig_families_are_detected(mapping, names, preset, expected):
    bone_map = mapping.detect_bone_map(names)
    assert bone_map.preset == preset
    for joint, bone in expected.items():
        assert bone_map.smpl_to_bone.get(joint) == bone, joint
    wanted_unmatched = ["spine2"] if names is BANDAI_22 else []
    assert bone_map.unmatched == wanted_unmatched
    assert len(set(bone_map.smpl_to_bone.values())) == len(bone_map.smpl_to_bone)


def test_test_rigs_map_completely(mapping):
    for specs, preset in ((rigify_spec(), "rigify"), (unreal_apose_spec(), "unreal5")):
        bone_map = mapping.detect_bone_map([s.name for s in specs])
        assert (bone_map.preset, bone_map.unmatched) == (preset, [])


def test_unmatched_joints_are_reported_in_smpl_order(mapping):
    names = [n for n in UE5_MANNEQUIN if not re.match(r"(clavicle|ball)_", n)]
    bone_map = mapping.detect_bone_map(names)
    assert bone_map.preset == "unreal5"
    assert bone_map.unmatched == ["left_foot", "right_foot", "left_collar", "right_collar"]


def test_a_few_shared_names_do_not_claim_a_preset(mapping):
    bone_map = mapping.detect_bone_map(["Hips", "Head", "Tail", "Wing.L", "Wing.R"])
    assert bone_map.preset is None
    assert bone_map.smpl_to_bone == {"pelvis": "Hips", "head": "Head"}
    assert len(bone_map.unmatched) == 20


def test_bone_map_round_trips_through_the_plain_dict_the_ui_edits(mapping):
    bone_map = mapping.detect_bone_map(BANDAI_22)
    data = bone_map.to_dict()
    assert data == {"preset": "bandai", "smpl_to_bone": bone_map.smpl_to_bone, "unmatched": ["spine2"]}
    data["smpl_to_bone"]["spine2"] = "Chest"
    data["smpl_to_bone"]["spine3"] = ""  # the UI clears a field to unmap a joint
    edited = mapping.BoneMap.from_dict(data)
    assert edited.smpl_to_bone["spine2"] == "Chest" and "spine3" not in edited.smpl_to_bone
    assert edited.unmatched == ["spine3"]
    assert mapping.BoneMap.from_dict({"head": "Head"}).smpl_to_bone == {"head": "Head"}


def test_edited_bone_maps_are_checked_against_the_armature(mapping):
    with pytest.raises(mapping.BoneMapError, match="not SMPL-22: tail"):
        mapping.BoneMap.from_dict({"tail": "Tail"})
    bone_map = mapping.BoneMap.from_dict({"pelvis": "Hips", "spine1": "Hips", "head": "Skull"})
    with pytest.raises(mapping.BoneMapError) as error:
        bone_map.checked(["Hips", "Head"])
    assert "head -> 'Skull' (no such bone)" in str(error.value)
    assert "spine1 and pelvis both use bone 'Hips'" in str(error.value)
    ok = mapping.BoneMap.from_dict({"pelvis": "Hips", "head": "Head"})
    assert ok.checked(["Hips", "Head"]) is ok


def test_limb_chains_follow_the_smpl_hierarchy(mapping):
    names, parents = mapping.SMPL22_NAMES, mapping.SMPL22_PARENTS
    for joint, chain in mapping.LIMB_CHAINS.items():
        previous = joint
        for child in chain:
            assert names[parents[names.index(child)]] == previous
            previous = child


@pytest.mark.needs_shared
def test_real_bvh_skeletons_are_detected(mapping, bvh_samples):
    expected = {"cmu_01_01": "cmu_bvh", "neutral_01": "cmu_bvh", "dataset-2_": "bandai", "cmu_iclone": "iclone_cc"}
    for path in bvh_samples:
        preset = next((p for prefix, p in expected.items() if path.name.startswith(prefix)), None)
        if preset is None:
            continue
        names = re.findall(r"^\s*(?:ROOT|JOINT)\s+(\S+)", path.read_text(errors="replace"), flags=re.MULTILINE)
        bone_map = mapping.detect_bone_map(names)
        assert bone_map.preset == preset, path.name
        assert len(bone_map.unmatched) <= 1, (path.name, bone_map.unmatched)
