"""`mofind.explain`: "Why this clip?" — which words matched which body part, and when."""

import bpy
from bpy.props import IntProperty, StringProperty

from ..core import explain
from .base import MoFindOperator, result_at


class MOFIND_OT_explain(MoFindOperator, bpy.types.Operator):
    """Show which body part and moment each word of the prompt matched in this clip"""

    bl_idname = "mofind.explain"
    bl_label = "Why This Clip?"
    bl_options = {"REGISTER"}

    index: IntProperty(name="Result", default=-1, min=-1, options={"SKIP_SAVE"},
                       description="Result to explain (-1: the active one)")
    prompt: StringProperty(name="Prompt", options={"SKIP_SAVE"},
                           description="Words to explain (default: the search that found the results)")

    def execute(self, context):
        try:
            clip = result_at(context, self.index)
        except ValueError as exc:
            return self.fail(str(exc))
        state = context.window_manager.mofind
        # the words that found the results: the backend's shorter prompt when it left words out (quality.relaxed)
        query = self.prompt or state.results_relaxed or state.results_query or context.scene.mofind.prompt
        return self.run(explain.explain, clip, query)


CLASSES = (MOFIND_OT_explain,)
