"""The status line shown in the panel and the preferences, and redraws after a reply arrives."""

from __future__ import annotations

import logging

import bpy

log = logging.getLogger(__name__)

_LOG_LEVELS = {"ERROR": logging.ERROR, "WARNING": logging.WARNING}


def session(context=None):
    """`WindowManager.mofind`: the transient results and status of this Blender session."""
    return (context or bpy.context).window_manager.mofind


def set_status(level: str, text: str, context=None) -> None:
    """Show `text` in the panel (level: INFO, OK, BUSY, WARNING or ERROR) and log problems."""
    state = session(context)
    state.status = text
    state.status_level = level
    if level == "OK" and _SHOWN.get("level") == "ERROR":
        clear_status_bar()  # a request just worked: an error banner from an earlier one would now mislead
    if level in _LOG_LEVELS:
        log.log(_LOG_LEVELS[level], "MoFind: %s", text)
    redraw(context)


def redraw(context=None) -> None:
    """Ask the 3D views and the preferences to redraw (replies arrive outside any draw)."""
    wm = (context or bpy.context).window_manager
    for window in wm.windows:
        for area in window.screen.areas:
            if area.type in {"VIEW_3D", "PREFERENCES"}:
                area.tag_redraw()


STATUS_BAR_SECONDS = 15.0


def report_in_status_bar(level: str, text: str) -> None:
    """Show `text` in Blender's status bar (and the Info log) when no operator is running to report it, e.g.
    when a reply arrives from the timer; the panel's status line shows it in full too.

    A report from an operator that Python calls lands in the Info log but never in the status bar's banner,
    so the text also goes into the status bar itself for STATUS_BAR_SECONDS.
    """
    if hasattr(bpy.ops.mofind, "report"):
        try:
            bpy.ops.mofind.report(level=level, message=text)
        except RuntimeError:
            pass  # bpy.ops raises after an ERROR report; the report is in the Info log all the same
    shown = f"MoFind: {text}"

    def draw(header, _context) -> None:
        row = header.layout.row()
        row.alert = level == "ERROR"
        row.label(text=shown, icon="ERROR" if level in _LOG_LEVELS else "INFO")

    workspaces = _workspaces()
    for workspace in workspaces:
        workspace.status_text_set(draw)
    _SHOWN.update(text=shown, level=level)
    if workspaces and not bpy.app.timers.is_registered(_clear_status_bar):
        bpy.app.timers.register(_clear_status_bar, first_interval=STATUS_BAR_SECONDS)


_SHOWN: dict[str, str] = {}


def _workspaces() -> list:
    wm = bpy.context.window_manager
    return [window.workspace for window in (wm.windows if wm is not None else ()) if window.workspace is not None]


def _clear_status_bar() -> None:
    """Give the status bar back to Blender's own hints (once per shown message)."""
    _SHOWN.pop("level", None)
    if _SHOWN.pop("text", None) is not None:
        for workspace in _workspaces():
            workspace.status_text_set(None)


def clear_status_bar() -> None:
    """Remove a shown message now (unregister: the status bar must not keep drawing with the add-on's code)."""
    if bpy.app.timers.is_registered(_clear_status_bar):
        bpy.app.timers.unregister(_clear_status_bar)
    _clear_status_bar()
