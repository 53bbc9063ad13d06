"""Rotation conversions shared by the BVH reader/writer (thin wrappers over scipy).

scipy's `Rotation` is vectorised C code and handles every Euler sequence; BVH channel lists map
directly onto its intrinsic (upper-case) sequences: "Zrotation Xrotation Yrotation" means
R = Rz @ Rx @ Ry, i.e. `Rotation.from_euler("ZXY", ...)`.
Quaternions in MoFind are always w,x,y,z (scalar first).
"""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation


def euler_to_rotation(angles_deg: np.ndarray, order: str) -> Rotation:
    """(N, len(order)) angles in degrees, applied in channel order -> scipy Rotation of length N."""
    return Rotation.from_euler(order.upper(), np.asarray(angles_deg, dtype=np.float64).reshape(-1, len(order)),
                               degrees=True)


def quat_wxyz_to_rotation(quats: np.ndarray) -> Rotation:
    return Rotation.from_quat(np.asarray(quats, dtype=np.float64).reshape(-1, 4), scalar_first=True)


def rotation_to_quat_wxyz(rot: Rotation) -> np.ndarray:
    """Unit quaternions with w >= 0 (a canonical sign keeps interpolation and tests stable)."""
    q = rot.as_quat(scalar_first=True)
    q[q[:, 0] < 0] *= -1.0
    return q


def quat_wxyz_to_euler(quats: np.ndarray, order: str) -> np.ndarray:
    """(N, 4) w,x,y,z -> (N, 3) Euler angles in degrees for an intrinsic axis order like "ZXY"."""
    import warnings

    with warnings.catch_warnings():  # gimbal lock: scipy warns but the angles still reproduce the rotation
        warnings.simplefilter("ignore", UserWarning)
        return quat_wxyz_to_rotation(quats).as_euler(order.upper(), degrees=True)


def axis_angle_quat(axis: str | np.ndarray, angle_rad: np.ndarray) -> np.ndarray:
    """Quaternions (N, 4) w,x,y,z rotating by `angle_rad` (N,) about a unit axis ("X"/"Y"/"Z" or a 3-vector)."""
    if isinstance(axis, str):
        axis = np.eye(3)["XYZ".index(axis.upper())]
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    half = 0.5 * np.asarray(angle_rad, dtype=np.float64).reshape(-1)
    return np.concatenate([np.cos(half)[:, None], np.sin(half)[:, None] * axis[None, :]], axis=1)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product of w,x,y,z quaternions, broadcasting over leading axes."""
    aw, ax, ay, az = np.moveaxis(np.asarray(a, dtype=np.float64), -1, 0)
    bw, bx, by, bz = np.moveaxis(np.asarray(b, dtype=np.float64), -1, 0)
    return np.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], axis=-1)
