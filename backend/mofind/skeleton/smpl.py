"""The SMPL-22 joint set used by HumanML3D (and therefore by the model), plus body proportions.

Proportions were measured on HumanML3D `new_joints` (mean over the frames of a sample clip) and are
used to place SMPL joints that a source skeleton does not have.
"""

from __future__ import annotations

import numpy as np

SMPL22_NAMES = [
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
]
SMPL22_PARENTS = np.array([-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19], dtype=np.int64)
SMPL22_INDEX = {name: i for i, name in enumerate(SMPL22_NAMES)}

# Joints without which a pose cannot be described; everything else can be interpolated.
REQUIRED = [
    "pelvis", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle", "right_ankle",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
]
SPINE = ["spine1", "spine2", "spine3"]

# Arc-length fractions of spine1/2/3 along the pelvis -> neck polyline (HumanML3D: 0.239, 0.498, 0.602).
SPINE_FRACTIONS = np.array([0.239, 0.498, 0.602])
# collar ~= spine3 + a * (neck - spine3) + b * (shoulder - spine3)   (least squares on HumanML3D, rms 1.3 cm)
COLLAR_WEIGHTS = (0.34, 0.36)
# neck -> head distance as a fraction of pelvis -> neck (0.103 / 0.551), used when a rig has no head joint.
HEAD_OVER_TORSO = 0.19
