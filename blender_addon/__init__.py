"""MoFind: search a mocap library with words and apply clips to your rig (Blender extension).

register()/unregister() only. Every module exports CLASSES; one loop registers them in
order (property groups before the pointers that use them, parent panels before children).
"""

from __future__ import annotations

import bpy

from . import dependencies, operators, panels, prefs, props, service

CLASSES = (*props.CLASSES, *prefs.CLASSES, *operators.CLASSES, *panels.CLASSES)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    props.attach()
    service.start()
    if not dependencies.numpy_available():
        print(f"MoFind: {dependencies.numpy_message()}")
        bpy.app.timers.register(_say_numpy_is_missing, first_interval=0.5)


def _say_numpy_is_missing() -> None:
    """Once the add-on is enabled, in the status bar too (the MoFind panel and the preferences show it anyway)."""
    from .core.status import report_in_status_bar

    report_in_status_bar("WARNING", dependencies.numpy_message())


def unregister() -> None:
    from .core.status import clear_status_bar

    if bpy.app.timers.is_registered(_say_numpy_is_missing):
        bpy.app.timers.unregister(_say_numpy_is_missing)
    clear_status_bar()
    service.stop()
    props.detach()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
