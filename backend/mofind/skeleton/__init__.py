"""Mapping any source skeleton onto SMPL-22 (metres, Y-up, facing +Z) and resampling it."""

from .convert import DEFAULT_FPS, canonicalize, load_motion, motion_from_bvh, resample, source_to_smpl22
from .mapping import SkeletonMapping, map_skeleton
from .smpl import SMPL22_INDEX, SMPL22_NAMES, SMPL22_PARENTS

__all__ = [
    "DEFAULT_FPS", "SMPL22_INDEX", "SMPL22_NAMES", "SMPL22_PARENTS", "SkeletonMapping", "canonicalize",
    "load_motion", "map_skeleton", "motion_from_bvh", "resample", "source_to_smpl22",
]
