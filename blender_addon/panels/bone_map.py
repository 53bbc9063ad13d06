"""Bone Map: the active armature's joint → bone list, editable, used by Apply and Preview.

Grouped by body region (torso, arms, legs), with the joints that have no bone first and in red,
so a rig's gaps are the first thing seen, not row 17 of a scrolled list in SMPL order.
"""

from __future__ import annotations

import bpy

from ..core.bone_map import BODY_REGIONS, joint_label, missing_joints
from ..ui.text import draw_wrapped
from .base import MoFindPanel

LABEL_FACTOR = 0.34  # share of the width for the joint's name; the rest is the bone field


def draw_pair(layout, armature, pair, text: str, *, alert: bool = False) -> None:
    split = layout.split(factor=LABEL_FACTOR, align=True)
    split.alert = alert
    split.label(text=text)
    split.prop_search(pair, "bone", armature.data, "bones", text="", icon="BONE_DATA")


class MOFIND_PT_bone_map(MoFindPanel, bpy.types.Panel):
    bl_label = "Bone Map"
    bl_parent_id = "MOFIND_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        return context.active_object is not None and context.active_object.type == "ARMATURE"

    def draw(self, context):
        layout = self.layout
        armature = context.active_object
        rig = armature.mofind
        if not len(rig.bone_map):
            draw_wrapped(layout, context, "Detected automatically at every apply", icon="INFO")
            layout.operator("mofind.detect_bones", text="Detect and Edit", icon="BONE_DATA")
            return
        layout.prop(rig, "use_bone_map")
        draw_wrapped(layout, context, f"Preset: {rig.preset}" if rig.preset else "Matched by bone names",
                     icon="ARMATURE_DATA")
        pairs = {pair.joint: pair for pair in rig.bone_map}
        missing = missing_joints(armature)
        if missing:
            box = layout.box()
            box.alert = True
            draw_wrapped(box, context, f"No bone for {len(missing)} joint{'s' if len(missing) > 1 else ''}: "
                         "pick the bone that plays each", icon="ERROR", reserved_units=0.6)
            for joint in missing:
                draw_pair(box, armature, pairs[joint], joint_label(joint, with_side=True), alert=True)
        for region, joints in BODY_REGIONS:
            mapped = [joint for joint in joints if joint in pairs and joint not in missing]
            if not mapped:
                continue
            column = layout.column(align=True)
            column.label(text=region)
            for joint in mapped:
                draw_pair(column, armature, pairs[joint], joint_label(joint))
        layout.operator("mofind.detect_bones", text="Detect Again", icon="FILE_REFRESH")


CLASSES = (MOFIND_PT_bone_map,)
