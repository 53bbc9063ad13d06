"""Source animation -> SMPL-22 joints in metres, Y-up, facing +Z at frame 0, at a target frame rate.

FBX / glTF takes arrive as world matrices (`mofind.io.scene`) and become the same local form first.
Pipeline for a BVH take: FK in source units -> map joints (preset or heuristic) -> detect unit and up
axis from the rig's own geometry -> metres, Y-up -> pick / interpolate the 22 SMPL joints -> resample
-> HumanML3D canonical frame (floor at y=0, root above the origin and facing +Z at frame 0, left = +X).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mofind.io.bvh import (BVHData, forward_kinematics_arrays, local_rotations_and_quaternions,
                           local_translations, read_bvh)
from mofind.io.assimp import SCENE_SUFFIXES, read_scene_takes
from mofind.io.errors import MotionFormatError
from mofind.io.limits import DEFAULT_LIMITS, MotionLimits
from mofind.io.motion import Motion, SourceSkeleton
from mofind.io.rotations import quat_wxyz_to_rotation
from mofind.io.scene import SceneTake, local_motion

from .mapping import SkeletonMapping, map_skeleton
from .smpl import COLLAR_WEIGHTS, HEAD_OVER_TORSO, SMPL22_INDEX, SMPL22_NAMES, SPINE, SPINE_FRACTIONS
from .units import TO_Y_UP, detect_unit, detect_up_axis, estimate_height

DEFAULT_FPS = 20.0


# --------------------------------------------------------------------------- public entry points


def load_motion(path: str | Path, fps: float = DEFAULT_FPS, take: str | None = None,
                limits: MotionLimits = DEFAULT_LIMITS) -> Motion:
    """Read a motion file (`.bvh`, `.fbx`, `.glb`/`.gltf`, or HumanML3D `.npy` joints) as a `Motion` on SMPL-22 at
    `fps`. `take` names one take of a file holding several (FBX animation stacks, glTF animations; default: the
    first); a file format with one take per file ignores it. BVH and joints files over `limits`
    (mofind.io.limits) fail with a clear error before their data is allocated."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".bvh":
        return motion_from_bvh(read_bvh(path, limits), fps=fps)
    if suffix == ".npy":
        return _motion_from_npy(path, fps, limits)
    if suffix in SCENE_SUFFIXES:
        takes = read_scene_takes(path)
        chosen = takes[0] if not take else next((t for t in takes if t.name == take), None)
        if chosen is None:
            raise MotionFormatError(f"no take named {take!r} (the file holds {', '.join(t.name for t in takes)})",
                                    path)
        return motion_from_take(_within_limits(chosen, limits, path), fps=fps, path=str(path))
    raise MotionFormatError(f"unsupported motion file type {suffix or '(none)'!r}; expected .bvh, .fbx, .glb, "
                            ".gltf or .npy", path)


def load_motions(path: str | Path, fps: float = DEFAULT_FPS, limits: MotionLimits = DEFAULT_LIMITS) -> list[Motion]:
    """Every take of a motion file as a `Motion` (one for BVH and joints files; `Motion.take` tells them apart)."""
    path = Path(path)
    if path.suffix.lower() in SCENE_SUFFIXES:
        return [motion_from_take(_within_limits(take, limits, path), fps=fps, path=str(path))
                for take in read_scene_takes(path)]
    return [load_motion(path, fps=fps, limits=limits)]


def _within_limits(take: SceneTake, limits: MotionLimits, path: Path) -> SceneTake:
    """The BVH caps for an FBX / glTF take, checked before it is converted and resampled (the reader has
    allocated its matrices already; a 0.01 fps or hour-long take would multiply them)."""
    frames, joints = int(take.world.shape[0]), int(take.world.shape[1])
    where = f"{path} (take {take.name!r})"
    if joints > limits.max_joints:
        raise MotionFormatError(f"{joints} joints; the cap max_joints is {limits.max_joints}", where)
    if frames > limits.max_frames:
        raise MotionFormatError(f"{frames} frames; the cap max_frames is {limits.max_frames}", where)
    if not limits.min_fps <= take.fps <= limits.max_fps:
        raise MotionFormatError(f"{take.fps:g} fps; allowed {limits.min_fps:g} to {limits.max_fps:g} (the caps "
                                "min_fps / max_fps)", where)
    if frames / take.fps > limits.max_duration_s:
        raise MotionFormatError(f"the take lasts {frames / take.fps:.0f} s; the cap max_duration_s is "
                                f"{limits.max_duration_s:g}", where)
    if not np.isfinite(take.world).all() or np.abs(take.world).max(initial=0.0) > limits.max_abs_value:
        raise MotionFormatError("non-finite or absurd transform values (the cap max_abs_value)", where)
    return take


