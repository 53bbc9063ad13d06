"""Single-leg events: kicks (the foot driven fast and high, the knee straightening) and knee lifts."""

from __future__ import annotations

import numpy as np

from .events import Event
from .kinematics import SIDES, Kinematics, joint_angle
from .segments import clean

KICK_FOOT_SPEED = 2.5  # ankle speed relative to the pelvis, leg lengths per second
KICK_FOOT_HEIGHT = 0.3  # ankle above the floor, x leg
KICK_HEIGHT_MOVING = 0.5  # ... while walking or running, where swinging feet are fast anyway
KICK_KNEE = 130.0  # degrees: the knee straightens as the foot flies
KICK_ANKLE_BELOW_HIP = -0.3  # x leg: an ankle this close below the hip (or above it) is a high kick
KNEE_LIFT_THIGH = 60.0  # degrees of thigh elevation from hanging straight down
KNEE_LIFT_MIN_S = 0.2


def detect(k: Kinematics, busy: np.ndarray) -> list[Event]:
    """Kicks of either leg (higher while walking/running, `busy`) and knee lifts outside walking/running."""
    events: list[Event] = []
    down = np.array([0.0, -1.0, 0.0])
    for side in SIDES:
        hip, knee, ankle = (k.joint(f"{side}_{n}") for n in ("hip", "knee", "ankle"))
        bend = joint_angle(hip, knee, ankle)
        rel_speed = np.linalg.norm(k.velocity(ankle) - k.root_velocity, axis=-1) / k.leg
        ahead = k.to_body(ankle - hip)
        behind = ahead[:, 0] < -0.1 * k.leg  # a runner's heel flicks up behind; a kick goes out front or sideways
        high = k.foot_height[side] / k.leg > np.where(busy, KICK_HEIGHT_MOVING, KICK_FOOT_HEIGHT)
        swung_up = ahead[:, 1] > KICK_ANKLE_BELOW_HIP * k.leg  # foot flung up near hip height: a high kick
        kick = (rel_speed > KICK_FOOT_SPEED) & ~behind & ((high & (bend > KICK_KNEE)) | swung_up)
        kicks = clean(kick, k.fps, 0.0, 0.2)
        for a, b in kicks:
            out = ahead[a:b] / k.leg
            mid = out[np.argmax(np.abs(out[:, [0, 2]]).max(axis=1))]
            direction = "forward" if abs(mid[0]) >= abs(mid[2]) else "sideways"
            if mid[0] < 0 and abs(mid[0]) >= abs(mid[2]):
                direction = "backward"
            events.append(Event("kick", a / k.fps, b / k.fps, side, 4.0, {"direction": direction}))
        thigh = knee - hip
        thigh_up = np.degrees(np.arccos(np.clip((thigh @ down) / np.maximum(np.linalg.norm(thigh, axis=-1), 1e-9),
                                                -1.0, 1.0)))
        lift = (thigh_up > KNEE_LIFT_THIGH) & (bend < 120.0) & ~busy
        for a, b in kicks:
            lift[max(a - int(0.3 * k.fps), 0):b + int(0.3 * k.fps)] = False
        for a, b in clean(lift, k.fps, KNEE_LIFT_MIN_S, 0.2):
            events.append(Event("knee_lift", a / k.fps, b / k.fps, side, 2.0))
    return events
