"""Vectorised rotation helpers (numpy only; Blender ships numpy but not scipy).

Quaternions are (..., 4) arrays in **w, x, y, z** order, the order of the wire protocol and of
Blender's `rotation_quaternion`. Rotation matrices act on column vectors (v' = R @ v), so
`child_world = parent_world @ local`, as in BVH and in Blender's pose evaluation.
"""

from __future__ import annotations

import numpy as np


def normalize(v: np.ndarray, axis: int = -1, eps: float = 1e-12) -> np.ndarray:
    """Unit vectors along `axis`; zero vectors stay zero instead of becoming NaN."""
    norm = np.linalg.norm(v, axis=axis, keepdims=True)
    return v / np.maximum(norm, eps)


def quat_to_matrix(q: np.ndarray) -> np.ndarray:
    """(..., 4) w,x,y,z -> (..., 3, 3); the quaternion is normalised first."""
    q = normalize(np.asarray(q, dtype=np.float64))
    w, x, y, z = np.moveaxis(q, -1, 0)
    m = np.empty(q.shape[:-1] + (3, 3))
    m[..., 0, 0] = 1 - 2 * (y * y + z * z)
    m[..., 0, 1] = 2 * (x * y - w * z)
    m[..., 0, 2] = 2 * (x * z + w * y)
    m[..., 1, 0] = 2 * (x * y + w * z)
    m[..., 1, 1] = 1 - 2 * (x * x + z * z)
    m[..., 1, 2] = 2 * (y * z - w * x)
    m[..., 2, 0] = 2 * (x * z - w * y)
    m[..., 2, 1] = 2 * (y * z + w * x)
    m[..., 2, 2] = 1 - 2 * (x * x + y * y)
    return m


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """(..., 3, 3) rotation -> (..., 4) unit quaternion with w >= 0 (Shepperd's stable branch choice)."""
    m = np.asarray(m, dtype=np.float64)
    (m00, m01, m02), (m10, m11, m12), (m20, m21, m22) = (np.moveaxis(row, -1, 0) for row in np.moveaxis(m, -2, 0))
    trace = m00 + m11 + m22
    # Four formulas for 4*q*q_k; each is accurate when its leading diagonal term is the largest.
    candidates = np.array([
        [1 + trace, m21 - m12, m02 - m20, m10 - m01],
        [m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20],
        [m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21],
        [m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22],
    ])
    candidates = np.moveaxis(candidates, (0, 1), (-2, -1))
    best = np.argmax(np.stack([trace, m00, m11, m22], -1), axis=-1)
    q = normalize(np.take_along_axis(candidates, best[..., None, None], axis=-2)[..., 0, :])
    return np.where(q[..., :1] < 0, -q, q)


def quat_multiply(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Hamilton product a * b (apply b first, then a)."""
    aw, ax, ay, az = np.moveaxis(a, -1, 0)
    bw, bx, by, bz = np.moveaxis(b, -1, 0)
    return np.stack(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        axis=-1,
    )


def slerp(q0: np.ndarray, q1: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Spherical interpolation along the shorter arc; `t` broadcasts against q0[..., 0]."""
    q0 = normalize(q0)
    q1 = normalize(q1)
    dot = np.sum(q0 * q1, axis=-1)
    q1 = np.where(dot[..., None] < 0, -q1, q1)
    dot = np.abs(dot)
    t = np.asarray(t, dtype=np.float64)[..., None]
    theta = np.arccos(np.clip(dot, -1.0, 1.0))[..., None]
    sin_theta = np.sin(theta)
    near = sin_theta < 1e-6  # nearly equal rotations: linear blend is exact enough and avoids 0/0
    safe = np.where(near, 1.0, sin_theta)
    w0 = np.where(near, 1 - t, np.sin((1 - t) * theta) / safe)
    w1 = np.where(near, t, np.sin(t * theta) / safe)
    return normalize(w0 * q0 + w1 * q1)


def make_continuous(q: np.ndarray, axis: int = 0) -> np.ndarray:
    """Flip signs so consecutive quaternions along `axis` stay in one hemisphere.

    q and -q are the same rotation, but F-curves interpolate components: a sign flip between
    two keys would spin the bone through 360 degrees.
    """
    q = np.moveaxis(np.array(q, dtype=np.float64), axis, 0)
    if q.shape[0] > 1:
        flips = np.sum(q[1:] * q[:-1], axis=-1) < 0
        sign = np.cumprod(np.where(flips, -1.0, 1.0), axis=0)
        q[1:] *= sign[..., None]
    return np.moveaxis(q, 0, axis)


def swing_matrix(u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """(..., 3, 3) smallest rotation taking unit vectors u onto v (no twist about either).

    Opposite vectors have no unique answer; any half turn about an axis perpendicular to u is used.
    """
    u = normalize(np.asarray(u, dtype=np.float64))
    v = normalize(np.asarray(v, dtype=np.float64))
    cross = np.cross(u, v)
    dot = np.sum(u * v, axis=-1)
    q = np.concatenate([(1 + dot)[..., None], cross], axis=-1)
    opposite = (1 + dot) < 1e-9
    if np.any(opposite):
        helper = np.where(np.abs(u[..., :1]) < 0.9, [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
        axis = normalize(np.cross(u, helper))
        half_turn = np.concatenate([np.zeros(dot.shape + (1,)), axis], axis=-1)
        q = np.where(opposite[..., None], half_turn, q)
    return quat_to_matrix(q)


def axis_rotation(axis: str, angle: float) -> np.ndarray:
    """3x3 rotation about the named coordinate axis ("X", "Y" or "Z") by `angle` radians."""
    c, s = np.cos(angle), np.sin(angle)
    i = "XYZ".index(axis.upper())
    j, k = (i + 1) % 3, (i + 2) % 3
    m = np.eye(3)
    m[j, j], m[j, k], m[k, j], m[k, k] = c, -s, s, c
    return m
