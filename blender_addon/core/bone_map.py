"""A rig's bone map: detect it once, let the user fix it in a list, and apply clips with it.

Detection and checking are engineer F's `retarget.mapping`; this module only moves the map
between that plain dict and the armature's `Object.mofind.bone_map` rows.
"""

from __future__ import annotations

from ..retarget.mapping import SMPL22_NAMES, detect_bone_map
from .motion import find_armature


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
