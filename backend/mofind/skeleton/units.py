"""Guess a rig's length unit and up axis from its own geometry (files rarely say)."""

from __future__ import annotations

import numpy as np

# (name, metres per unit) in order of prior likelihood; the first giving a plausible adult height wins.
UNITS = [("m", 1.0), ("cm", 0.01), ("mm", 0.001), ("inch", 0.0254), ("cmu", 0.0254 / 0.45), ("dm", 0.1),
         ("ft", 0.3048)]
PLAUSIBLE_HEIGHT_M = (1.2, 2.3)

# axis name -> rotation taking that axis to +Y (right-handed, so left/right never swap)
TO_Y_UP = {
    "Y": np.eye(3),
    "Z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]]),  # (x, y, z) -> (x, z, -y)
    "-Y": np.array([[1.0, 0.0, 0.0], [0.0, -1.0, 0.0], [0.0, 0.0, -1.0]]),
    "-Z": np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]]),
    "X": np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
    "-X": np.array([[0.0, 1.0, 0.0], [-1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]),
}


def detect_unit(height_in_source_units: float) -> tuple[str, float]:
    """(unit name, metres per unit) for a body `height_in_source_units` tall."""
    lo, hi = PLAUSIBLE_HEIGHT_M
    for name, scale in UNITS:
        if lo <= height_in_source_units * scale <= hi:
            return name, scale
    if not np.isfinite(height_in_source_units) or height_in_source_units <= 0:
        return "m", 1.0
    # nothing plausible (a child, a giant, an odd unit): take the one closest to 1.7 m on a log scale
    name, scale = min(UNITS, key=lambda u: abs(np.log(height_in_source_units * u[1] / 1.7)))
    return name, scale


def detect_up_axis(lower: np.ndarray, upper: np.ndarray) -> str:
    """Up axis ("Y", "Z", "X", or negated) from (T, 3) positions of a low body point (ankles) and a high one
    (head/neck): the dominant component of their median difference."""
    diff = np.median(np.asarray(upper) - np.asarray(lower), axis=0)
    axis = int(np.argmax(np.abs(diff)))
    name = "XYZ"[axis]
    return name if diff[axis] >= 0 else "-" + name


def estimate_height(leg: float, torso: float, neck_to_head: float, head_top: float | None) -> float:
    """Standing height from bone lengths (pose independent), in the same unit as the inputs.

    Proportions (HumanML3D/SMPL): ankle above the floor ~ 0.09 leg, hip below the pelvis joint ~ 0.07 leg,
    top of the skull ~ 1.6 x neck->head above the head joint when the rig has no usable head end site.
    """
    top = head_top if head_top is not None and head_top > 0.5 * neck_to_head else 1.6 * neck_to_head
    return leg * 1.16 + torso + neck_to_head + top
