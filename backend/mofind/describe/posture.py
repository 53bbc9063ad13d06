"""Whole-body postures and the transitions between them: squat, sit, lie, bend forward.

A posture is a per-frame class from the pelvis height (relative to standing), the torso's angle from
vertical, the knee angles and where the pelvis sits relative to the feet; entering and leaving a
posture become "sits down" / "stands up", "lies down" / "gets up", "squats down".
"""

from __future__ import annotations

import numpy as np

from .events import Event
from .kinematics import Kinematics, joint_angle
from .segments import clean

LIE_TILT = 60.0  # degrees from vertical
LIE_PELVIS = 0.55  # x standing pelvis height
SIT_PELVIS = 0.78
SIT_BEHIND = 0.25  # pelvis behind the ankles, x leg: something (a chair) carries the weight
FLOOR_SIT_PELVIS = 0.4
SQUAT_PELVIS = 0.85
SQUAT_KNEE = 130.0  # degrees (180 = straight)
BEND_PITCH = 35.0
POSTURE_MIN_S = 0.4


def detect(k: Kinematics) -> list[Event]:
    ratio = k.pelvis_height / k.stand_height
    knees = np.minimum(joint_angle(k.joint("left_hip"), k.joint("left_knee"), k.joint("left_ankle")),
                       joint_angle(k.joint("right_hip"), k.joint("right_knee"), k.joint("right_ankle")))
    ankles = (k.joint("left_ankle") + k.joint("right_ankle")) / 2.0
    behind = (((ankles - k.joint("pelvis")) * k.forward).sum(-1)) / k.leg
    lying = (k.torso_tilt > LIE_TILT) & (ratio < LIE_PELVIS)
    sitting = ~lying & (k.torso_tilt < 50.0) & (ratio < SIT_PELVIS) & ((behind > SIT_BEHIND)
                                                                      | (ratio < FLOOR_SIT_PELVIS))
    squatting = ~lying & ~sitting & (ratio < SQUAT_PELVIS) & (knees < SQUAT_KNEE)
    bending = ~lying & (k.torso_pitch > BEND_PITCH) & (k.torso_tilt < LIE_TILT)
    events: list[Event] = []
    for kind, mask in (("lie", lying), ("sit", sitting), ("squat", squatting), ("bend", bending)):
        for a, b in clean(mask, k.fps, POSTURE_MIN_S, 0.3):
            starts_in = a / k.fps > 0.3
            ends_in = (k.frames - b) / k.fps > 0.3
            events.append(Event(kind, a / k.fps, b / k.fps, None, 2.5,
                                {"enters": starts_in, "leaves": ends_in}))
    return events
