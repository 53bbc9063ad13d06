"""Window-invariant joint angles: what MoFind's own ("product") models read instead of raw official angles.

The official pipeline sees HumanML3D clips, which were all retargeted to one skeleton and canonicalised at
their first frame. A studio library is neither: windows are cut from the middle of long takes (the body is
anywhere on the floor, facing anywhere) and skeletons differ in size and in where their pelvis sits above
the hips (pelvis height / leg length ranges from 1.01 on iClone rigs to 1.21 on CMU ones, several training
standard deviations apart). Three changes make the same movement give the same features on any rig:

1. every window is canonicalised on its own first frame (floor at y=0, pelvis over the origin, facing +Z);
2. positions are rescaled to a reference leg length, so stride lengths compare across body sizes;
3. the pelvis height column holds the height relative to the window's median (crouches, jumps and bobbing
   stay visible; the rig-specific absolute height does not).

Angles other than the root translation are unchanged (they do not depend on position or size).
"""

from __future__ import annotations

import numpy as np

from mofind.features.angles import joint_angles41
from mofind.skeleton.convert import canonicalize

REFERENCE_LEG_M = 0.80
"""Hip-to-ankle length the windows are scaled to (about an adult's; the Bandai performers' is 0.80 m)."""

_LEFT_HIP, _RIGHT_HIP, _LEFT_KNEE, _RIGHT_KNEE, _LEFT_ANKLE, _RIGHT_ANKLE = 1, 2, 4, 5, 7, 8
_PELVIS_TY = 4  # column of the pelvis height among the 41


def leg_length(joints: np.ndarray) -> float:
    """Median over frames of the mean of both hip->knee->ankle chains, in the joints' units."""
    def chain(hip: int, knee: int, ankle: int) -> np.ndarray:
        return (np.linalg.norm(joints[:, hip] - joints[:, knee], axis=-1)
                + np.linalg.norm(joints[:, knee] - joints[:, ankle], axis=-1))
    return float(np.median(0.5 * (chain(_LEFT_HIP, _LEFT_KNEE, _LEFT_ANKLE)
                                  + chain(_RIGHT_HIP, _RIGHT_KNEE, _RIGHT_ANKLE))))


def canonical_window(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) -> the same window canonicalised at its first frame and scaled to the reference leg."""
    joints = canonicalize(np.asarray(joints, dtype=np.float64))
    length = leg_length(joints) if len(joints) else 0.0
    if length > 1e-6:
        joints = joints * (REFERENCE_LEG_M / length)
    return joints.astype(np.float32)


def window_angles41(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) window -> (T, 41) angles with the three invariances in the module docstring."""
    angles = joint_angles41(canonical_window(joints))
    if len(angles):
        angles[:, _PELVIS_TY] -= np.median(angles[:, _PELVIS_TY])
    return angles
