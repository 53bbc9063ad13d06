"""`mofind.search` and `mofind.similar`: fill the results list."""

import bpy
from bpy.props import IntProperty, StringProperty

from ..core import search
from .base import MoFindOperator, result_at


class MOFIND_OT_search(MoFindOperator, bpy.types.Operator):
    """Search the motion library for clips matching the prompt"""

    bl_idname = "mofind.search"
    bl_label = "Search"
    bl_options = {"REGISTER"}

    prompt: StringProperty(name="Prompt", options={"SKIP_SAVE"}, description="Text query (default: the panel's prompt)")
    k: IntProperty(name="Results", default=0, min=0, max=200, options={"SKIP_SAVE"},
                   description="How many clips (0: the panel's setting)")

    def execute(self, context):
        options = context.scene.mofind
        prompt = self.prompt or options.prompt
        return self.run(search.search, prompt, self.k or options.k, search.filters_from_scene(options),
                        names_weight=search.names_weight_from_scene(options))


class MOFIND_OT_similar(MoFindOperator, bpy.types.Operator):
    """Find clips that move like this one"""

    bl_idname = "mofind.similar"
    bl_label = "Find Similar"
    bl_options = {"REGISTER"}

    index: IntProperty(name="Result", default=-1, min=-1, options={"SKIP_SAVE"},
                       description="Result to start from (-1: the active one)")
    k: IntProperty(name="Results", default=0, min=0, max=200, options={"SKIP_SAVE"})

    def execute(self, context):
        try:
            clip = result_at(context, self.index)
        except ValueError as exc:
            return self.fail(str(exc))
        options = context.scene.mofind
        return self.run(search.similar, clip.clip_id, clip.name, clip.start_frame, self.k or options.k,
                        search.filters_from_scene(options))


CLASSES = (MOFIND_OT_search, MOFIND_OT_similar)
