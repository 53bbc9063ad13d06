"""The MoFind panel: prompt, Search, filters and the status line."""

from __future__ import annotations

import bpy

from ..dependencies import numpy_available
from .base import MoFindPanel, draw_numpy_notice, draw_status


class MOFIND_PT_main(MoFindPanel, bpy.types.Panel):
    bl_label = "MoFind"
    bl_idname = "MOFIND_PT_main"

    def draw(self, context):
        layout = self.layout
        options = context.scene.mofind
        session = context.window_manager.mofind
        layout.prop(options, "prompt", text="", icon="VIEWZOOM")
        row = layout.row(align=True)
        row.prop(options, "k")
        searching = row.row(align=True)
        searching.enabled = not session.search_pending
        searching.operator("mofind.search", text="Searching…" if session.search_pending else "Search",
                           icon="SORTTIME" if session.search_pending else "VIEWZOOM")
        draw_status(layout, context, session)
        if not numpy_available() and not len(session.results):
            draw_numpy_notice(layout, context)


class MOFIND_PT_filters(MoFindPanel, bpy.types.Panel):
    bl_label = "Filters"
    bl_parent_id = "MOFIND_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        layout.use_property_split = True
        options = context.scene.mofind
        col = layout.column(align=True)
        col.prop(options, "min_duration", text="Min Duration")  # a column heading shows only beside checkboxes
        col.prop(options, "max_duration", text="Max Duration")
        layout.prop(options, "path_prefix")
        layout.prop(options, "label")
        layout.prop(options, "skeleton")
        layout.prop(options, "names_weight")


CLASSES = (MOFIND_PT_main, MOFIND_PT_filters)