def motion_from_take(take: SceneTake, fps: float = DEFAULT_FPS, path: str | None = None) -> Motion:
    """Convert one FBX / glTF take (world matrices, metres, Y-up) to a `Motion`, like a BVH take."""
    if take.world.shape[0] == 0:
        raise MotionFormatError(f"take {take.name!r} holds no frames", path)
    skeleton, quats, translations, animated = local_motion(take)
    mapping = map_skeleton(skeleton, path)
    mats = quat_wxyz_to_rotation(quats.reshape(-1, 4)).as_matrix().reshape(quats.shape[:2] + (3, 3))
    positions, global_rotations = forward_kinematics_arrays(skeleton.parents, mats, translations, True)
    joints, info = source_to_smpl22(positions, skeleton, mapping, global_rotations)
    joints = canonicalize(resample(joints, take.fps, fps))
    return Motion(
        joints=joints.astype(np.float32), fps=float(fps), source=path, frame_range=(0, int(take.world.shape[0])),
        source_fps=float(take.fps), skeleton=skeleton, local_rotations=quats.astype(np.float32),
        root_translation=translations[:, 0].astype(np.float32),
        joint_translations=translations.astype(np.float32) if animated else None, mapping=info, take=take.name)


def _motion_from_npy(path: Path, fps: float, limits: MotionLimits = DEFAULT_LIMITS) -> Motion:
    """HumanML3D (T, 22, 3) joints at 20 fps, or KIT-ML (T, 21, 3) at 12.5 fps, told apart by shape."""
    from mofind.io.humanml3d import HUMANML3D_FPS, read_joints_npy
    from mofind.io.kitml import KIT_FPS, kit_to_smpl22

    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError, EOFError) as exc:
        raise MotionFormatError(f"cannot read joints array: {exc}", path) from exc
    if len(shape) >= 1 and shape[0] > limits.max_frames:
        raise MotionFormatError(f"{shape[0]} frames; the cap max_frames is {limits.max_frames}", path)
    if len(shape) == 3 and shape[1:] == (21, 3):
        joints, source_fps = kit_to_smpl22(read_joints_npy(path, 21)), KIT_FPS
    else:
        joints, source_fps = read_joints_npy(path, 22), HUMANML3D_FPS
    return Motion(joints=resample(joints, source_fps, fps).astype(np.float32), fps=float(fps), source=str(path),
                  frame_range=(0, int(joints.shape[0])), source_fps=source_fps)


def motion_from_bvh(bvh: BVHData, fps: float = DEFAULT_FPS, mapping: SkeletonMapping | None = None) -> Motion:
    """Convert a parsed BVH to a `Motion` (see module docstring)."""
    skeleton = bvh.skeleton
    if bvh.num_frames == 0:
        raise MotionFormatError("the file holds no frames", bvh.path)
    mapping = mapping or map_skeleton(skeleton, bvh.path)
    mats, quats = local_rotations_and_quaternions(bvh)
    translations = local_translations(bvh)
    positions, global_rotations = forward_kinematics_arrays(skeleton.parents, mats, translations, True)
    joints, info = source_to_smpl22(positions, skeleton, mapping, global_rotations)
    joints = canonicalize(resample(joints, bvh.fps, fps))
    animated = _has_animated_joint_translations(skeleton)
    return Motion(
        joints=joints.astype(np.float32),
        fps=float(fps),
        source=bvh.path,
        frame_range=(0, bvh.num_frames),
        source_fps=float(bvh.fps),
        skeleton=skeleton,
        local_rotations=quats.astype(np.float32),
        root_translation=translations[:, 0].astype(np.float32),
        joint_translations=translations.astype(np.float32) if animated else None,
        mapping=info,
    )


def source_to_smpl22(positions: np.ndarray, skeleton: SourceSkeleton, mapping: SkeletonMapping,
                     global_rotations: np.ndarray | None = None) -> tuple[np.ndarray, dict]:
    """(T, J, 3) source-unit FK positions -> ((T, 22, 3) metres Y-up, mapping info dict).

    `global_rotations` (T, J, 3, 3) lets a missing ball-of-foot joint be placed from the ankle's end site."""
    idx = mapping.source_index(skeleton)
    first = positions[0]
    height_src = _height_in_source_units(first, skeleton, mapping, idx)
    unit, scale = detect_unit(height_src)
    lower = positions[:, [idx["left_ankle"], idx["right_ankle"]]].mean(axis=1)
    upper = positions[:, idx.get("neck", idx.get("head"))]
    up_axis = detect_up_axis(lower, upper)
    to_y_up = TO_Y_UP[up_axis] * scale
    metres = positions @ to_y_up.T
    sites = {}
    if global_rotations is not None:
        for side in ("left", "right"):
            ankle = idx[f"{side}_ankle"]
            site = skeleton.end_sites.get(ankle)
            if f"{side}_foot" not in idx and site is not None and np.linalg.norm(site) > 0:
                sites[ankle] = (positions[:, ankle] + global_rotations[:, ankle] @ site) @ to_y_up.T
    joints, interpolated = _assemble(metres, skeleton, idx, sites)
    info = {
        "preset": mapping.preset,
        "smpl_to_source": dict(mapping.smpl_to_source),
        "unmapped": list(mapping.unmapped),
        "interpolated": interpolated,
        "ignored_source_joints": list(mapping.ignored),
        "unit": unit,
        "unit_scale": float(scale),
        "up_axis": up_axis,
        "height_m": float(height_src * scale),
    }
    return joints, info


