"""`mofind.preview` (play a clip on the rig; Esc reverts, Enter keeps) and `mofind.preview_end`."""

import bpy
from bpy.props import BoolProperty

from .. import service
from ..core import preview
from .apply import ApplyOptionsMixin
from .base import MoFindOperator, result_at, target_armature

HEADER = "MoFind preview: Enter keeps the clip, Esc reverts"


class MOFIND_OT_preview(ApplyOptionsMixin, MoFindOperator, bpy.types.Operator):
    """Play the clip on the armature; Esc puts the rig back, Enter keeps the animation"""

    bl_idname = "mofind.preview"
    bl_label = "Preview"
    bl_options = {"REGISTER"}

    def start(self, context):
        try:
            clip = result_at(context, self.index)
            armature = target_armature(context, self.armature)
            return preview.begin(service.get(), clip, armature, self.apply_options(context), wait=self.wait)
        except (ValueError, RuntimeError) as exc:
            self.fail(str(exc))
            return None

    def execute(self, context):
        """Scripts: start the preview and leave it running; end it with mofind.preview_end."""
        ticket = self.start(context)
        if ticket is None:
            return {"CANCELLED"}
        if ticket.done and ticket.failure is not None:
            return self.fail(ticket.failure.message)
        return {"FINISHED"}

    def invoke(self, context, event):
        self._ticket = self.start(context)
        if self._ticket is None:
            return {"CANCELLED"}
        if self._ticket.done and self._ticket.failure is not None:
            return self.fail(self._ticket.failure.message)
        self._playing = False
        self._timer = context.window_manager.event_timer_add(0.1, window=context.window)
        context.window_manager.modal_handler_add(self)
        if context.area is not None:
            context.area.header_text_set(HEADER)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        ticket = self._ticket
        if ticket.done and ticket.failure is not None:
            self._finish(context)
            return self.fail(ticket.failure.message)
        if event.type == "TIMER" and ticket.done and not self._playing and context.screen is not None:
            if not context.screen.is_animation_playing:
                bpy.ops.screen.animation_play()
            self._playing = True
        if event.type in {"ESC", "RIGHTMOUSE"} and event.value == "PRESS":
            self._finish(context)
            preview.end(service.get(), keep=False)
            return {"CANCELLED"}
        if event.type in {"RET", "NUMPAD_ENTER"} and event.value == "PRESS" and ticket.done:
            self._finish(context)
            self.report({"INFO"}, preview.end(service.get(), keep=True))
            return {"FINISHED"}
        return {"PASS_THROUGH"}

    def _finish(self, context) -> None:
        context.window_manager.event_timer_remove(self._timer)
        if context.area is not None:
            context.area.header_text_set(None)
        if self._playing and context.screen is not None and context.screen.is_animation_playing:
            bpy.ops.screen.animation_cancel(restore_frame=False)


class MOFIND_OT_preview_end(bpy.types.Operator):
    """End the running preview: keep the clip on the rig, or put the rig back as it was"""

    bl_idname = "mofind.preview_end"
    bl_label = "End Preview"
    bl_options = {"REGISTER"}

    keep: BoolProperty(name="Keep", default=False, options={"SKIP_SAVE"},
                       description="Keep the previewed animation (otherwise revert)")

    def execute(self, context):
        running = service.active()
        if running is None or running.preview is None:
            self.report({"WARNING"}, "No MoFind preview is running.")
            return {"CANCELLED"}
        self.report({"INFO"}, preview.end(running, keep=self.keep))
        return {"FINISHED"}


CLASSES = (MOFIND_OT_preview, MOFIND_OT_preview_end)
