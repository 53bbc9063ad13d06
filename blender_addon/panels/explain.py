""""Why this clip?": each word of the prompt with the body part and time it matched.

Two lines per word instead of a four-column grid: at the sidebar's default width a grid cell is
~60 px, which cut words and body parts to "ro…"/"lef…".
"""

from __future__ import annotations

import bpy

from ..ui.text import draw_wrapped, fitting_lines
from .base import MoFindPanel


def token_facts(token) -> list[str]:
    return [token.part, f"{token.t_start:.1f}–{token.t_end:.1f} s", f"match {token.similarity:.2f}"]


class MOFIND_PT_explain(MoFindPanel, bpy.types.Panel):
    bl_label = "Why This Clip?"
    bl_parent_id = "MOFIND_PT_results"

    @classmethod
    def poll(cls, context):
        session = context.window_manager.mofind
        return bool(session.explained_clip) and len(session.explanation) > 0

    def draw(self, context):
        session = context.window_manager.mofind
        clip = next((item for item in session.results if item.clip_id == session.explained_clip), None)
        if clip is not None:
            draw_wrapped(self.layout, context, f"{clip.short_name or clip.name}: each word, the body part and "
                         "moment it matched best", icon="QUESTION")
        column = self.layout.column(align=True)
        for token in session.explanation:
            column.label(text=f"“{token.word}”")
            for line in fitting_lines(context, token_facts(token), reserved_units=1.0):
                column.label(text=line, icon="BLANK1")
            column.separator(factor=0.5)


CLASSES = (MOFIND_PT_explain,)
