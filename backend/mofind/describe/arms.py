"""Arm events: raising (and the hand above the head), waving, reaching, punching, bending the elbow.

Posecode-style: each event is a thresholded relation between joints (wrist above shoulder, wrist
beyond the shoulder along the body's forward axis, elbow angle) kept over a minimum time, plus a
motion code for waving (the forearm swinging back and forth) and punching (fast elbow extension
driving the hand forward). Distances are fractions of the leg length.
"""

from __future__ import annotations

import numpy as np
from scipy.ndimage import gaussian_filter1d

from .events import Event, merge_sides
from .kinematics import SIDES, Kinematics, joint_angle
from .segments import clean, hysteresis

RAISE_HIGH, RAISE_LOW = -0.1, -0.2  # wrist height minus shoulder height, x leg length (hysteresis)
ARM_UP = 0.12  # wrist this far above the shoulder: the arm (not just the hand) is raised
RAISE_MIN_S = 0.4
WAVE_MIN_SWING = 0.22  # peak-to-peak of the forearm's sideways/forward lean (sin of the angle)
WAVE_MIN_REVERSALS = 3
WAVE_FREQ = (0.6, 5.0)  # Hz
REACH_FORWARD = 0.6  # wrist ahead of the shoulder, x arm length
REACH_SIDE = 0.75  # wrist out to its own side of the shoulder, x arm length
REACH_ELBOW = 140.0  # degrees: a reaching arm is nearly straight
REACH_MIN_S = 0.3
PUNCH_ELBOW_SPEED = 500.0  # deg/s of elbow extension
PUNCH_HAND_SPEED = 1.6  # leg lengths per second, the hand forward relative to the pelvis
ELBOW_BENT = 80.0  # degrees (180 = straight)
ELBOW_MIN_S = 0.5


def detect(k: Kinematics, busy_legs: np.ndarray) -> list[Event]:
    """All arm events of both arms; `busy_legs` marks frames of locomotion (elbow bends are not news there)."""
    events: list[Event] = []
    for side in SIDES:
        shoulder, elbow, wrist = (k.joint(f"{side}_{n}") for n in ("shoulder", "elbow", "wrist"))
        arm = float(np.median(np.linalg.norm(shoulder - elbow, axis=-1) + np.linalg.norm(elbow - wrist, axis=-1)))
        arm = max(arm, 1e-3)
        bend = joint_angle(shoulder, elbow, wrist)
        raised = _raises(k, side, shoulder, wrist, busy_legs)
        events += raised
        events += _waves(k, side, elbow, wrist)
        events += _reaches(k, side, shoulder, wrist, bend, arm)
        events += _punches(k, side, shoulder, wrist, bend, arm)
        events += _elbow_bends(k, side, bend, busy_legs, raised)
    for kind in ("raise_arm", "wave", "reach", "elbow_bend"):
        events = merge_sides(events, kind)
    return events


def _raises(k: Kinematics, side: str, shoulder: np.ndarray, wrist: np.ndarray, busy: np.ndarray) -> list[Event]:
    """The hand brought up to shoulder height or higher; `level` says how high (head, arm, hand)."""
    height = (wrist[:, 1] - shoulder[:, 1]) / k.leg
    mask = hysteresis(height, RAISE_HIGH, RAISE_LOW)
    head = k.joint("head")[:, 1]
    out = []
    for a, b in clean(mask, k.fps, RAISE_MIN_S, 0.3):
        top = float(np.max(height[a:b]))
        if top < ARM_UP and busy[a:b].mean() > 0.5:
            continue  # a runner's arm swing, not a raise
        level = "head" if float(np.mean(wrist[a:b, 1] > head[a:b])) > 0.3 else "arm" if top >= ARM_UP else "hand"
        lowered = (k.frames - b) / k.fps > 0.3 and height[min(b + int(0.3 * k.fps), k.frames - 1)] < RAISE_LOW
        out.append(Event("raise_arm", a / k.fps, b / k.fps, side, 1.5 + top,
                         {"level": level, "lowered": lowered}))
    return out


