"""Where every MoFind panel lives (the 3D viewport's sidebar, tab "MoFind") and what several panels draw."""

from __future__ import annotations

from ..dependencies import numpy_message_lines
from ..prefs import status_icon
from ..ui.text import draw_wrapped


class MoFindPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "MoFind"


def draw_status(layout, context, session) -> None:
    """The status (last reply, error or progress) under the search box, in full: errors in a red box."""
    if not session.status:
        return
    if session.status_level in {"ERROR", "WARNING"}:
        box = layout.box()
        box.alert = session.status_level == "ERROR"
        draw_wrapped(box, context, session.status, icon=status_icon(session.status_level), reserved_units=0.6)
    else:
        draw_wrapped(layout, context, session.status, icon=status_icon(session.status_level))


def draw_numpy_notice(layout, context) -> None:
    """Blender without numpy (a distribution's package): say what does not work and how to fix it."""
    box = layout.box()
    box.alert = True
    draw_wrapped(box, context, numpy_message_lines(), icon="ERROR", reserved_units=0.6)