# --------------------------------------------------------------------------- geometry helpers


def canonicalize(joints: np.ndarray) -> np.ndarray:
    """HumanML3D frame: floor (lowest joint over the clip) at y=0, pelvis above the origin and facing +Z
    at frame 0 (left is +X)."""
    joints = np.array(joints, dtype=np.float64, copy=True)
    if joints.shape[0] == 0:
        return joints
    joints[..., 1] -= joints[..., 1].min()
    joints[..., [0, 2]] -= joints[0, 0, [0, 2]]
    i = SMPL22_INDEX
    across = (joints[0, i["right_hip"]] - joints[0, i["left_hip"]]) + \
             (joints[0, i["right_shoulder"]] - joints[0, i["left_shoulder"]])
    forward = np.cross(np.array([0.0, 1.0, 0.0]), across)
    norm = np.hypot(forward[0], forward[2])
    if norm < 1e-9:
        return joints
    yaw = np.arctan2(forward[0], forward[2])  # angle from +Z towards +X
    c, s = np.cos(-yaw), np.sin(-yaw)
    rot = np.array([[c, 0.0, s], [0.0, 1.0, 0.0], [-s, 0.0, c]])  # rotation about +Y by -yaw
    return joints @ rot.T


def resample(values: np.ndarray, source_fps: float, target_fps: float) -> np.ndarray:
    """Linear interpolation along axis 0 from `source_fps` to `target_fps` (same start, never past the end)."""
    values = np.asarray(values)
    num = values.shape[0]
    if num < 2 or abs(source_fps - target_fps) < 1e-9:
        return values.copy()
    duration = (num - 1) / source_fps
    out_count = int(np.floor(duration * target_fps + 1e-6)) + 1
    src = np.arange(out_count) * (source_fps / target_fps)
    i0 = np.minimum(np.floor(src).astype(np.int64), num - 1)
    i1 = np.minimum(i0 + 1, num - 1)
    w = (src - i0).reshape((-1,) + (1,) * (values.ndim - 1))
    return values[i0] * (1.0 - w) + values[i1] * w


def _has_animated_joint_translations(skeleton: SourceSkeleton) -> bool:
    return any(p >= 0 and any(c.endswith("position") for c in chans)
               for p, chans in zip(skeleton.parents, skeleton.channels))


def _spine_path(skeleton: SourceSkeleton, idx: dict[str, int]) -> list[int]:
    """Source joints strictly between the pelvis and the neck (or head) joint, bottom to top."""
    top = idx.get("neck", idx.get("head"))
    pelvis = idx["pelvis"]
    path = []
    j = int(skeleton.parents[top])
    while j >= 0 and j != pelvis:
        path.append(j)
        j = int(skeleton.parents[j])
    return path[::-1] if j == pelvis else []


def _height_in_source_units(first: np.ndarray, skeleton: SourceSkeleton, mapping: SkeletonMapping,
                            idx: dict[str, int]) -> float:
    def dist(a, b):
        return float(np.linalg.norm(first[a] - first[b]))

    leg = np.mean([dist(idx[f"{s}_hip"], idx[f"{s}_knee"]) + dist(idx[f"{s}_knee"], idx[f"{s}_ankle"])
                   for s in ("left", "right")])
    top = idx.get("neck", idx.get("head"))
    chain = [idx["pelvis"], *_spine_path(skeleton, idx), top]
    torso = sum(dist(a, b) for a, b in zip(chain[:-1], chain[1:]))
    head_top = None
    if "neck" in idx and "head" in idx:
        neck_to_head = dist(idx["neck"], idx["head"])
        site = skeleton.end_sites.get(idx["head"])
        head_top = float(np.linalg.norm(site)) if site is not None else None
    else:
        neck_to_head = HEAD_OVER_TORSO * torso
    return estimate_height(float(leg), torso, neck_to_head, head_top)