def _waves(k: Kinematics, side: str, elbow: np.ndarray, wrist: np.ndarray) -> list[Event]:
    forearm = wrist - elbow
    length = np.maximum(np.linalg.norm(forearm, axis=-1), 1e-9)
    body = k.to_body(forearm) / length[:, None]  # (forward, up, left) unit components
    up = body[:, 1] > 0.2  # hand above the elbow
    if up.sum() < 2:
        return []
    sigma = 0.4 * k.fps
    out = []
    for axis in (2, 0):  # side to side, then to and fro
        swing = body[:, axis] - gaussian_filter1d(body[:, axis], sigma, mode="nearest")
        out += _oscillations(k, side, swing, up)
    if len(out) > 1:  # both axes found the same wave: keep the longer description once
        out.sort(key=lambda e: -e.duration)
        out = out[:1]
    return out


def _oscillations(k: Kinematics, side: str, swing: np.ndarray, gate: np.ndarray) -> list[Event]:
    """Alternating extrema of `swing` inside `gate` whose peak-to-peak exceeds WAVE_MIN_SWING."""
    d = np.sign(np.diff(swing))
    turn = np.flatnonzero((d[1:] != d[:-1]) & (d[1:] != 0)) + 1
    turn = turn[gate[turn]]
    if len(turn) < WAVE_MIN_REVERSALS:
        return []
    keep, trend = [int(turn[0])], 0.0
    for i in turn[1:]:  # zigzag: keep reversals of at least WAVE_MIN_SWING, extend moves in the same direction
        delta = swing[i] - swing[keep[-1]]
        if trend and np.sign(delta) == trend:
            keep[-1] = int(i)
        elif abs(delta) >= WAVE_MIN_SWING:
            keep.append(int(i))
            trend = float(np.sign(delta))
    keep = np.array(keep)
    gaps = np.diff(keep) / k.fps  # half periods
    ok = (gaps <= 0.5 / WAVE_FREQ[0]) & (gaps >= 0.5 / WAVE_FREQ[1])
    out = []
    for a, b in clean(ok, 1.0, 0.0, 0.0):  # runs of good half periods (frame units irrelevant here)
        if b - a >= WAVE_MIN_REVERSALS:  # b - a half swings between keep[a] and keep[b]
            start, stop = keep[a], keep[b]
            out.append(Event("wave", start / k.fps, stop / k.fps, side, 2.5, {"count": int(b - a)}))
    return out


def _reaches(k, side, shoulder, wrist, bend, arm) -> list[Event]:
    rel = k.to_body(wrist - shoulder) / arm
    outward = rel[:, 2] * (1.0 if side == "left" else -1.0)
    straight = bend > REACH_ELBOW
    level = rel[:, 1] < 0.35  # not a raise: the hand stays around shoulder height or lower
    out = []
    for direction, mask in (("forward", (rel[:, 0] > REACH_FORWARD) & straight & level),
                            ("sideways", (outward > REACH_SIDE) & straight & level)):
        for a, b in clean(mask, k.fps, REACH_MIN_S, 0.2):
            out.append(Event("reach", a / k.fps, b / k.fps, side, 1.2, {"direction": direction}))
    return out


def _punches(k, side, shoulder, wrist, bend, arm) -> list[Event]:
    extension = k.velocity(bend)
    hand = k.to_body(k.velocity(wrist) - k.root_velocity)[:, 0] / k.leg
    reach = k.to_body(wrist - shoulder)[:, 0] / arm
    mask = (extension > PUNCH_ELBOW_SPEED) & (hand > PUNCH_HAND_SPEED)
    hits = [(a, b) for a, b in clean(mask, k.fps, 0.0, 0.15)
            if reach[a:min(b + int(0.15 * k.fps) + 1, k.frames)].max() > 0.55]
    if not hits:
        return []
    groups = [[hits[0]]]
    for hit in hits[1:]:
        if (hit[0] - groups[-1][-1][1]) / k.fps < 1.5:
            groups[-1].append(hit)
        else:
            groups.append([hit])
    return [Event("punch", g[0][0] / k.fps, g[-1][1] / k.fps, side, 3.5, {"count": len(g)}) for g in groups]


def _elbow_bends(k, side, bend, busy_legs, raised) -> list[Event]:
    mask = (bend < ELBOW_BENT) & ~busy_legs
    for e in raised:
        mask[int(e.start_s * k.fps):int(e.end_s * k.fps)] = False
    return [Event("elbow_bend", a / k.fps, b / k.fps, side, 0.6)
            for a, b in clean(mask, k.fps, ELBOW_MIN_S, 0.3)]
