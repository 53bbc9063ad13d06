"""Joints -> model input through `mofind.features` (joint angles, normalisation, column selection).

The one place the model layer turns (T, 22, 3) joint positions into the (length, 29) normalised angle
matrix the motion encoder reads.
"""

from __future__ import annotations

import numpy as np

from mofind.features.angles import joint_angles41
from mofind.features.normalize import AngleStats, motion_input
from mofind.features.window import window_angles41


def identity_stats() -> AngleStats:
    """Mean 0 / std 1 for randomly initialised test models."""
    return AngleStats(np.zeros(41), np.ones(41))


def joints_to_input(joints: np.ndarray, stats: AngleStats, length: int,
                    window_invariant: bool = False) -> tuple[np.ndarray, int]:
    """(T, 22, 3) joints at the model fps -> (x (length, 29) float32, valid_len), the official order;
    `window_invariant` models read `window_angles41` instead of the official angles."""
    joints = np.asarray(joints, dtype=np.float32)
    if joints.ndim != 3 or joints.shape[1:] != (22, 3):
        raise ValueError(f"expected SMPL-22 joints of shape (T, 22, 3), got {joints.shape}")
    angles = window_angles41(joints[:length]) if window_invariant else joint_angles41(joints)
    return motion_input(angles, stats, length)
