"""MoFind: search a mocap library with words and apply clips to your rig (Blender extension).

register()/unregister() only. Every module exports CLASSES; one loop registers them in
order (property groups before the pointers that use them, parent panels before children).
"""

from __future__ import annotations

import bpy

from . import operators, panels, prefs, props, service

CLASSES = (*props.CLASSES, *prefs.CLASSES, *operators.CLASSES, *panels.CLASSES)


def register() -> None:
    for cls in CLASSES:
        bpy.utils.register_class(cls)
    props.attach()
    service.start()


def unregister() -> None:
    service.stop()
    props.detach()
    for cls in reversed(CLASSES):
        bpy.utils.unregister_class(cls)
