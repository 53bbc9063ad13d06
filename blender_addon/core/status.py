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
