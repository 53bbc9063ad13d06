"""What every MoFind operator shares: the `wait` option, result lookup, and turning errors into reports.

Failures are reported as WARNING, not ERROR: Blender raises RuntimeError from `bpy.ops` calls
that report an ERROR, and a script driving MoFind should get `{'CANCELLED'}` and a message
(also shown in the panel's status line), not an exception, when the backend is down.
"""

from bpy.props import BoolProperty

from .. import service
from ..core.motion import ClipRef
from ..core.status import session, set_status


class MoFindOperator:
    """Mixin for operators that talk to the backend."""

    wait: BoolProperty(
        name="Wait", default=False, options={"SKIP_SAVE", "HIDDEN"},
        description="Block until the backend has answered (for scripts and tests; the UI never waits)",
    )

    def run(self, action, *args, **kwargs) -> set[str]:
        """Call a core function as `action(service, *args, wait=self.wait, **kwargs)` and report its outcome."""
        try:
            ticket = action(service.get(), *args, wait=self.wait, **kwargs)
        except (ValueError, RuntimeError) as exc:
            return self.fail(str(exc))
        if ticket.done and ticket.failure is not None:
            return self.fail(ticket.failure.message)
        if ticket.done:
            self.report({"INFO"}, session().status or "Done")
        return {"FINISHED"}

    def fail(self, message: str) -> set[str]:
        state = session()
        if (state.status, state.status_level) != (message, "ERROR"):  # core callbacks may have shown it already
            set_status("ERROR", message)
        self.report({"WARNING"}, message)
        return {"CANCELLED"}


def result_at(context, index: int) -> ClipRef:
    """The result at `index` (-1: the active one), or a clear error."""
    state = context.window_manager.mofind
    if not len(state.results):
        raise ValueError("There are no results yet: search first.")
    position = state.active_result if index < 0 else index
    if not 0 <= position < len(state.results):
        raise ValueError(f"There is no result #{position}: the list has {len(state.results)} clips.")
    return ClipRef.from_result(state.results[position])


def target_armature(context, name: str) -> str:
    """The armature named by the operator, else the active object's name ('' when nothing is active)."""
    if name:
        return name
    obj = context.active_object
    return obj.name if obj is not None else ""
