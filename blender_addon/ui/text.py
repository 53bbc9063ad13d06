"""Text that fits the sidebar: measure with Blender's UI font, wrap, and draw as stacked labels."""

from __future__ import annotations

import blf

from .wrap import Measure, join_fitting, wrap

LABEL_FONT = 0  # blf's default font id: the one Blender's UI labels use
REGION_OVERHEAD_UNITS = 3.6  # category tabs + panel margins + label padding, in UI units


def ui_scale(context) -> float:
    """Blender's UI scale (1.0 where Blender reports none: headless Blender says 0)."""
    return float(context.preferences.system.ui_scale) or 1.0


def measurer(context) -> Measure:
    """Width in pixels of a string in the UI label font at the current scale (a char estimate without a UI)."""
    points = float(context.preferences.ui_styles[0].widget.points) * ui_scale(context)

    def measure(text: str) -> float:
        blf.size(LABEL_FONT, points)
        return blf.dimensions(LABEL_FONT, text)[0]

    if measure("MoFind") <= 0:  # headless Blender has no fonts loaded
        return lambda text: len(text) * 0.55 * points
    return measure


def text_width(context, *, reserved_units: float = 0.0) -> float:
    """Pixels a label's text may use in this region: the region less the category tabs, the panel's margins,
    the label's own padding and `reserved_units` (icons, box borders, columns beside it) in UI units (20 px at
    scale 1). Measured in Blender 4.3's sidebar: a 291 px region leaves ~205 px for a label's text."""
    unit = 20.0 * ui_scale(context)
    region = context.region
    width = region.width if region is not None else 300.0 * ui_scale(context)
    return max(width - REGION_OVERHEAD_UNITS * unit - reserved_units * unit, 4 * unit)


def draw_wrapped(layout, context, text: str, *, icon: str = "NONE", reserved_units: float = 0.0) -> int:
    """`text` as as many labels as it needs; an icon sits on the first line only. Returns the line count."""
    has_icon = icon != "NONE"
    lines = wrap(text, text_width(context, reserved_units=reserved_units + (1.0 if has_icon else 0.0)),
                 measurer(context))
    column = layout.column(align=True)
    for number, line in enumerate(lines):
        column.label(text=line, icon=icon if number == 0 else ("BLANK1" if has_icon else "NONE"))
    return len(lines)


def fitting_lines(context, pieces: list[str], *, reserved_units: float = 0.0) -> list[str]:
    """Short facts joined with " · " on as few lines as fit the region."""
    return join_fitting(pieces, text_width(context, reserved_units=reserved_units), measurer(context))


def wrapped_lines(context, text: str, *, reserved_units: float = 0.0) -> list[str]:
    return wrap(text, text_width(context, reserved_units=reserved_units), measurer(context))
