"""Bone Map: the active armature's joint → bone list, editable, used by Apply and Preview."""

from __future__ import annotations

import bpy

from .base import MoFindPanel


class MOFIND_UL_bone_map(bpy.types.UIList):
    bl_idname = "MOFIND_UL_bone_map"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        row.label(text=item.joint.replace("_", " "), icon="BONE_DATA" if item.bone else "ERROR")
        row.prop_search(item, "bone", context.active_object.data, "bones", text="")


class MOFIND_PT_bone_map(MoFindPanel, bpy.types.Panel):
    bl_label = "Bone Map"
    bl_parent_id = "MOFIND_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    @classmethod
    def poll(cls, context):
        return context.active_object is not None and context.active_object.type == "ARMATURE"

    def draw(self, context):
        layout = self.layout
        rig = context.active_object.mofind
        if not len(rig.bone_map):
            layout.label(text="Detected automatically at every apply", icon="INFO")
            layout.operator("mofind.detect_bones", text="Detect and Edit", icon="BONE_DATA")
            return
        row = layout.row()
        row.prop(rig, "use_bone_map")
        row.label(text=f"Preset: {rig.preset}" if rig.preset else "Matched by bone names")
        layout.template_list("MOFIND_UL_bone_map", "", rig, "bone_map", rig, "active_pair", rows=6)
        layout.operator("mofind.detect_bones", text="Detect Again", icon="FILE_REFRESH")


CLASSES = (MOFIND_UL_bone_map, MOFIND_PT_bone_map)
