"""Single-leg events: kicks (the foot driven fast and high, the knee straightening) and knee lifts."""

from __future__ import annotations

import numpy as np

from .events import Event
from .kinematics import SIDES, Kinematics, joint_angle
from .segments import clean

KICK_FOOT_SPEED = 2.5  # ankle speed relative to the pelvis, leg lengths per second
KICK_FOOT_HEIGHT = 0.3  # ankle above the floor, x leg
KICK_KNEE = 130.0  # degrees: the knee straightens as the foot flies
KNEE_LIFT_THIGH = 60.0  # degrees of thigh elevation from hanging straight down
KNEE_LIFT_MIN_S = 0.2


def detect(k: Kinematics, busy: np.ndarray) -> list[Event]:
    """Kicks and knee lifts of either leg outside walking/running (`busy`)."""
    events: list[Event] = []
    down = np.array([0.0, -1.0, 0.0])
    for side in SIDES:
        hip, knee, ankle = (k.joint(f"{side}_{n}") for n in ("hip", "knee", "ankle"))
        bend = joint_angle(hip, knee, ankle)
        rel_speed = np.linalg.norm(k.velocity(ankle) - k.root_velocity, axis=-1) / k.leg
        high = k.foot_height[side] / k.leg > KICK_FOOT_HEIGHT
        kick = (rel_speed > KICK_FOOT_SPEED) & high & (bend > KICK_KNEE) & ~busy
        kicks = clean(kick, k.fps, 0.0, 0.2)
        for a, b in kicks:
            ahead = k.to_body(ankle[a:b] - hip[a:b], slice(a, b)) / k.leg
            mid = ahead[np.argmax(np.abs(ahead[:, [0, 2]]).max(axis=1))]
            direction = "forward" if abs(mid[0]) >= abs(mid[2]) else "sideways"
            if mid[0] < 0 and abs(mid[0]) >= abs(mid[2]):
                direction = "backward"
            events.append(Event("kick", a / k.fps, b / k.fps, side, 3.0, {"direction": direction}))
        thigh = knee - hip
        thigh_up = np.degrees(np.arccos(np.clip((thigh @ down) / np.maximum(np.linalg.norm(thigh, axis=-1), 1e-9),
                                                -1.0, 1.0)))
        lift = (thigh_up > KNEE_LIFT_THIGH) & (bend < 120.0) & ~busy
        for a, b in kicks:
            lift[max(a - int(0.3 * k.fps), 0):b + int(0.3 * k.fps)] = False
        for a, b in clean(lift, k.fps, KNEE_LIFT_MIN_S, 0.2):
            events.append(Event("knee_lift", a / k.fps, b / k.fps, side, 2.0))
    return events
