"""KIT-ML folder reader: the HumanML3D layout with 21 KIT joints at 12.5 fps, reordered into SMPL-22.

KIT joint order (as in the HumanML3D release of KIT-ML): 0 root, 1 pelvis, 2 neck, 3 upper neck,
4 head, 5-7 right shoulder/elbow/wrist, 8-10 left shoulder/elbow/wrist, 11-15 right hip/knee/ankle/
ankle (duplicate)/foot, 16-20 the same on the left. The SMPL joints that have a KIT counterpart take it
(the correspondence MotionColBert's preprocessing uses, so joint angles match the official ones);
spine1-3 are placed along pelvis->neck at SMPL proportions and the collars with the SMPL collar rule,
so the result is a complete, plausible SMPL-22 body. KIT positions are in millimetres and are scaled to
metres (joint angles do not depend on the scale).
"""

from __future__ import annotations

import numpy as np

from .humanml3d import MotionTextFolder

KIT_FPS = 12.5
KIT_JOINT_NAMES = [
    "root", "pelvis", "neck", "upper_neck", "head",
    "right_shoulder", "right_elbow", "right_wrist", "left_shoulder", "left_elbow", "left_wrist",
    "right_hip", "right_knee", "right_ankle", "right_ankle_2", "right_foot",
    "left_hip", "left_knee", "left_ankle", "left_ankle_2", "left_foot",
]
# SMPL-22 name -> KIT joint name, for the joints KIT has
SMPL_FROM_KIT = {
    "pelvis": "pelvis", "neck": "neck", "head": "head",
    **{f"{side}_{part}": f"{side}_{part}" for side in ("left", "right")
       for part in ("hip", "knee", "ankle", "foot", "shoulder", "elbow", "wrist")},
}


def kit_to_smpl22(kit: np.ndarray, scale: float | None = None) -> np.ndarray:
    """(T, 21, 3) KIT joints -> (T, 22, 3) SMPL-22 (metres). `scale` defaults to a height-based guess."""
    from mofind.skeleton.smpl import COLLAR_WEIGHTS, SMPL22_INDEX, SPINE, SPINE_FRACTIONS

    kit = np.asarray(kit, dtype=np.float64)
    out = np.zeros((kit.shape[0], 22, 3))
    k = {name: i for i, name in enumerate(KIT_JOINT_NAMES)}
    for smpl, kit_name in SMPL_FROM_KIT.items():
        out[:, SMPL22_INDEX[smpl]] = kit[:, k[kit_name]]
    pelvis, neck = out[:, SMPL22_INDEX["pelvis"]], out[:, SMPL22_INDEX["neck"]]
    for name, frac in zip(SPINE, SPINE_FRACTIONS):
        out[:, SMPL22_INDEX[name]] = pelvis + frac * (neck - pelvis)
    spine3 = out[:, SMPL22_INDEX["spine3"]]
    a, b = COLLAR_WEIGHTS
    for side in ("left", "right"):
        shoulder = out[:, SMPL22_INDEX[f"{side}_shoulder"]]
        out[:, SMPL22_INDEX[f"{side}_collar"]] = spine3 + a * (neck - spine3) + b * (shoulder - spine3)
    if scale is None:
        scale = _guess_scale(out)
    return (out * scale).astype(np.float32)


def _guess_scale(smpl22: np.ndarray) -> float:
    from mofind.skeleton.smpl import SMPL22_INDEX as i
    from mofind.skeleton.units import detect_unit, estimate_height

    first = smpl22[0]

    def dist(a, b):
        return float(np.linalg.norm(first[i[a]] - first[i[b]]))

    leg = 0.5 * sum(dist(f"{s}_hip", f"{s}_knee") + dist(f"{s}_knee", f"{s}_ankle") for s in ("left", "right"))
    height = estimate_height(leg, dist("pelvis", "neck"), dist("neck", "head"), None)
    return detect_unit(height)[1]


class KITMLFolder(MotionTextFolder):
    """KIT-ML in the HumanML3D layout; `joints(id)` returns SMPL-22 order in metres at 12.5 fps."""

    fps = KIT_FPS
    num_source_joints = 21

    def _to_smpl22(self, joints: np.ndarray) -> np.ndarray:
        return kit_to_smpl22(joints)
