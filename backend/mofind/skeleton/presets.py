"""Known rigs: SMPL-22 joint -> source joint name (first alternative present wins).

A table, not code, so a new rig is one entry. Names are compared case-insensitively after
dropping a namespace prefix ("mixamorig:", "Armature|", ...). Spine entries matter for
retargeting only: SMPL spine positions are always sampled along the source spine (see convert).
"""

from __future__ import annotations


def _sided(left: str, right: str, parts: dict[str, str | tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
    out: dict[str, tuple[str, ...]] = {}
    for smpl, names in parts.items():
        names = (names,) if isinstance(names, str) else names
        out[f"left_{smpl}"] = tuple(left.format(n) for n in names)
        out[f"right_{smpl}"] = tuple(right.format(n) for n in names)
    return out


def _alts(**entries) -> dict[str, tuple[str, ...]]:
    return {k: (v,) if isinstance(v, str) else tuple(v) for k, v in entries.items()}


PRESETS: dict[str, dict[str, tuple[str, ...]]] = {
    "bandai": {
        **_alts(pelvis="Hips", spine1="Spine", spine3="Chest", neck="Neck", head="Head"),
        **_sided("{}_L", "{}_R", {"hip": "UpperLeg", "knee": "LowerLeg", "ankle": "Foot", "foot": "Toes",
                                  "collar": "Shoulder", "shoulder": "UpperArm", "elbow": "LowerArm", "wrist": "Hand"}),
    },
    "cmu_bvh": {
        **_alts(pelvis="Hips", spine1="LowerBack", spine2="Spine", spine3="Spine1", neck=("Neck1", "Neck"),
                head="Head"),
        **_sided("Left{}", "Right{}", {"hip": "UpLeg", "knee": "Leg", "ankle": "Foot", "foot": "ToeBase",
                                       "collar": "Shoulder", "shoulder": "Arm", "elbow": "ForeArm", "wrist": "Hand"}),
    },
    # Daz/Poser-style BVH (the CMU takes of shared/data/cmu-captioned, rig "cmu-daz-43"): no toe joint, the
    # ball of the foot comes from the foot's end site.
    "daz": {
        **_alts(pelvis="hip", spine1="abdomen", spine3="chest", neck="neck", head="head"),
        **_sided("l{}", "r{}", {"hip": "Thigh", "knee": "Shin", "ankle": "Foot", "collar": "Collar",
                                "shoulder": "Shldr", "elbow": "ForeArm", "wrist": "Hand"}),
    },
    "iclone_cc": {
        **_alts(pelvis="CC_Base_Hip", spine1="CC_Base_Waist", spine2="CC_Base_Spine01", spine3="CC_Base_Spine02",
                neck=("CC_Base_NeckTwist01", "CC_Base_Neck"), head="CC_Base_Head"),
        **_sided("CC_Base_L_{}", "CC_Base_R_{}", {"hip": "Thigh", "knee": "Calf", "ankle": "Foot", "foot": "ToeBase",
                                                  "collar": "Clavicle", "shoulder": "Upperarm", "elbow": "Forearm",
                                                  "wrist": "Hand"}),
    },
    "mixamo": {
        **_alts(pelvis="Hips", spine1="Spine", spine2="Spine1", spine3="Spine2", neck="Neck", head="Head"),
        **_sided("Left{}", "Right{}", {"hip": "UpLeg", "knee": "Leg", "ankle": "Foot", "foot": "ToeBase",
                                       "collar": "Shoulder", "shoulder": "Arm", "elbow": "ForeArm", "wrist": "Hand"}),
    },
    "rigify": {
        **_alts(pelvis="DEF-spine", spine1="DEF-spine.001", spine2="DEF-spine.002", spine3="DEF-spine.003",
                neck="DEF-spine.004", head="DEF-spine.006"),
        **_sided("DEF-{}.L", "DEF-{}.R", {"hip": "thigh", "knee": "shin", "ankle": "foot", "foot": "toe",
                                          "collar": "shoulder", "shoulder": "upper_arm", "elbow": "forearm",
                                          "wrist": "hand"}),
    },
    "unreal5": {
        **_alts(pelvis="pelvis", spine1="spine_01", spine2=("spine_03", "spine_02"), spine3=("spine_05", "spine_03"),
                neck="neck_01", head="head"),
        **_sided("{}_l", "{}_r", {"hip": "thigh", "knee": "calf", "ankle": "foot", "foot": "ball",
                                  "collar": "clavicle", "shoulder": "upperarm", "elbow": "lowerarm", "wrist": "hand"}),
    },
}

# Joints that identify a preset beyond what it shares with others (CMU vs Mixamo share most names).
SIGNATURES: dict[str, tuple[str, ...]] = {
    "bandai": ("joint_Root", "UpperLeg_L", "LowerArm_R"),
    "cmu_bvh": ("LHipJoint", "RHipJoint", "LowerBack", "Neck1"),
    "daz": ("abdomen", "lShldr", "rShin", "lButtock"),
    "iclone_cc": ("CC_Base_Hip", "CC_Base_L_Thigh"),
    "mixamo": ("Spine2", "HeadTop_End", "LeftHandThumb1"),
    "rigify": ("DEF-spine", "DEF-thigh.L"),
    "unreal5": ("pelvis", "thigh_l", "spine_05"),
}