def _assemble(metres: np.ndarray, skeleton: SourceSkeleton, idx: dict[str, int], sites: dict[int, np.ndarray]
              ) -> tuple[np.ndarray, list[str]]:
    """Pick mapped joints, interpolate the rest; returns (T, 22, 3) and the interpolated SMPL names."""
    num_frames = metres.shape[0]
    out = np.zeros((num_frames, 22, 3))
    have = np.zeros(22, dtype=bool)
    for smpl, j in idx.items():
        if smpl in SPINE or smpl.endswith("_collar"):
            continue
        out[:, SMPL22_INDEX[smpl]] = metres[:, j]
        have[SMPL22_INDEX[smpl]] = True
    i = SMPL22_INDEX
    interpolated: list[str] = []
    mid_shoulders = 0.5 * (out[:, i["left_shoulder"]] + out[:, i["right_shoulder"]])
    if not have[i["neck"]]:
        out[:, i["neck"]] = mid_shoulders + 0.53 * (out[:, i["head"]] - mid_shoulders)
        interpolated.append("neck")
    if not have[i["head"]]:
        out[:, i["head"]] = out[:, i["neck"]] + HEAD_OVER_TORSO * (out[:, i["neck"]] - out[:, i["pelvis"]])
        interpolated.append("head")

    # spine1..3 at SMPL proportions along the source spine polyline
    chain = np.concatenate([out[:, [i["pelvis"]]], metres[:, _spine_path(skeleton, idx)], out[:, [i["neck"]]]], axis=1)
    out[:, [i[s] for s in SPINE]] = _sample_polyline(chain, SPINE_FRACTIONS)
    interpolated += SPINE

    for side in ("left", "right"):
        collar, shoulder = f"{side}_collar", f"{side}_shoulder"
        if collar in idx and _collar_is_lateral(metres[0, idx[collar]], out[0, i[shoulder]], out[0, i["neck"]]):
            out[:, i[collar]] = metres[:, idx[collar]]
            continue
        spine3 = out[:, i["spine3"]]
        a, b = COLLAR_WEIGHTS
        out[:, i[collar]] = spine3 + a * (out[:, i["neck"]] - spine3) + b * (out[:, i[shoulder]] - spine3)
        interpolated.append(collar)

    for side in ("left", "right"):
        foot, ankle, knee = f"{side}_foot", f"{side}_ankle", f"{side}_knee"
        if not have[i[foot]]:
            if idx[ankle] in sites:  # the ankle's end site is the toe tip; the ball sits ~2/3 of the way
                out[:, i[foot]] = out[:, i[ankle]] + 0.66 * (sites[idx[ankle]] - out[:, i[ankle]])
            else:
                out[:, i[foot]] = out[:, i[ankle]] + 0.25 * (out[:, i[ankle]] - out[:, i[knee]])
            interpolated.append(foot)
    order = {n: k for k, n in enumerate(SMPL22_NAMES)}
    return out, sorted(set(interpolated), key=order.get)


def _collar_is_lateral(collar: np.ndarray, shoulder: np.ndarray, neck: np.ndarray) -> bool:
    """A usable collar sits between the neck and the shoulder; CMU's sits on the spine (use interpolation)."""
    span = np.linalg.norm(shoulder - neck)
    return bool(span > 0 and np.linalg.norm(shoulder - collar) <= 0.8 * span
                and np.linalg.norm(collar - neck) >= 0.2 * span)


def _sample_polyline(points: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """(T, K, 3) polyline, fractions (F,) of its arc length -> (T, F, 3); straight line when degenerate."""
    seg = np.linalg.norm(np.diff(points, axis=1), axis=-1)  # (T, K-1)
    cum = np.concatenate([np.zeros((points.shape[0], 1)), np.cumsum(seg, axis=1)], axis=1)  # (T, K)
    total = cum[:, -1:]
    out = np.empty((points.shape[0], len(fractions), 3))
    for f, frac in enumerate(fractions):
        target = frac * total[:, 0]
        k = np.clip((cum[:, 1:-1] < target[:, None]).sum(axis=1), 0, points.shape[1] - 2)
        rows = np.arange(points.shape[0])
        length = seg[rows, k]
        w = np.where(length > 1e-12, (target - cum[rows, k]) / np.maximum(length, 1e-12), 0.0)
        out[:, f] = points[rows, k] + w[:, None] * (points[rows, k + 1] - points[rows, k])
    degenerate = total[:, 0] < 1e-9
    if degenerate.any():
        start, end = points[degenerate, 0], points[degenerate, -1]
        out[degenerate] = start[:, None] + fractions[None, :, None] * (end - start)[:, None]
    return out


__all__ = ["DEFAULT_FPS", "canonicalize", "load_motion", "load_motions", "motion_from_bvh", "motion_from_take",
           "resample", "source_to_smpl22"]
