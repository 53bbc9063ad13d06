"""A rig's bone map: detect it once, let the user fix it in a list, and apply clips with it.

Detection and checking are engineer F's `retarget.mapping`; this module only moves the map
between that plain dict and the armature's `Object.mofind.bone_map` rows.
"""

from __future__ import annotations

from ..retarget.mapping import SMPL22_NAMES, detect_bone_map
from .motion import find_armature


#: The Bone Map panel's groups: body region -> its SMPL-22 joints, root to tip (covers all 22 once).
BODY_REGIONS = (
    ("Torso and Head", ("pelvis", "spine1", "spine2", "spine3", "neck", "head")),
    ("Left Arm", ("left_collar", "left_shoulder", "left_elbow", "left_wrist")),
    ("Right Arm", ("right_collar", "right_shoulder", "right_elbow", "right_wrist")),
    ("Left Leg", ("left_hip", "left_knee", "left_ankle", "left_foot")),
    ("Right Leg", ("right_hip", "right_knee", "right_ankle", "right_foot")),
)


def joint_label(joint: str, *, with_side: bool = False) -> str:
    """'left_shoulder' -> 'Shoulder' inside its region ('Left Shoulder' with_side); 'spine1' -> 'Spine 1'."""
    words = joint.replace("spine", "spine ").split("_")
    if not with_side and words[0] in ("left", "right"):
        words = words[1:]
    return " ".join(words).strip().title()


def missing_joints(armature) -> list[str]:
    """Joints of the saved map that have no bone, in region order (the panel lists these first)."""
    bones = {pair.joint: pair.bone for pair in armature.mofind.bone_map}
    return [joint for _, joints in BODY_REGIONS for joint in joints if joint in bones and not bones[joint]]


def detect(armature_name: str) -> tuple[str | None, list[str]]:
    """Fill the armature's list from its bone names; returns (preset, SMPL joints left without a bone)."""
    armature = find_armature(armature_name)
    found = detect_bone_map([bone.name for bone in armature.data.bones])
    rig = armature.mofind
    rig.bone_map.clear()
    for joint in SMPL22_NAMES:
        pair = rig.bone_map.add()
        pair.joint = joint
        pair.bone = found.smpl_to_bone.get(joint, "")
    rig.preset = found.preset or ""
    rig.use_bone_map = True
    return found.preset, list(found.unmatched)


def saved_map(armature) -> dict | None:
    """The edited map in the form `retarget.apply.apply_clip` takes, or None to detect it at apply time."""
    rig = armature.mofind
    if not rig.use_bone_map or not len(rig.bone_map):
        return None
    return {"preset": rig.preset or None,
            "smpl_to_bone": {pair.joint: pair.bone for pair in rig.bone_map if pair.bone}}
