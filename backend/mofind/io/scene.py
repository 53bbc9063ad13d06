"""Takes of scene formats (FBX, glTF) as world-space joint transforms, and their BVH-like local form.

FBX and glTF describe a skeleton as nodes with full TRS transforms (pre-rotations, pivots, scale, an armature
node above the bones, centimetre scale factors). Rather than model each file's conventions, each reader samples
every joint's *world* matrix per frame (metres, Y-up, +Z forward: what glTF prescribes and what the FBX reader
converts to), and `local_motion` re-expresses that as the `Motion` fields BVH uses: a local rotation per joint
relative to its parent joint's world orientation (scale removed) and a local translation. Forward kinematics
of those fields (`mofind.io.bvh.forward_kinematics_arrays`) reproduces the file's world joint positions exactly,
so indexing, `get_motion` and Apply need nothing format-specific.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .motion import SourceSkeleton

POSITION = ["Xposition", "Yposition", "Zposition"]
ROTATION = ["Xrotation", "Yrotation", "Zrotation"]
GLTF_DEFAULT_FPS = 30.0
# A file's frame count is bounded so a corrupt time range cannot make us allocate terabytes.
MAX_FRAMES = 1_000_000
MAX_JOINTS = 2_000


@dataclass
class SceneTake:
    """One animation of a scene file: joint names, parents (-1 for roots), world matrices per frame."""

    name: str
    names: list[str]
    parents: np.ndarray  # (J,) int, parents precede children
    world: np.ndarray  # (T, J, 4, 4) float64, metres, Y-up
    fps: float


def topological_order(parents: dict[int, int], nodes: list[int]) -> list[int]:
    """`nodes` ordered so that every node's parent (if among them) precedes it; input order kept otherwise."""
    members = set(nodes)
    done: set[int] = set()
    order: list[int] = []

    def visit(node: int) -> None:
        if node in done:
            return
        chain = []
        current = node
        while current in members and current not in done:
            chain.append(current)
            done.add(current)
            current = parents.get(current, -1)
        order.extend(reversed(chain))

    for node in nodes:
        visit(node)
    return order


def local_motion(take: SceneTake) -> tuple[SourceSkeleton, np.ndarray, np.ndarray, bool]:
    """(skeleton, local w,x,y,z quaternions (T, J, 4), local translations (T, J, 3), translations_animated).

    Offsets are the translations of the first frame; `translations_animated` is True when a non-root joint's
    translation changes over the take (then the caller keeps the per-frame translations)."""
    from scipy.spatial.transform import Rotation

    world = np.asarray(take.world, dtype=np.float64)
    num_frames, num_joints = world.shape[:2]
    position = world[..., :3, 3]
    rotation = orthonormal(world[..., :3, :3])
    local_rot = np.empty_like(rotation)
    local_pos = np.empty_like(position)
    for j, parent in enumerate(take.parents):
        if parent < 0:
            local_rot[:, j] = rotation[:, j]
            local_pos[:, j] = position[:, j]
        else:
            inverse = np.swapaxes(rotation[:, parent], -1, -2)
            local_rot[:, j] = inverse @ rotation[:, j]
            local_pos[:, j] = np.einsum("tij,tj->ti", inverse, position[:, j] - position[:, parent])
    quats = Rotation.from_matrix(local_rot.reshape(-1, 3, 3)).as_quat(scalar_first=True).reshape(num_frames,
                                                                                                 num_joints, 4)
    quats[quats[..., 0] < 0] *= -1.0
    moving = np.abs(local_pos - local_pos[:1]).max(axis=0).max(axis=-1) > 1e-4  # (J,) 0.1 mm: float32 key noise
    animated = bool(np.any(moving & (np.asarray(take.parents) >= 0)))
    channels = [POSITION + ROTATION if (p < 0 or moving[j]) else list(ROTATION)
                for j, p in enumerate(take.parents)]
    skeleton = SourceSkeleton(names=list(take.names), parents=np.asarray(take.parents, dtype=np.int64),
                              offsets=local_pos[0].copy(), channels=channels)
    return skeleton, quats, local_pos, animated


def orthonormal(matrices: np.ndarray) -> np.ndarray:
    """Rotation part of (..., 3, 3) matrices that may carry scale: columns normalised (no shear expected)."""
    norms = np.linalg.norm(matrices, axis=-2, keepdims=True)
    return matrices / np.where(norms > 1e-12, norms, 1.0)


def sample_times(start: float, end: float, fps: float) -> np.ndarray:
    """Frame times from `start` to `end` inclusive at `fps` (a take of one key has one frame)."""
    count = int(round((end - start) * fps)) + 1  # keys sit on frames; float32 key times drift a little
    return start + np.arange(max(count, 1)) / fps


def trs_matrices(translation: np.ndarray, rotation_xyzw: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """(T, 3), (T, 4) x,y,z,w, (T, 3) -> (T, 4, 4) matrices T·R·S."""
    x, y, z, w = np.moveaxis(_normalised(rotation_xyzw), -1, 0)
    rot = np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)], -1),
        np.stack([2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)], -1),
        np.stack([2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)], -1),
    ], -2)
    out = np.zeros(translation.shape[:-1] + (4, 4))
    out[..., :3, :3] = rot * scale[..., None, :]
    out[..., :3, 3] = translation
    out[..., 3, 3] = 1.0
    return out


def _normalised(q: np.ndarray) -> np.ndarray:
    norm = np.linalg.norm(q, axis=-1, keepdims=True)
    return q / np.where(norm > 1e-12, norm, 1.0)
