"""Feet that stay planted when the rig's legs differ from the actor's (numpy only, no bpy).

Scaling the hip travel by the leg-length ratio keeps strides in proportion, but joint rotations
copied onto shorter shins or a wider stance still slide a planted foot. So:

1. `foot_contacts` finds, on the source, the frames where each ankle is low and nearly still
   (heel strike to heel-off).
2. During each contact the rig's ankle is pinned where it stands on average (horizontal plane;
   its height keeps following the take), eased in and out over a few frames.
3. `two_bone_ik` turns thigh and shin so the ankle reaches that point, keeping the knee in the
   plane it already bends in; the foot keeps its world orientation.

`skating_per_contact` is the measure: how far an ankle slides during one contact.
"""

from __future__ import annotations

import numpy as np

from . import quat

CONTACT_HEIGHT = 0.05  # metres above the ankle's lowest height in the take
CONTACT_SPEED = 0.25  # metres per second, horizontal
MIN_CONTACT_FRAMES = 3
EASE_SECONDS = 0.1


def foot_contacts(ankle: np.ndarray, fps: float, height: float = CONTACT_HEIGHT,
                  speed: float = CONTACT_SPEED) -> np.ndarray:
    """(T,) bool: the ankle (T, 3; metres, Z up) is within `height` of its floor and slower than `speed`."""
    ankle = np.asarray(ankle, dtype=np.float64)
    frames = ankle.shape[0]
    if frames < 2:
        return np.zeros(frames, dtype=bool)
    floor = np.percentile(ankle[:, 2], 5)
    velocity = np.gradient(ankle[:, :2], axis=0) * fps
    contact = (ankle[:, 2] - floor < height) & (np.linalg.norm(velocity, axis=1) < speed)
    return _drop_short(_fill_gaps(contact, 1), MIN_CONTACT_FRAMES)


def contact_segments(contact: np.ndarray) -> list[tuple[int, int]]:
    """[(first, last + 1), ...] runs of True."""
    padded = np.concatenate([[False], np.asarray(contact, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return list(zip(edges[0::2].tolist(), edges[1::2].tolist()))


def skating_per_contact(ankle: np.ndarray, contact: np.ndarray) -> np.ndarray:
    """Horizontal distance (metres) the ankle travels during each contact (path length)."""
    ankle = np.asarray(ankle, dtype=np.float64)
    return np.array([np.linalg.norm(np.diff(ankle[a:b, :2], axis=0), axis=1).sum()
                     for a, b in contact_segments(contact)])


def pinned_targets(ankle: np.ndarray, contact: np.ndarray, ease_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3) ankle targets and (T,) weights: each contact pinned to its mean horizontal position."""
    target = np.array(ankle, dtype=np.float64)
    weight = np.zeros(len(ankle))
    for a, b in contact_segments(contact):
        target[a:b, :2] = ankle[a:b, :2].mean(axis=0)
        weight[a:b] = 1.0
        for k in range(1, ease_frames + 1):  # ease in before and out after, holding the same spot
            w = 1.0 - k / (ease_frames + 1)
            for t in (a - k, b - 1 + k):
                if 0 <= t < len(ankle) and w > weight[t]:
                    weight[t] = w
                    target[t, :2] = target[a, :2]
    return target, weight


def two_bone_ik(hip: np.ndarray, knee: np.ndarray, ankle: np.ndarray,
                goal: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(T, 3, 3) world turns of thigh and shin that bring `ankle` to `goal` (all (T, 3)).

    Bone lengths stay; the knee stays in the plane of hip, knee and ankle; an out-of-reach
    goal is approached along the hip->goal line.
    """
    upper = np.linalg.norm(knee - hip, axis=1)
    lower = np.linalg.norm(ankle - knee, axis=1)
    reach = goal - hip
    dist = np.linalg.norm(reach, axis=1)
    dist = np.clip(dist, np.abs(upper - lower) + 1e-6, upper + lower - 1e-6)
    axis = quat.normalize(reach)
    bend = (knee - hip) - np.sum((knee - hip) * axis, axis=1, keepdims=True) * axis
    fallback = np.cross(axis, np.array([1.0, 0.0, 0.0]))  # a straight leg: bend forward/back
    bend = np.where(np.linalg.norm(bend, axis=1, keepdims=True) > 1e-9, bend, fallback)
    bend = quat.normalize(bend)
    along = (upper ** 2 - lower ** 2 + dist ** 2) / (2 * dist)
    across = np.sqrt(np.maximum(upper ** 2 - along ** 2, 0.0))
    new_knee = hip + along[:, None] * axis + across[:, None] * bend
    new_ankle = hip + dist[:, None] * axis
    thigh_turn = quat.swing_matrix(quat.normalize(knee - hip), quat.normalize(new_knee - hip))
    moved_shin = np.einsum("tij,tj->ti", thigh_turn, ankle - knee)
    shin_turn = quat.swing_matrix(quat.normalize(moved_shin), quat.normalize(new_ankle - new_knee))
    return thigh_turn, shin_turn @ thigh_turn


def plant_feet(pairs, heads: np.ndarray, mapped_world: dict, src_pos: np.ndarray, fps: float) -> dict:
    """`mapped_world` with thighs and shins turned so planted feet stay put.

    pairs: SMPL joint -> (source joint, target bone); heads: (T, B, 3) the rig's evaluated bone
    heads (hip travel included); src_pos: (T, J, 3) source joints in the rig's axes, metres.
    Legs without hip, knee and ankle mapped on both sides are left alone.
    """
    world = dict(mapped_world)
    ease = max(1, int(round(EASE_SECONDS * fps)))
    for side in ("left", "right"):
        joints = [f"{side}_{part}" for part in ("hip", "knee", "ankle")]
        if not all(j in pairs for j in joints):
            continue
        (_, hip), (_, knee), (src_ankle, ankle) = (pairs[j] for j in joints)
        contact = foot_contacts(src_pos[:, src_ankle], fps)
        if not contact.any():
            continue
        goal, weight = pinned_targets(heads[:, ankle], contact, ease)
        goal = heads[:, ankle] + weight[:, None] * (goal - heads[:, ankle])
        thigh_turn, shin_turn = two_bone_ik(heads[:, hip], heads[:, knee], heads[:, ankle], goal)
        world[hip] = thigh_turn @ world[hip]
        world[knee] = shin_turn @ world[knee]
    return world


def _fill_gaps(mask: np.ndarray, longest: int) -> np.ndarray:
    out = mask.copy()
    for a, b in contact_segments(~mask):
        if 0 < a and b < len(mask) and b - a <= longest:
            out[a:b] = True
    return out


def _drop_short(mask: np.ndarray, shortest: int) -> np.ndarray:
    out = mask.copy()
    for a, b in contact_segments(mask):
        if b - a < shortest:
            out[a:b] = False
    return out
