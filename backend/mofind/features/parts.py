"""The official joint-angle layout: 41 computed columns, 29 used ones, 14 body parts.

The motion image is 224 frames tall and 224 pixels wide; each body part owns one 16-pixel-wide
column of ViT patches (part k covers pixels 16k..16k+15), fed by its own per-frame
``Linear(dof -> 16)``. Everything here is plain, immutable data so that the model, the index and
the explanation UI agree on one table.
"""

from __future__ import annotations

from typing import NamedTuple

#: Width in pixels of one part's column of patches (= the ViT patch size).
PATCH_WIDTH = 16

#: The 41 columns produced by ``angles.joint_angles41``, by index. Angles are in degrees; the
#: ``*_t{x,y,z}`` columns are positions in metres after the axis change x=old z, y=old y, z=-old x.
COLUMNS41: tuple[str, ...] = (
    "pelvis_tilt", "pelvis_list", "pelvis_rotation",
    "pelvis_tx", "pelvis_ty", "pelvis_tz",
    "right_hip_tx", "right_hip_ty", "right_hip_tz",
    "left_hip_tx", "left_hip_ty", "left_hip_tz",
    "right_shoulder_tx", "right_shoulder_ty", "right_shoulder_tz",
    "left_shoulder_tx", "left_shoulder_ty", "left_shoulder_tz",
    "hip_flexion_r", "hip_adduction_r", "hip_rotation_r", "knee_angle_r", "ankle_angle_r",
    "hip_flexion_l", "hip_adduction_l", "hip_rotation_l", "knee_angle_l", "ankle_angle_l",
    "lumbar_extension", "lumbar_bending", "lumbar_rotation",
    "arm_flex_r", "arm_add_r", "arm_rot_r",
    "arm_flex_l", "arm_add_l", "arm_rot_l",
    "elbow_flex_r", "elbow_flex_l",
    "neck_flexion", "neck_adduction",
)


class Part(NamedTuple):
    """One body part = one patch column of the motion image."""

    name: str
    dof: int
    cols41: tuple[int, ...]


#: The 14 parts in patch-column order (left to right in the motion image).
PARTS: tuple[Part, ...] = (
    Part("global", 3, (3, 4, 5)),
    Part("pelvis", 3, (0, 1, 2)),
    Part("r_hip", 3, (18, 19, 20)),
    Part("l_hip", 3, (23, 24, 25)),
    Part("r_knee", 1, (21,)),
    Part("l_knee", 1, (26,)),
    Part("r_ankle", 1, (22,)),
    Part("l_ankle", 1, (27,)),
    Part("lumbar", 3, (28, 29, 30)),
    Part("neck", 2, (39, 40)),
    Part("r_shoulder", 3, (31, 32, 33)),
    Part("l_shoulder", 3, (34, 35, 36)),
    Part("r_elbow", 1, (37,)),
    Part("l_elbow", 1, (38,)),
)

PART_NAMES: tuple[str, ...] = tuple(p.name for p in PARTS)
PART_DOFS: tuple[int, ...] = tuple(p.dof for p in PARTS)

#: Body regions of the two-stage search's first pass (index/pooling.region_coarse): one coarse vector per region,
#: the mean of its parts' patches over the whole window, so a word that names a limb finds that limb's vector.
#: Parts a model names otherwise count as the first region (the core).
BODY_REGIONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("global", "pelvis", "lumbar", "neck")),
    ("legs", ("r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle")),
    ("right arm", ("r_shoulder", "r_elbow")),
    ("left arm", ("l_shoulder", "l_elbow")),
)

#: What an animator reads in the explanation UI, same order as ``PARTS``.
PART_LABELS: tuple[str, ...] = (
    "root position", "pelvis", "right hip", "left hip", "right knee", "left knee",
    "right ankle", "left ankle", "lower back", "neck", "right shoulder", "left shoulder",
    "right elbow", "left elbow",
)

#: The 29 model-input columns as indices into the 41 (``ALL_USED_INDICES`` upstream):
#: the parts' columns concatenated in patch-column order.
USED_INDICES: tuple[int, ...] = tuple(c for p in PARTS for c in p.cols41)
ALL_USED_INDICES = USED_INDICES

COLUMNS29: tuple[str, ...] = tuple(COLUMNS41[c] for c in USED_INDICES)


def _offsets(dofs: tuple[int, ...]) -> tuple[int, ...]:
    starts, total = [], 0
    for dof in dofs:
        starts.append(total)
        total += dof
    return tuple(starts)


#: Per part, its column indices inside the 29-column model input.
PART_COLS29: tuple[tuple[int, ...], ...] = tuple(
    tuple(range(start, start + p.dof)) for start, p in zip(_offsets(PART_DOFS), PARTS)
)

#: Per part, its half-open pixel range ``(start, stop)`` across the 224-pixel image width.
PART_PIXEL_RANGES: tuple[tuple[int, int], ...] = tuple(
    (PATCH_WIDTH * k, PATCH_WIDTH * (k + 1)) for k in range(len(PARTS))
)

IMAGE_WIDTH = PATCH_WIDTH * len(PARTS)
