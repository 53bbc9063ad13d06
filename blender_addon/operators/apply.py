"""`mofind.apply_clip`: retarget a result onto an armature as one undo step."""

from dataclasses import replace

import bpy
from bpy.props import BoolProperty, EnumProperty, IntProperty, StringProperty

from ..core import motion
from ..retarget.body_check import SCOPE_ITEMS
from .base import MoFindOperator, result_at, target_armature

_OPTION_NAMES = ("in_place", "start_frame", "match_fps", "push_to_nla", "whole_take", "body_scope", "plant_feet",
                 "set_frame_range")


class ApplyOptionsMixin:
    """Apply options; any left unset come from the panel (Scene.mofind)."""

    index: IntProperty(name="Result", default=-1, min=-1, options={"SKIP_SAVE"},
                       description="Result to apply (-1: the active one)")
    armature: StringProperty(name="Armature", options={"SKIP_SAVE"},
                             description="Armature object to animate (default: the active object)")
    in_place: BoolProperty(name="In Place", options={"SKIP_SAVE"})
    start_frame: IntProperty(name="Start Frame", default=1, options={"SKIP_SAVE"})
    match_fps: BoolProperty(name="Match FPS", default=True, options={"SKIP_SAVE"})
    push_to_nla: BoolProperty(name="Push to NLA", options={"SKIP_SAVE"})
    whole_take: BoolProperty(name="Whole Take", options={"SKIP_SAVE"},
                             description="Apply the entire file, not only the matching window")
    body_scope: EnumProperty(name="Body", items=SCOPE_ITEMS, default="FULL", options={"SKIP_SAVE"},
                             description="Body part to animate (Full Body refuses a bone map with gaps)")
    plant_feet: BoolProperty(name="Plant Feet", default=True, options={"SKIP_SAVE"},
                             description="Keep feet still while they are planted in the take (leg IK)")
    set_frame_range: BoolProperty(name="Set Frame Range", default=True, options={"SKIP_SAVE"},
                                  description="Make the scene's frame range the applied action's")

    def apply_options(self, context) -> motion.ApplyOptions:
        scene_options = motion.ApplyOptions.from_scene(context.scene.mofind)
        chosen = {name: getattr(self, name) for name in _OPTION_NAMES if self.properties.is_property_set(name)}
        return replace(scene_options, **chosen)


class MOFIND_OT_apply_clip(ApplyOptionsMixin, MoFindOperator, bpy.types.Operator):
    """Apply the clip to the armature (retargeted, one undo step)"""

    bl_idname = "mofind.apply_clip"
    bl_label = "Apply"
    bl_options = {"REGISTER"}  # the undo step is pushed when the motion arrives, not when the request leaves

    def execute(self, context):
        try:
            clip = result_at(context, self.index)
        except ValueError as exc:
            return self.fail(str(exc))
        return self.run(motion.apply_clip, clip, target_armature(context, self.armature), self.apply_options(context))


CLASSES = (MOFIND_OT_apply_clip,)
