"""`mofind.detect_bones`: fill the armature's editable bone map from its bone names."""

import bpy
from bpy.props import StringProperty

from ..core import bone_map
from ..core.status import set_status
from .base import target_armature


class MOFIND_OT_detect_bones(bpy.types.Operator):
    """Match the armature's bones to the motion's joints (edit the list afterwards if a bone is wrong)"""

    bl_idname = "mofind.detect_bones"
    bl_label = "Detect Bones"
    bl_options = {"REGISTER", "UNDO"}

    armature: StringProperty(name="Armature", options={"SKIP_SAVE"},
                             description="Armature object (default: the active object)")

    def execute(self, context):
        name = target_armature(context, self.armature)
        try:
            preset, unmatched = bone_map.detect(name)
        except ValueError as exc:
            self.report({"WARNING"}, str(exc))
            return {"CANCELLED"}
        found = f"{name}: {'preset ' + preset if preset else 'matched by bone names'}"
        message = f"{found}; no bone for {', '.join(unmatched)}" if unmatched else f"{found}; all 22 joints mapped"
        set_status("WARNING" if unmatched else "OK", message)
        self.report({"INFO"}, message)
        return {"FINISHED"}


CLASSES = (MOFIND_OT_detect_bones,)
