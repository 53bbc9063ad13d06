"""`mofind.select_result`: make a result row the active one (its tooltip is the take's full path);
`mofind.results_page`: turn the list's pages."""

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


class MOFIND_OT_results_page(bpy.types.Operator):
    """Show the previous or next page of results"""

    bl_idname = "mofind.results_page"
    bl_label = "Turn Results Page"
    bl_options = {"INTERNAL"}

    step: IntProperty(name="Step", default=1, options={"SKIP_SAVE"})
    page_size: IntProperty(name="Page Size", default=5, min=1, options={"SKIP_SAVE"})

    def execute(self, context):
        state = context.window_manager.mofind
        pages = max(1, -(-len(state.results) // self.page_size))
        state.results_page = min(max(state.results_page + self.step, 1), pages)
        return {"FINISHED"}


CLASSES = (MOFIND_OT_select_result, MOFIND_OT_results_page)
