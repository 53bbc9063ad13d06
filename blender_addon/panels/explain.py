""""Why this clip?": each word of the prompt with the body part and time it matched."""

from __future__ import annotations

import bpy

from .base import MoFindPanel


class MOFIND_PT_explain(MoFindPanel, bpy.types.Panel):
    bl_label = "Why This Clip?"
    bl_parent_id = "MOFIND_PT_results"

    @classmethod
    def poll(cls, context):
        session = context.window_manager.mofind
        return bool(session.explained_clip) and len(session.explanation) > 0

    def draw(self, context):
        session = context.window_manager.mofind
        grid = self.layout.grid_flow(row_major=True, columns=4, even_columns=False, align=True)
        for token in session.explanation:
            grid.label(text=token.word)
            grid.label(text=token.part, icon="BONE_DATA")
            grid.label(text=f"{token.t_start:.1f}–{token.t_end:.1f} s")
            grid.label(text=f"{token.similarity:.2f}")


CLASSES = (MOFIND_PT_explain,)
