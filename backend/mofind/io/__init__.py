"""Reading and writing motion files (BVH, FBX, glTF/GLB, HumanML3D, KIT-ML) into `Motion` / `SourceSkeleton`."""

from .bvh import BVHData, forward_kinematics, local_quaternions, parse_bvh, read_bvh, write_bvh
from .errors import BVHParseError, MotionFormatError, MotionIOError, SkeletonMappingError
from .humanml3d import Caption, HumanML3DFolder, read_captions, read_joints_npy
from .kitml import KITMLFolder, kit_to_smpl22
from .motion import Motion, SourceSkeleton

__all__ = [
    "BVHData", "BVHParseError", "Caption", "HumanML3DFolder", "KITMLFolder", "Motion", "MotionFormatError",
    "MotionIOError", "SkeletonMappingError", "SourceSkeleton", "forward_kinematics", "kit_to_smpl22", "load_motion",
    "load_motions", "local_quaternions", "parse_bvh", "read_bvh", "read_captions", "read_joints_npy", "write_bvh",
]


def load_motion(path, fps: float = 20.0, take: str | None = None, limits=None):
    """Load any supported motion file as a `Motion` on SMPL-22 (see `mofind.skeleton.convert.load_motion`)."""
    from mofind.io.limits import DEFAULT_LIMITS
    from mofind.skeleton.convert import load_motion as _load

    return _load(path, fps=fps, take=take, limits=limits or DEFAULT_LIMITS)


def load_motions(path, fps: float = 20.0, limits=None):
    """Every take of a motion file (FBX / glTF files may hold several), see `mofind.skeleton.convert`."""
    from mofind.io.limits import DEFAULT_LIMITS
    from mofind.skeleton.convert import load_motions as _load

    return _load(path, fps=fps, limits=limits or DEFAULT_LIMITS)
