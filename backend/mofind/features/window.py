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

One repair comes first: a rig whose pelvis joint sits at or below its hip joints (the Daz-style CMU rig roots at
the thighs) would flip the pelvis frame (built from the hip midpoint up to the pelvis joint) by about 180 degrees
and with it the pelvis, hip and lumbar angles; `repair_pelvis` lifts such a pelvis straight up to just above the
hip midpoint (where the Bandai rig has it). Rigs with a pelvis above the hips are left exactly as they are.
"""

from __future__ import annotations

import numpy as np

from mofind.features.angles import joint_angles41
from mofind.skeleton.convert import canonicalize

REFERENCE_LEG_M = 0.80
"""Hip-to-ankle length the windows are scaled to (about an adult's; the Bandai performers' is 0.80 m)."""

_LEFT_HIP, _RIGHT_HIP, _LEFT_KNEE, _RIGHT_KNEE, _LEFT_ANKLE, _RIGHT_ANKLE = 1, 2, 4, 5, 7, 8
_PELVIS_TY = 4  # column of the pelvis height among the 41
_PELVIS, _NECK = 0, 12
PELVIS_OVER_HIPS = 0.03
"""Height `repair_pelvis` gives a misplaced pelvis above the hip midpoint, in leg lengths (the Bandai rig: 0.027;
CMU's 31-joint rig: 0.12)."""


def pelvis_over_hips(joints: np.ndarray) -> float:
    """Median height of the pelvis joint above the hip midpoint along the torso (hip midpoint -> neck), in
    leg lengths."""
    joints = np.asarray(joints, dtype=np.float64)
    hips = 0.5 * (joints[:, _LEFT_HIP] + joints[:, _RIGHT_HIP])
    torso = joints[:, _NECK] - hips
    torso /= np.maximum(np.linalg.norm(torso, axis=-1, keepdims=True), 1e-9)
    height = np.einsum("td,td->t", joints[:, _PELVIS] - hips, torso)
    return float(np.median(height)) / max(leg_length(joints), 1e-9)


def repair_pelvis(joints: np.ndarray) -> np.ndarray:
    """The joints with a misplaced pelvis (at or below the hips) moved straight up (+Y) to `PELVIS_OVER_HIPS`
    leg lengths above the hip midpoint; any other rig is returned unchanged (the same array)."""
    joints = np.asarray(joints)
    if len(joints) == 0 or pelvis_over_hips(joints) > 0.0:
        return joints
    out = np.array(joints, dtype=np.float64, copy=True)
    hips = 0.5 * (out[:, _LEFT_HIP] + out[:, _RIGHT_HIP])
    out[:, _PELVIS] = hips
    out[:, _PELVIS, 1] += PELVIS_OVER_HIPS * leg_length(out)
    return out.astype(joints.dtype)


def leg_length(joints: np.ndarray) -> float:
    """Median over frames of the mean of both hip->knee->ankle chains, in the joints' units."""
    def chain(hip: int, knee: int, ankle: int) -> np.ndarray:
        return (np.linalg.norm(joints[:, hip] - joints[:, knee], axis=-1)
                + np.linalg.norm(joints[:, knee] - joints[:, ankle], axis=-1))
    return float(np.median(0.5 * (chain(_LEFT_HIP, _LEFT_KNEE, _LEFT_ANKLE)
                                  + chain(_RIGHT_HIP, _RIGHT_KNEE, _RIGHT_ANKLE))))


def canonical_window(joints: np.ndarray) -> np.ndarray:
    """(T, 22, 3) -> the same window (pelvis repaired) canonicalised at its first frame and scaled to the
    reference leg."""
    joints = canonicalize(repair_pelvis(np.asarray(joints, dtype=np.float64)))
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
