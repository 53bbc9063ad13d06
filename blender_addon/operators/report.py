"""`mofind.report`: put a message in Blender's status bar from code that runs outside an operator."""

import bpy
from bpy.props import EnumProperty, StringProperty


class MOFIND_OT_report(bpy.types.Operator):
    """Show a MoFind message in the status bar"""

    bl_idname = "mofind.report"
    bl_label = "MoFind Message"
    bl_options = {"INTERNAL"}

    level: EnumProperty(items=[("ERROR", "Error", ""), ("WARNING", "Warning", ""), ("INFO", "Info", "")],
                        default="ERROR", options={"SKIP_SAVE"})
    message: StringProperty(options={"SKIP_SAVE"})

    def execute(self, context):
        self.report({self.level}, self.message)
        return {"FINISHED"}


CLASSES = (MOFIND_OT_report,)
