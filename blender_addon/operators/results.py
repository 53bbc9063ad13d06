"""`mofind.select_result`: make a result row the active one (its tooltip is the take's full path)."""

import bpy
from bpy.props import IntProperty


class MOFIND_OT_select_result(bpy.types.Operator):
    """Show this take in the box below the list; Apply, Preview and Why act on it"""

    bl_idname = "mofind.select_result"
    bl_label = "Select Result"
    bl_options = {"INTERNAL"}

    index: IntProperty(name="Result", default=0, min=0, options={"SKIP_SAVE"})

    @classmethod
    def description(cls, context, properties):
        results = context.window_manager.mofind.results
        if 0 <= properties.index < len(results):
            item = results[properties.index]
            return f"{item.source or item.clip_id}\nframes {item.start_frame}–{item.end_frame}"
        return cls.__doc__

    def execute(self, context):
        state = context.window_manager.mofind
        if not 0 <= self.index < len(state.results):
            self.report({"WARNING"}, f"There is no result #{self.index}.")
            return {"CANCELLED"}
        state.active_result = self.index
        return {"FINISHED"}


CLASSES = (MOFIND_OT_select_result,)
