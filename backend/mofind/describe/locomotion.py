"""Whole-body movement: walking, jogging, running, single steps, jumps, turns and spins, standing still.

MotionScript-style motion codes over time: foot contacts give steps and flight phases, the pelvis
gives speed and heading. Walk vs run uses the flight phase (both feet off the floor) and the Froude
number v^2 / (g * leg), which separates walking from running across body sizes.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .events import Event
from .kinematics import SIDES, Kinematics
from .segments import clean

G = 9.81
CONTACT_HEIGHT = 0.12  # a foot lower than this (x leg) and slower than CONTACT_SPEED is on the floor
CONTACT_SPEED = 1.0  # leg lengths per second (a swinging foot moves at two to three times the body's speed)
STEP_MIN_TRAVEL = 0.15  # a swing must move the ankle this far (x leg) to count as a step
LOCO_MAX_GAP_S = 1.0  # consecutive steps further apart than this are separate
LOCO_MIN_STEPS = 3
RUN_FLIGHT = 0.05  # fraction of locomotion frames with both feet clearly off the floor
RUN_FROUDE = 0.55
RUN_CADENCE = 140.0  # steps per minute: with short steps (a shuffling jog) this cadence means running
RUN_STEP = 0.8  # step length x leg: a brisk walk reaches RUN_CADENCE only with long steps
FAST_CADENCE, FAST_STEP = 145.0, 1.05  # ... and a faster cadence with steps up to this long is a (tired) run
JOG_FROUDE = 0.8  # a run slower than this is a jog
JUMP_MIN_S = 0.12  # flight time
JUMP_RISE = 0.05  # pelvis above standing height, x leg, at the top of the flight
TURN_RATE = np.radians(25.0)  # rad/s
TURN_MIN = np.radians(45.0)
SPIN_MIN = np.radians(300.0)
TURN_AROUND = np.radians(135.0)
STILL_SPEED = 0.2  # fastest joint, leg lengths per second
STILL_MIN_S = 1.0


def contacts(k: Kinematics) -> dict[str, np.ndarray]:
    """Side -> (T,) bool, the foot is on the floor."""
    return {s: (k.foot_height[s] < CONTACT_HEIGHT * k.leg) & (k.foot_speed[s] < CONTACT_SPEED * k.leg)
            for s in SIDES}


def steps(k: Kinematics, contact: dict[str, np.ndarray]) -> list[tuple[int, int, str]]:
    """Swing phases (lift-off frame, landing frame, side) that carry the foot STEP_MIN_TRAVEL or more."""
    out = []
    for side in SIDES:
        ankle = k.joint(f"{side}_ankle")
        for a, b in clean(~contact[side], k.fps, 0.05, 0.0):
            travel = np.linalg.norm((ankle[min(b, k.frames - 1)] - ankle[max(a - 1, 0)])[[0, 2]])
            if travel >= STEP_MIN_TRAVEL * k.leg:
                out.append((a, b, side))
    return sorted(out)


def detect(k: Kinematics) -> tuple[list[Event], np.ndarray]:
    """Locomotion events and the (T,) mask of frames spent walking or running."""
    contact = contacts(k)
    airborne = (k.foot_height["left"] > CONTACT_HEIGHT * k.leg) & (k.foot_height["right"] > CONTACT_HEIGHT * k.leg)
    swings = steps(k, contact)
    events: list[Event] = []
    busy = np.zeros(k.frames, dtype=bool)
    for group in _step_groups(swings, k.fps):
        a, b = group[0][0], group[-1][1]
        a = max(a - int(0.2 * k.fps), 0)
        b = min(b + int(0.2 * k.fps), k.frames)
        if len(group) >= LOCO_MIN_STEPS:
            events.append(_gait(k, a, b, group, airborne))
            busy[a:b] = True
        else:
            events.append(_step(k, a, b, len(group)))
    events += _jumps(k, airborne, busy)
    events += _turns(k)
    return events, busy


def still(k: Kinematics, covered: np.ndarray) -> list[Event]:
    """Spans of at least STILL_MIN_S where no joint moves and no other event is under way."""
    speed = np.linalg.norm(k.velocity(k.joints), axis=-1).max(axis=1) / k.leg
    slow = np.zeros(k.frames, dtype=bool)
    for a, b in clean(speed < STILL_SPEED, k.fps, 0.0, 0.2):  # bridge jitter, never another event
        slow[a:b] = True
    return [Event("stand_still", a / k.fps, b / k.fps, None, 0.3)
            for a, b in clean(slow & ~covered, k.fps, STILL_MIN_S, 0.0)]


def _step_groups(swings, fps):
    groups: list[list] = []
    for swing in swings:
        if groups and (swing[0] - groups[-1][-1][1]) / fps <= LOCO_MAX_GAP_S:
            groups[-1].append(swing)
        else:
            groups.append([swing])
    return groups


def _direction(k: Kinematics, a: int, b: int) -> str:
    """Where the pelvis went over frames a..b, in the body frame at the time."""
    vel = k.root_velocity[a:b].copy()
    vel[:, 1] = 0.0
    fwd = float(np.mean((vel * k.forward[a:b]).sum(-1)))
    lft = float(np.mean((vel * k.left[a:b]).sum(-1)))
    if abs(fwd) >= abs(lft):
        return "forward" if fwd >= 0 else "backward"
    return "left" if lft > 0 else "right"


def _gait(k: Kinematics, a: int, b: int, group, flight) -> Event:
    travel = k.joint("pelvis")[b - 1] - k.joint("pelvis")[a]
    travel[1] = 0.0
    horizontal = k.root_velocity[a:b].copy()
    horizontal[:, 1] = 0.0
    speed = float(np.median(np.linalg.norm(horizontal, axis=-1)))
    froude = speed ** 2 / (G * k.leg)
    flight_frac = float(flight[a:b].mean())
    cadence = _cadence(k, a, b, group)
    step = float(speed / max(cadence / 60.0, 1e-6) / k.leg)
    running = flight_frac >= RUN_FLIGHT or froude >= RUN_FROUDE or (cadence >= RUN_CADENCE and step < RUN_STEP) \
        or (cadence >= FAST_CADENCE and step < FAST_STEP)
    kind = "walk"
    if running:
        kind = "jog" if froude < JOG_FROUDE else "run"
    in_place = float(np.linalg.norm(travel)) < 0.5 * k.leg
    return Event(kind, a / k.fps, b / k.fps, None, 3.0,
                 {"direction": "in place" if in_place else _direction(k, a, b), "speed": speed, "froude": froude,
                  "flight": flight_frac, "cadence": cadence, "step_length": step, "steps": len(group)})


def _cadence(k: Kinematics, a: int, b: int, group) -> float:
    """Steps per minute from the feet overtaking each other (the sign changes of their separation along the
    body's forward axis, with hysteresis); a plain count of swings over time when there are too few."""
    sep = ((k.joint("left_ankle")[a:b] - k.joint("right_ankle")[a:b]) * k.forward[a:b]).sum(-1) / k.leg
    sep = sep - np.median(sep)
    state, changes = 0, []
    for i in np.flatnonzero(np.abs(sep) > 0.1):
        sign = 1 if sep[i] > 0 else -1
        if sign != state:
            if state:
                changes.append(i)
            state = sign
    if len(changes) >= 3:
        return float(60.0 * (len(changes) - 1) * k.fps / (changes[-1] - changes[0]))
    return 60.0 * len(group) / max((b - a) / k.fps, 1e-6)


def _step(k: Kinematics, a: int, b: int, count: int) -> Event:
    return Event("step", a / k.fps, b / k.fps, None, 1.0, {"direction": _direction(k, a, b), "count": count})


def _jumps(k: Kinematics, flight: np.ndarray, busy: np.ndarray) -> list[Event]:
    out = []
    pelvis = k.joint("pelvis")
    for a, b in clean(flight, k.fps, JUMP_MIN_S, 0.0):
        rise = (k.pelvis_height[a:b].max() - k.stand_height) / k.leg
        long_flight = (b - a) / k.fps >= 0.25
        if busy[a:b].any() and not (long_flight and rise >= 3 * JUMP_RISE):
            continue  # a running stride, not a jump
        if rise < JUMP_RISE and not long_flight:
            continue
        lo, hi = max(a - int(0.2 * k.fps), 0), min(b + int(0.2 * k.fps), k.frames - 1)
        travel = k.to_body((pelvis[hi] - pelvis[lo])[None], [lo])[0] / k.leg
        direction = "up"
        if np.hypot(travel[0], travel[2]) > 0.35:
            if abs(travel[0]) >= abs(travel[2]):
                direction = "forward" if travel[0] > 0 else "backward"
            else:
                direction = "left" if travel[2] > 0 else "right"
        out.append(Event("jump", a / k.fps, b / k.fps, None, 3.0, {"direction": direction, "count": 1}))
    merged: list[Event] = []
    for e in out:  # repeated jumps in the same direction read as one phrase with a count
        last = merged[-1] if merged else None
        if last and e.detail["direction"] == last.detail["direction"] and e.start_s - last.end_s < 1.5:
            last.end_s = e.end_s
            last.detail["count"] += 1
        else:
            merged.append(e)
    return merged


def _turns(k: Kinematics) -> list[Event]:
    if k.frames < 3:
        return []
    rate = gaussian_filter1d(np.gradient(k.yaw) * k.fps, 0.25 * k.fps, mode="nearest")
    out = []
    for sign, name in ((1.0, "left"), (-1.0, "right")):
        for a, b in clean(sign * rate > TURN_RATE, k.fps, 0.25, 0.4):
            angle = sign * (k.yaw[min(b, k.frames - 1)] - k.yaw[a])
            if angle < TURN_MIN:
                continue
            kind = "spin" if angle >= SPIN_MIN else "turn"
            amount = "around" if TURN_AROUND <= angle < SPIN_MIN else None
            out.append(Event(kind, a / k.fps, b / k.fps, name, 2.0 + angle / np.pi,
                             {"degrees": float(np.degrees(angle)), "around": amount == "around",
                              "turns": int(round(angle / (2 * np.pi)))}))
    return out
