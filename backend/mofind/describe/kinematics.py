"""Per-frame body measurements the detectors share, computed once and vectorised.

Everything is in the performer's own frame where it matters (forward/left from the hips and shoulders,
so "left" is always the performer's left) and scaled by the leg length, so thresholds hold for a child
and a giant alike. Joints are smoothed first (Gaussian, sigma in seconds) so the thresholds do not
depend on the frame rate or on marker jitter.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.ndimage import gaussian_filter1d

from mofind.skeleton.smpl import SMPL22_INDEX as J

SMOOTH_S = 0.05  # Gaussian sigma in seconds: removes jitter, keeps a 2 Hz wave
UP = np.array([0.0, 1.0, 0.0])
SIDES = ("left", "right")


@dataclass
class Kinematics:
    """Smoothed joints and derived signals; arrays have T frames along axis 0."""

    joints: np.ndarray  # (T, 22, 3) smoothed, floor at y=0
    fps: float
    leg: float  # leg length in metres (hip -> knee -> ankle), the unit of every distance threshold
    forward: np.ndarray  # (T, 3) horizontal unit vector the body faces
    left: np.ndarray  # (T, 3) horizontal unit vector to the performer's left
    yaw: np.ndarray  # (T,) heading in radians, unwrapped (increasing = turning left)
    pelvis_height: np.ndarray  # (T,) pelvis above the floor, metres
    stand_height: float  # pelvis height of this body standing upright (from the leg length)
    foot_height: dict[str, np.ndarray]  # side -> (T,) lowest of ankle/toe above the floor
    foot_speed: dict[str, np.ndarray]  # side -> (T,) horizontal speed of the ankle, m/s
    root_velocity: np.ndarray  # (T, 3) pelvis velocity, m/s
    torso_pitch: np.ndarray  # (T,) degrees the pelvis->neck line leans forward (+) / back (-) from vertical
    torso_tilt: np.ndarray  # (T,) degrees the pelvis->neck line leaves vertical in any direction

    @property
    def frames(self) -> int:
        return int(self.joints.shape[0])

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    def joint(self, name: str) -> np.ndarray:
        return self.joints[:, J[name]]

    def to_body(self, vectors: np.ndarray, at=slice(None)) -> np.ndarray:
        """(N, 3) world vectors at frames `at` (default: all T) -> (forward, up, left) body-frame components."""
        forward, left = self.forward[at], self.left[at]
        return np.stack([(vectors * forward).sum(-1), vectors[:, 1], (vectors * left).sum(-1)], -1)

    def velocity(self, signal: np.ndarray) -> np.ndarray:
        """Time derivative along axis 0, per second."""
        if len(signal) < 2:
            return np.zeros_like(signal)
        return np.gradient(signal, axis=0) * self.fps


def measure(joints: np.ndarray, fps: float) -> Kinematics:
    """Compute the shared signals of a (T, 22, 3) SMPL-22 joint array (metres, Y-up) at `fps`."""
    joints = np.asarray(joints, dtype=np.float64)
    if joints.ndim != 3 or joints.shape[1:] != (22, 3):
        raise ValueError(f"expected SMPL-22 joints of shape (T, 22, 3), got {joints.shape}")
    if not np.isfinite(joints).all():
        raise ValueError("joints contain NaN or infinite values")
    if fps <= 0:
        raise ValueError(f"fps must be positive, got {fps}")
    if len(joints) > 1:
        joints = gaussian_filter1d(joints, sigma=max(SMOOTH_S * fps, 0.5), axis=0, mode="nearest")
    feet_idx = [J["left_ankle"], J["right_ankle"], J["left_foot"], J["right_foot"]]
    floor = _floor(joints[:, feet_idx], fps)
    joints = joints - np.array([0.0, floor, 0.0])

    leg = float(np.median(
        np.linalg.norm(joints[:, J["left_hip"]] - joints[:, J["left_knee"]], axis=-1)
        + np.linalg.norm(joints[:, J["left_knee"]] - joints[:, J["left_ankle"]], axis=-1)
        + np.linalg.norm(joints[:, J["right_hip"]] - joints[:, J["right_knee"]], axis=-1)
        + np.linalg.norm(joints[:, J["right_knee"]] - joints[:, J["right_ankle"]], axis=-1)) / 2.0)
    if not 0.1 < leg < 3.0:
        raise ValueError(f"joints do not form a human body in metres: leg length {leg:.3f} "
                         "(expected SMPL-22 positions in metres, Y-up)")

    across = (joints[:, J["left_hip"]] - joints[:, J["right_hip"]]
              + joints[:, J["left_shoulder"]] - joints[:, J["right_shoulder"]])
    across[:, 1] = 0.0
    left = across / np.maximum(np.linalg.norm(across, axis=-1, keepdims=True), 1e-9)
    forward = np.cross(left, UP)  # left = up x forward  =>  forward = left x up
    yaw = np.unwrap(np.arctan2(forward[:, 0], forward[:, 2]))

    foot_height, foot_speed = {}, {}
    for side in SIDES:
        foot_height[side] = np.minimum(joints[:, J[f"{side}_ankle"], 1], joints[:, J[f"{side}_foot"], 1])
        ankle = joints[:, J[f"{side}_ankle"]].copy()
        ankle[:, 1] = 0.0
        foot_speed[side] = np.linalg.norm(_gradient(ankle, fps), axis=-1)

    torso = joints[:, J["neck"]] - joints[:, J["pelvis"]]
    torso_len = np.maximum(np.linalg.norm(torso, axis=-1), 1e-9)
    lean = (torso * forward).sum(-1)
    torso_pitch = np.degrees(np.arctan2(lean, torso[:, 1]))
    torso_tilt = np.degrees(np.arccos(np.clip(torso[:, 1] / torso_len, -1.0, 1.0)))

    return Kinematics(
        joints=joints, fps=float(fps), leg=leg, forward=forward, left=left, yaw=yaw,
        pelvis_height=joints[:, J["pelvis"], 1], stand_height=1.08 * leg,
        foot_height=foot_height, foot_speed=foot_speed, root_velocity=_gradient(joints[:, J["pelvis"]], fps),
        torso_pitch=torso_pitch, torso_tilt=torso_tilt)


def _floor(feet: np.ndarray, fps: float) -> float:
    """Floor height: where the lowest foot joint rests while it stands still (a T-pose frame, a jump or a
    foot joint that sits above the sole do not move it); the 5th percentile of the lowest foot otherwise."""
    heights = feet[..., 1]
    lowest = heights.argmin(axis=1)
    speed = np.linalg.norm(_gradient(feet, fps), axis=-1)[np.arange(len(feet)), lowest]
    resting = speed < 0.3
    if resting.sum() >= max(3, 0.1 * len(feet)):
        return float(np.median(heights.min(axis=1)[resting]))
    return float(np.percentile(heights.min(axis=1), 5))


def _gradient(signal: np.ndarray, fps: float) -> np.ndarray:
    if len(signal) < 2:
        return np.zeros_like(signal)
    return np.gradient(signal, axis=0) * fps


def joint_angle(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """(T,) angle in degrees at b between b->a and b->c (180 = straight limb)."""
    u, v = a - b, c - b
    cos = (u * v).sum(-1) / np.maximum(np.linalg.norm(u, axis=-1) * np.linalg.norm(v, axis=-1), 1e-9)
    return np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
