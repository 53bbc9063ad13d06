"""Bulk Index: choose a folder, start indexing, watch progress, cancel."""

from __future__ import annotations

import bpy

from ..ui.text import draw_wrapped
from .base import MoFindPanel


class MOFIND_PT_index(MoFindPanel, bpy.types.Panel):
    bl_label = "Bulk Index"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        options = context.scene.mofind
        session = context.window_manager.mofind
        layout.prop(options, "index_folder")
        layout.prop(options, "index_recursive")
        running = session.job_state == "RUNNING"
        if running:
            factor = session.job_done / session.job_total if session.job_total else 0.0
            layout.progress(factor=factor, type="BAR", text=session.job_message)
            layout.operator("mofind.index_cancel", icon="CANCEL")
        else:
            row = layout.row()
            row.enabled = bool(options.index_folder)
            row.operator("mofind.index_folder", icon="FILE_REFRESH")
            if session.job_message:
                draw_wrapped(layout, context, session.job_message,
                             icon="CHECKMARK" if session.job_state == "DONE" else "INFO")
        if session.index_clips:
            layout.label(text=f"{session.index_clips} clips in the index")


CLASSES = (MOFIND_PT_index,)
