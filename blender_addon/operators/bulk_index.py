"""`mofind.index_folder` and `mofind.index_cancel`: bulk indexing in the backend, with progress."""

import bpy
from bpy.props import BoolProperty, StringProperty

from ..core import indexing
from .base import MoFindOperator


class MOFIND_OT_index_folder(MoFindOperator, bpy.types.Operator):
    """Index every motion file in the folder (the backend works in the background)"""

    bl_idname = "mofind.index_folder"
    bl_label = "Index Folder"
    bl_options = {"REGISTER"}

    folder: StringProperty(name="Folder", subtype="DIR_PATH", options={"SKIP_SAVE"},
                           description="Folder to index (default: the panel's folder)")
    recursive: BoolProperty(name="Recursive", default=True, options={"SKIP_SAVE"})

    def execute(self, context):
        options = context.scene.mofind
        folder = self.folder or options.index_folder
        recursive = self.recursive if self.properties.is_property_set("recursive") else options.index_recursive
        outcome = self.run(indexing.start, folder, recursive)
        state = context.window_manager.mofind
        if self.wait and state.job_state == "FAILED":
            return self.fail(state.job_message)
        return outcome


class MOFIND_OT_index_cancel(MoFindOperator, bpy.types.Operator):
    """Stop the running indexing job (files already indexed stay in the index)"""

    bl_idname = "mofind.index_cancel"
    bl_label = "Cancel Indexing"
    bl_options = {"REGISTER"}

    def execute(self, context):
        return self.run(indexing.cancel)


CLASSES = (MOFIND_OT_index_folder, MOFIND_OT_index_cancel)
