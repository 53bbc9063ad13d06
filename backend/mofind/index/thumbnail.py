"""A small filmstrip PNG per clip: a few stick-figure poses drawn from the SMPL-22 joints.

Why PIL and not a renderer: the backend must stay headless and light; four 64x64 stick figures are
enough for an animator to tell a wave from a walk in the result list.
"""

from __future__ import annotations

import io

import numpy as np

from mofind.skeleton.smpl import SMPL22_PARENTS

LEFT = {1, 4, 7, 10, 13, 16, 18, 20}
RIGHT = {2, 5, 8, 11, 14, 17, 19, 21}
BACKGROUND = (43, 43, 43)
COLOURS = {"left": (90, 160, 255), "right": (255, 140, 70), "centre": (220, 220, 220)}
SUPERSAMPLE = 2
YAW_DEGREES = 30.0  # a three-quarter view shows both arm raises and leg swings


def filmstrip_png(joints: np.ndarray, frames: int = 4, cell: int = 64) -> bytes:
    """(T, 22, 3) metres, Y-up, facing +Z -> PNG bytes of `frames` poses side by side (cell*frames x cell)."""
    from PIL import Image, ImageDraw

    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (22, 3) or len(joints) == 0:
        raise ValueError(f"expected SMPL-22 joints (T, 22, 3), got {joints.shape}")
    picks = np.linspace(0, len(joints) - 1, frames).round().astype(int)
    screen = _project(joints[picks])  # (frames, 22, 2), y up
    height = max(float(np.ptp(joints[..., 1])), 0.5)
    scale = 0.8 * cell * SUPERSAMPLE / height
    size = cell * SUPERSAMPLE
    image = Image.new("RGB", (size * frames, size), BACKGROUND)
    draw = ImageDraw.Draw(image)
    floor = float(joints[..., 1].min())
    width = max(2, SUPERSAMPLE * 2)
    for k, pose in enumerate(screen):
        centre_x = pose[0, 0]
        px = (pose[:, 0] - centre_x) * scale + size * (k + 0.5)
        py = size * 0.92 - (pose[:, 1] - floor) * scale
        for child, parent in enumerate(SMPL22_PARENTS):
            if parent < 0:
                continue
            side = "left" if child in LEFT else "right" if child in RIGHT else "centre"
            draw.line([(px[parent], py[parent]), (px[child], py[child])], fill=COLOURS[side], width=width)
        head = 0.06 * scale
        draw.ellipse([px[15] - head, py[15] - head, px[15] + head, py[15] + head], outline=COLOURS["centre"],
                     width=width)
    image = image.resize((cell * frames, cell), Image.BOX).quantize(colors=16, dither=Image.Dither.NONE)
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=6)
    return out.getvalue()


def _project(joints: np.ndarray) -> np.ndarray:
    """Orthographic view from the front, turned by YAW_DEGREES: screen x = right, screen y = up."""
    yaw = np.radians(YAW_DEGREES)
    x = joints[..., 0] * np.cos(yaw) + joints[..., 2] * np.sin(yaw)
    return np.stack([x, joints[..., 1]], axis=-1)
