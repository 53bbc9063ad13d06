"""Where every MoFind panel lives: the 3D viewport's sidebar, tab "MoFind"."""

from __future__ import annotations

from ..prefs import status_icon


class MoFindPanel:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "MoFind"


def draw_status(layout, session) -> None:
    """The one-line status (last reply, error or progress) under the search box."""
    if session.status:
        layout.label(text=session.status, icon=status_icon(session.status_level))
