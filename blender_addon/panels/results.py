"""The results list (thumbnail, name, score, duration, frames, source) and what to do with a result."""

from __future__ import annotations

import bpy

from .base import MoFindPanel


class MOFIND_UL_results(bpy.types.UIList):
    bl_idname = "MOFIND_UL_results"

    def draw_item(self, context, layout, data, item, icon, active_data, active_propname, index):
        row = layout.row(align=True)
        if item.icon_id:
            row.label(text=item.name, icon_value=item.icon_id)
        else:
            row.label(text=item.name, icon="ARMATURE_DATA")
        row.label(text=f"{item.score:.3f}")
        row.label(text=f"{item.duration:.1f} s")
        row.label(text=f"{item.start_frame}–{item.end_frame}")


class MOFIND_PT_results(MoFindPanel, bpy.types.Panel):
    bl_label = "Results"
    bl_parent_id = "MOFIND_PT_main"

    @classmethod
    def poll(cls, context):
        return len(context.window_manager.mofind.results) > 0

    def draw_header(self, context):
        self.layout.label(text=context.window_manager.mofind.results_heading)

    def draw(self, context):
        layout = self.layout
        session = context.window_manager.mofind
        layout.template_list("MOFIND_UL_results", "", session, "results", session, "active_result", rows=5)
        if not 0 <= session.active_result < len(session.results):
            return
        item = session.results[session.active_result]
        box = layout.box()
        if item.icon_id:
            box.template_icon(icon_value=item.icon_id, scale=6.0)
        box.label(text=item.source or item.clip_id, icon="FILE")
        details = f"{item.duration:.1f} s at {item.fps:g} fps, frames {item.start_frame}–{item.end_frame}"
        box.label(text=details)
        if item.labels or item.skeleton:
            box.label(text=" · ".join(filter(None, (item.labels, item.skeleton))), icon="BOOKMARKS")
        self.draw_actions(context, layout, session)

    @staticmethod
    def draw_actions(context, layout, session) -> None:
        armature = context.active_object is not None and context.active_object.type == "ARMATURE"
        row = layout.row(align=True)
        row.enabled = armature
        row.operator("mofind.apply_clip", icon="ARMATURE_DATA")
        if session.preview_active:
            row.operator("mofind.preview_end", text="Keep", icon="CHECKMARK").keep = True
            row.operator("mofind.preview_end", text="Revert", icon="LOOP_BACK").keep = False
        else:
            row.operator("mofind.preview", icon="PLAY")
        if not armature:
            layout.label(text="Select an armature to apply clips", icon="INFO")
        row = layout.row(align=True)
        row.operator("mofind.explain", icon="QUESTION")
        row.operator("mofind.similar", icon="ZOOM_ALL")


class MOFIND_PT_apply_options(MoFindPanel, bpy.types.Panel):
    bl_label = "Apply Options"
    bl_parent_id = "MOFIND_PT_results"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        options = context.scene.mofind
        layout.prop(options, "start_frame")
        layout.prop(options, "whole_take")
        layout.prop(options, "in_place")
        layout.prop(options, "match_fps")
        layout.prop(options, "push_to_nla")


CLASSES = (MOFIND_UL_results, MOFIND_PT_results, MOFIND_PT_apply_options)
