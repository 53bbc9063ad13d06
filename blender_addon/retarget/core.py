"""Rest-pose-aware retargeting of an original take onto a Blender armature (numpy only).

The clip keeps its own skeleton and rotations (no detour through SMPL positions); SMPL-22 only
names which source joint and which target bone play the same body part. Per frame, vectorised
over frames:

1. Forward kinematics of the source, then into Blender armature space: metres, Z-up, and turned
   about Z so the source's rest left->right axis lies along the rig's.
2. Every bone that plays an SMPL joint gets a world orientation = the source joint's world
   rotation (relative to its rest) applied to the bone's rest orientation, after that rest has
   been swung so its direction matches the source rest direction. A last minimal swing makes
   the bone point exactly where the source bone points. Rest differences (A- vs T-pose, bone
   rolls, proportions) cancel; the twist about the bone follows the source.
   "Direction" = from the joint towards the next joint of its limb that both sides map, so
   tails that do not point at the child (FBX imports) do not matter.
3. Other bones keep their rest pose relative to their parent. Local pose quaternions are taken
   relative to rest and parent, as Blender evaluates `rotation_quaternion`.
4. The nearest common ancestor of the mapped bones carries the location keys: they put the
   rig's hip centre at the source's, scaled by the leg-length ratio (target hip->ankle over
   source hip->ankle) so strides fit the character. Without a pelvis (arms or upper body
   only) nothing travels.
5. With `plant_feet`, thighs and shins are turned by two-bone IK so ankles stay put while
   the source foot is planted (`feet.py`).

Rigs animated through control bones (generated Rigify) take the world orientations instead
(`retarget_world`); `apply.py` solves their controls in Blender.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace

import numpy as np

from . import quat
from .feet import plant_feet
from .mapping import LIMB_CHAINS, SMPL22_NAMES, SMPL22_PARENTS, detect_bone_map

UP_AXES = ("Y", "Z")


def to_z_up(up_axis: str) -> np.ndarray:
    """Source axes -> Blender's Z-up. Y-up data turns +90 degrees about X, (x, y, z) -> (x, -z, y),
    so a HumanML3D-style body facing +Z ends up facing -Y, Blender's front view."""
    return quat.axis_rotation("X", np.pi / 2) if up_axis == "Y" else np.eye(3)


class RetargetError(ValueError):
    """The clip or the rig cannot be retargeted; the message says what is wrong with which input."""


@dataclass(frozen=True)
class SourceClip:
    """A take in its own skeleton: the `get_motion` payload with arrays decoded."""

    names: tuple[str, ...]
    parents: np.ndarray  # (J,) int, -1 = root
    offsets: np.ndarray  # (J, 3) rest offset from the parent, source units
    rotations: np.ndarray  # (T, J, 4) local quaternions w,x,y,z
    root_translation: np.ndarray  # (T, 3) root joint position, source units (replaces the root offset)
    fps: float
    unit_scale: float = 1.0  # source unit -> metres
    up_axis: str = "Y"
    smpl_to_source: Mapping[str, str] = field(default_factory=dict)
    joint_translations: np.ndarray | None = None  # optional (T, J, 3) animated local offsets

    def __post_init__(self) -> None:
        _check_source(self)

    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])

    @classmethod
    def from_payload(cls, payload: Mapping) -> "SourceClip":
        """Build from the `get_motion` result (arrays already decoded to numpy or nested lists)."""
        if not isinstance(payload, Mapping):
            raise RetargetError(f"motion payload must be a dict, got {type(payload).__name__}")
        missing = [k for k in ("skeleton", "fps", "rotations", "root_translation") if k not in payload]
        if missing:
            raise RetargetError(f"motion payload lacks {', '.join(missing)}")
        skeleton = payload["skeleton"]
        if not isinstance(skeleton, Mapping) or any(k not in skeleton for k in ("names", "parents", "offsets")):
            raise RetargetError("motion payload 'skeleton' must hold 'names', 'parents' and 'offsets'")
        for key in ("rotations", "root_translation", "joint_translations"):
            if isinstance(payload.get(key), Mapping):
                raise RetargetError(f"motion payload '{key}' is still a frame reference; "
                                    "decode the binary frames first")
        names = tuple(str(n) for n in skeleton["names"])
        smpl_to_source = payload.get("smpl_to_source") or detect_bone_map(list(names)).smpl_to_bone
        joint_translations = payload.get("joint_translations")
        return cls(
            names=names,
            parents=skeleton["parents"],
            offsets=skeleton["offsets"],
            rotations=payload["rotations"],
            root_translation=payload["root_translation"],
            fps=payload["fps"],
            unit_scale=payload.get("unit_scale", 1.0),
            up_axis=payload.get("up_axis", "Y"),
            smpl_to_source=dict(smpl_to_source),
            joint_translations=joint_translations,
        )


@dataclass(frozen=True)
class TargetRig:
    """An armature as `apply.py` reads it: bones, parents and rest matrices in armature space."""

    names: tuple[str, ...]
    parents: np.ndarray  # (B,) int, -1 = root
    rest_matrices: np.ndarray  # (B, 4, 4) bone.matrix_local: head at [:3, 3], bone +Y = head->tail
    smpl_to_bone: Mapping[str, str]

    def __post_init__(self) -> None:
        _check_target(self)


@dataclass(frozen=True)
class RetargetOptions:
    in_place: bool = False  # keep the hips over the rig's rest position (no horizontal travel)
    fps: float | None = None  # output frame rate; None keeps the clip's own frames
    plant_feet: bool = False  # pin feet where the source foot is planted (two-bone leg IK); see feet.py


@dataclass(frozen=True)
class TargetKeys:
    """What an action needs: local pose quaternions for every bone and the root bone's location."""

    bone_names: tuple[str, ...]
    rotations: np.ndarray  # (T, B, 4) w,x,y,z pose-bone rotation_quaternion, continuous in time
    keyed: np.ndarray  # (B,) bool: bones whose rotation must be keyed (mapped bones and their ancestors)
    root_bone: str  # bone that carries the location keys
    root_location: np.ndarray  # (T, 3) pose-bone location of `root_bone`
    fps: float
    scale: float  # leg-length ratio applied to the root motion
    pairs: Mapping[str, tuple[str, str]]  # SMPL joint -> (source joint, target bone) actually used

    @property
    def num_frames(self) -> int:
        return int(self.rotations.shape[0])


@dataclass(frozen=True)
class WorldPose:
    """Where every mapped bone should be, per frame, in armature space (before it becomes keys).

    A control rig (generated Rigify) is keyed from this: its deform bones follow controls through
    constraints, so `apply.py` solves the controls against these orientations in Blender itself.
    """

    rotations: Mapping[str, np.ndarray]  # mapped bone -> (T, 3, 3) world orientation (rest orientation at rest)
    hip_target: np.ndarray | None  # (T, 3) where the hip bones' heads' midpoint goes; None: no pelvis, no travel
    hip_joints: tuple[str, ...]  # the bones whose heads' midpoint `hip_target` is about
    fps: float
    scale: float
    pairs: Mapping[str, tuple[str, str]]

    @property
    def num_frames(self) -> int:
        return int(next(iter(self.rotations.values())).shape[0])


def retarget(source: SourceClip, target: TargetRig, options: RetargetOptions | None = None) -> TargetKeys:
    """Transfer `source` onto `target`; see the module docstring for the method."""
    step = _solve(source, target, options or RetargetOptions())
    pairs, rest_rot, bone_world, hip_shift, scale, fps = (
        step["pairs"], step["rest_rot"], step["bone_world"], step["hip_shift"], step["scale"], step["fps"])
    mapped_bones = {b for _, b in pairs.values()}
    root = _translation_bone(target.parents, mapped_bones)
    # Ancestors of the root bone stay at rest, so its location is the head shift in its rest frame.
    root_location = hip_shift @ rest_rot[root]

    local = _local_rotations(target.parents, rest_rot, bone_world)
    keyed = np.zeros(len(target.names), dtype=bool)
    for bone in mapped_bones | {root}:
        while bone >= 0:
            keyed[bone] = True
            bone = int(target.parents[bone])
    return TargetKeys(
        bone_names=tuple(target.names),
        rotations=quat.make_continuous(quat.matrix_to_quat(local), axis=0),
        keyed=keyed,
        root_bone=target.names[root],
        root_location=root_location,
        fps=fps,
        scale=float(scale),
        pairs={smpl: (source.names[j], target.names[b]) for smpl, (j, b) in pairs.items()},
    )


def retarget_world(source: SourceClip, target: TargetRig, options: RetargetOptions | None = None) -> WorldPose:
    """The same transfer as `retarget`, stopped at world orientations (for rigs keyed through controls)."""
    step = _solve(source, target, options or RetargetOptions())
    pairs = step["pairs"]
    hip_bones = _hip_bones(pairs)
    return WorldPose(
        rotations={target.names[b]: rot for b, rot in step["mapped_world"].items()},
        hip_target=step["hip_target"],
        hip_joints=tuple(target.names[b] for b in hip_bones),
        fps=step["fps"],
        scale=float(step["scale"]),
        pairs={smpl: (source.names[j], target.names[b]) for smpl, (j, b) in pairs.items()},
    )


def _solve(source: SourceClip, target: TargetRig, options: RetargetOptions) -> dict:
    if options.fps is not None and abs(options.fps - source.fps) > 1e-6:
        source = resample(source, options.fps)
    pairs = _joint_pairs(source, target)

    rest_rot = _orthonormal(target.rest_matrices[:, :3, :3])
    rest_heads = np.asarray(target.rest_matrices[:, :3, 3], dtype=np.float64)
    raw_rest = source_rest_positions(source)
    turn = _facing_turn(raw_rest @ to_z_up(source.up_axis).T, rest_heads, pairs)
    to_target = turn @ to_z_up(source.up_axis)
    src_rest = source.unit_scale * raw_rest @ to_target.T
    world_rot, world_pos = source_forward_kinematics(source)
    src_rot = to_target @ world_rot @ to_target.T
    src_pos = source.unit_scale * world_pos @ to_target.T

    mapped_world = _mapped_bone_orientations(pairs, src_rest, src_rot, src_pos, rest_rot, rest_heads)
    scale = _leg_ratio(pairs, src_rest, rest_heads)
    hip_target = _hip_target(pairs, src_pos, rest_heads, scale, options.in_place)
    bone_world, bone_heads = _target_forward_kinematics(target.parents, rest_rot, rest_heads, mapped_world)
    hip_shift = hip_target - _hip_centre(pairs, bone_heads, side="target")
    if not ("pelvis" in pairs or ("left_hip" in pairs and "right_hip" in pairs)):
        hip_shift, hip_target = np.zeros_like(hip_shift), None  # arms or upper body only: the rig does not travel
    if options.plant_feet:
        heads = _leg_heads(pairs, rest_rot, rest_heads, mapped_world, hip_target, bone_heads + hip_shift[:, None])
        mapped_world = plant_feet(pairs, heads, mapped_world, src_pos, source.fps)
        bone_world, _ = _target_forward_kinematics(target.parents, rest_rot, rest_heads, mapped_world)
    return {"pairs": pairs, "rest_rot": rest_rot, "mapped_world": mapped_world, "bone_world": bone_world,
            "hip_shift": hip_shift, "hip_target": hip_target, "scale": scale, "fps": float(source.fps)}


def resample(source: SourceClip, fps: float) -> SourceClip:
    """The same take at another frame rate: slerp for rotations, linear for translations."""
    if not np.isfinite(fps) or fps <= 0:
        raise RetargetError(f"output frame rate must be positive, got {fps}")
    count = int(np.floor((source.num_frames - 1) * fps / source.fps + 1e-9)) + 1
    position = np.arange(count) * (source.fps / fps)
    lo = np.minimum(np.floor(position).astype(np.int64), source.num_frames - 1)
    hi = np.minimum(lo + 1, source.num_frames - 1)
    weight = position - lo

    def lerp(values: np.ndarray) -> np.ndarray:
        shape = (count,) + (1,) * (values.ndim - 1)
        return values[lo] + weight.reshape(shape) * (values[hi] - values[lo])

    weights = np.broadcast_to(weight[:, None], (count, len(source.names)))
    return replace(
        source,
        rotations=quat.slerp(source.rotations[lo], source.rotations[hi], weights),
        root_translation=lerp(source.root_translation),
        joint_translations=None if source.joint_translations is None else lerp(source.joint_translations),
        fps=float(fps),
    )


def source_forward_kinematics(source: SourceClip) -> tuple[np.ndarray, np.ndarray]:
    """(T, J, 3, 3) world rotations and (T, J, 3) world positions in source units and axes."""
    local = quat.quat_to_matrix(source.rotations)
    frames, joints = source.rotations.shape[:2]
    rot = np.empty((frames, joints, 3, 3))
    pos = np.empty((frames, joints, 3))
    for j in topological_order(source.parents):
        p = int(source.parents[j])
        if p < 0:
            rot[:, j] = local[:, j]
            pos[:, j] = source.root_translation
            continue
        offset = source.offsets[j] if source.joint_translations is None else source.joint_translations[:, j]
        rot[:, j] = rot[:, p] @ local[:, j]
        pos[:, j] = pos[:, p] + np.einsum("tij,tj->ti", rot[:, p], np.broadcast_to(offset, (frames, 3)))
    return rot, pos


def source_rest_positions(source: SourceClip) -> np.ndarray:
    """(J, 3) joint positions of the rest pose (all local rotations identity), root at the origin."""
    pos = np.zeros((len(source.names), 3))
    for j in topological_order(source.parents):
        p = int(source.parents[j])
        if p >= 0:
            pos[j] = pos[p] + source.offsets[j]
    return pos


def topological_order(parents: np.ndarray) -> list[int]:
    """Indices with every parent before its children; raises RetargetError on a cycle."""
    parents = [int(p) for p in parents]
    children: dict[int, list[int]] = {}
    for j, p in enumerate(parents):
        children.setdefault(p, []).append(j)
    order: list[int] = []
    stack = list(reversed(children.get(-1, [])))
    while stack:
        j = stack.pop()
        order.append(j)
        stack.extend(reversed(children.get(j, [])))
    if len(order) != len(parents):
        raise RetargetError("joint hierarchy has a cycle (some parent chain never reaches a root)")
    return order


# --- steps of `retarget` ------------------------------------------------------------------------


def _joint_pairs(source: SourceClip, target: TargetRig) -> dict[str, tuple[int, int]]:
    src_index = {n: i for i, n in enumerate(source.names)}
    tgt_index = {n: i for i, n in enumerate(target.names)}
    pairs = {smpl: (src_index[source.smpl_to_source[smpl]], tgt_index[target.smpl_to_bone[smpl]])
             for smpl in SMPL22_NAMES if smpl in source.smpl_to_source and smpl in target.smpl_to_bone}
    if not pairs:
        raise RetargetError("no body joint is mapped on both the clip and the armature: check the bone map")
    return pairs


def _facing_turn(src_rest_z_up: np.ndarray, rest_heads: np.ndarray, pairs: dict) -> np.ndarray:
    """Rotation about Z that lays the source's rest left->right axis along the rig's (identity if unknown)."""
    for left, right in (("left_hip", "right_hip"), ("left_shoulder", "right_shoulder"),
                        ("left_collar", "right_collar")):
        if left in pairs and right in pairs:
            src = src_rest_z_up[pairs[left][0]] - src_rest_z_up[pairs[right][0]]
            tgt = rest_heads[pairs[left][1]] - rest_heads[pairs[right][1]]
            if np.hypot(*src[:2]) > 1e-9 and np.hypot(*tgt[:2]) > 1e-9:
                angle = np.arctan2(tgt[1], tgt[0]) - np.arctan2(src[1], src[0])
                return quat.axis_rotation("Z", angle)
    return np.eye(3)


def _direction_child(smpl: str, pairs: dict, src_rest: np.ndarray, rest_heads: np.ndarray) -> str | None:
    """The nearest joint further along the limb that both sides map, if it is a usable direction.

    Only unmapped joints may lie in between (they are rigid with the bone on the target side). When
    that joint sits on top of this one on either side (CMU's LowerBack starts where Hips does) there
    is no direction and the bone just follows the source joint's rotation.
    """
    child = next((c for c in LIMB_CHAINS[smpl] if c in pairs), None)
    if child is None:
        return None
    (j, b), (jc, bc) = pairs[smpl], pairs[child]
    src_size = np.ptp(src_rest, axis=0).max() or 1.0
    tgt_size = np.ptp(rest_heads, axis=0).max() or 1.0
    if (np.linalg.norm(src_rest[jc] - src_rest[j]) <= 1e-4 * src_size
            or np.linalg.norm(rest_heads[bc] - rest_heads[b]) <= 1e-4 * tgt_size):
        return None
    return child


def _mapped_bone_orientations(pairs, src_rest, src_rot, src_pos, rest_rot, rest_heads) -> dict[int, np.ndarray]:
    """World orientation (T, 3, 3) of every bone that plays an SMPL joint."""
    rest_align: dict[str, np.ndarray] = {}
    world: dict[int, np.ndarray] = {}
    for smpl in SMPL22_NAMES:  # SMPL order lists parents first
        if smpl not in pairs:
            continue
        j, b = pairs[smpl]
        child = _direction_child(smpl, pairs, src_rest, rest_heads)
        if child is None:
            # A limb end (head, hand, toe) or a zero-length joint: no direction to match, so it
            # keeps its rest pose relative to the limb as the nearest aligned ancestor was swung.
            # Except the head: every rig's rest head faces forward, while necks lean by different
            # amounts (Rigify's by 16 degrees), so the head keeps its rest facing in world space.
            align = np.eye(3) if smpl == "head" else _ancestor_alignment(smpl, rest_align)
            world[b] = src_rot[:, j] @ align @ rest_rot[b]
            continue
        jc, bc = pairs[child]
        src_dir0 = quat.normalize(src_rest[jc] - src_rest[j])
        tgt_dir0 = quat.normalize(rest_heads[bc] - rest_heads[b])
        rest_align[smpl] = quat.swing_matrix(tgt_dir0, src_dir0)
        bone_dir = rest_rot[b].T @ tgt_dir0  # the direction in the bone's own frame
        candidate = src_rot[:, j] @ rest_align[smpl] @ rest_rot[b]
        src_dir = quat.normalize(src_pos[:, jc] - src_pos[:, j])
        correction = quat.swing_matrix(candidate @ bone_dir, src_dir)
        world[b] = correction @ candidate
    return world


def _ancestor_alignment(smpl: str, rest_align: dict[str, np.ndarray]) -> np.ndarray:
    index = SMPL22_NAMES.index(smpl)
    while index >= 0:
        if SMPL22_NAMES[index] in rest_align:
            return rest_align[SMPL22_NAMES[index]]
        index = SMPL22_PARENTS[index]
    return np.eye(3)


def _target_forward_kinematics(parents, rest_rot, rest_heads, mapped_world) -> tuple[np.ndarray, np.ndarray]:
    """World rotations (T, B, 3, 3) and heads (T, B, 3), root bone at its rest position."""
    frames = next(iter(mapped_world.values())).shape[0]
    count = len(parents)
    rot = np.empty((frames, count, 3, 3))
    heads = np.empty((frames, count, 3))
    for b in topological_order(parents):
        p = int(parents[b])
        if p < 0:
            heads[:, b] = rest_heads[b]
            rot[:, b] = mapped_world.get(b, rest_rot[b])
            continue
        rel_rot = rest_rot[p].T @ rest_rot[b]
        rel_head = rest_rot[p].T @ (rest_heads[b] - rest_heads[p])
        rot[:, b] = mapped_world[b] if b in mapped_world else rot[:, p] @ rel_rot
        heads[:, b] = heads[:, p] + rot[:, p] @ rel_head
    return rot, heads


def _translation_bone(parents: np.ndarray, mapped: set[int]) -> int:
    """The deepest bone that is an ancestor of (or is) every mapped bone."""
    chains = []
    for bone in mapped:
        chain = []
        while bone >= 0:
            chain.append(bone)
            bone = int(parents[bone])
        chains.append(chain[::-1])  # root first
    common = None
    for depth in range(min(len(c) for c in chains)):
        if len({c[depth] for c in chains}) != 1:
            break
        common = chains[0][depth]
    if common is None:
        raise RetargetError("the mapped bones hang off different root bones; the body must share one root bone")
    return common


def _leg_ratio(pairs, src_rest, rest_heads) -> float:
    """Target hip->knee->ankle length over the source's (torso pelvis->neck if the legs are unmapped)."""
    ratios_src, ratios_tgt = [], []
    for side in ("left", "right"):
        chain = [f"{side}_hip", f"{side}_knee", f"{side}_ankle"]
        if all(joint in pairs for joint in chain):
            src = [src_rest[pairs[joint][0]] for joint in chain]
            tgt = [rest_heads[pairs[joint][1]] for joint in chain]
            ratios_src.append(np.linalg.norm(src[1] - src[0]) + np.linalg.norm(src[2] - src[1]))
            ratios_tgt.append(np.linalg.norm(tgt[1] - tgt[0]) + np.linalg.norm(tgt[2] - tgt[1]))
    if not ratios_src:
        for top in ("neck", "head", "spine3"):
            if "pelvis" in pairs and top in pairs:
                ratios_src.append(np.linalg.norm(src_rest[pairs[top][0]] - src_rest[pairs["pelvis"][0]]))
                ratios_tgt.append(np.linalg.norm(rest_heads[pairs[top][1]] - rest_heads[pairs["pelvis"][1]]))
                break
    if not ratios_src or sum(ratios_src) < 1e-9:
        return 1.0
    return float(sum(ratios_tgt) / sum(ratios_src))


def _hip_target(pairs, src_pos, rest_heads, scale: float, in_place: bool) -> np.ndarray:
    """(T, 3) where the rig's hip centre goes: the source's, scaled by `scale`.

    Height is absolute (both grounds at zero); travel starts over the rig's rest position, or
    stays there with `in_place`.
    """
    hip_source = _hip_centre(pairs, src_pos, side="source")
    rest_hip = _hip_centre(pairs, rest_heads[None], side="target")[0]
    wanted = np.empty_like(hip_source)
    wanted[:, 2] = scale * hip_source[:, 2]
    wanted[:, :2] = rest_hip[:2]
    if not in_place:
        wanted[:, :2] += scale * (hip_source[:, :2] - hip_source[:1, :2])
    return wanted


def _leg_heads(pairs, rest_rot, rest_heads, mapped_world, hip_target, heads: np.ndarray) -> np.ndarray:
    """`heads` with hip, knee and ankle heads placed down the SMPL chain from the pelvis.

    Each leg bone hangs rigidly off the bone of its SMPL parent, and the hips' midpoint sits on
    `hip_target`. On a plain rig that is what forward kinematics gives anyway; on a control rig
    (Rigify's DEF-thigh hangs off ORG-spine, not DEF-spine) it is where Blender will put them.
    """
    legs = [f"{side}_{part}" for side in ("left", "right") for part in ("hip", "knee", "ankle")]
    if hip_target is None or "pelvis" not in pairs or not all(j in pairs for j in legs):
        return heads
    heads = heads.copy()

    def turn(joint):  # world turn of the joint's bone from its rest
        b = pairs[joint][1]
        return mapped_world[b] @ rest_rot[b].T

    pelvis = pairs["pelvis"][1]
    hips = [pairs[f"{side}_hip"][1] for side in ("left", "right")]
    rest_mid = rest_heads[hips].mean(axis=0)
    heads[:, pelvis] = hip_target - turn("pelvis") @ (rest_mid - rest_heads[pelvis])
    for side in ("left", "right"):
        parent = "pelvis"
        for part in ("hip", "knee", "ankle"):
            joint = f"{side}_{part}"
            b, bp = pairs[joint][1], pairs[parent][1]
            heads[:, b] = heads[:, bp] + turn(parent) @ (rest_heads[b] - rest_heads[bp])
            parent = joint
    return heads


def _hip_bones(pairs) -> list[int]:
    if "left_hip" in pairs and "right_hip" in pairs:
        return [pairs["left_hip"][1], pairs["right_hip"][1]]
    joint = "pelvis" if "pelvis" in pairs else next(iter(pairs))
    return [pairs[joint][1]]


def _hip_centre(pairs, positions: np.ndarray, side: str) -> np.ndarray:
    """(T, 3) midpoint of the hip joints (pelvis, or any mapped joint, when the hips are unmapped)."""
    column = 0 if side == "source" else 1
    if "left_hip" in pairs and "right_hip" in pairs:
        return 0.5 * (positions[:, pairs["left_hip"][column]] + positions[:, pairs["right_hip"][column]])
    joint = "pelvis" if "pelvis" in pairs else next(iter(pairs))
    return positions[:, pairs[joint][column]]


def _local_rotations(parents, rest_rot, world) -> np.ndarray:
    """Pose-bone rotations: Blender evaluates world = parent_world @ rest_parent^-1 @ rest @ local."""
    local = np.empty_like(world)
    for b in range(len(parents)):
        p = int(parents[b])
        if p < 0:
            local[:, b] = rest_rot[b].T @ world[:, b]
        else:
            local[:, b] = rest_rot[b].T @ rest_rot[p] @ np.swapaxes(world[:, p], -1, -2) @ world[:, b]
    return local


def _orthonormal(matrices: np.ndarray) -> np.ndarray:
    """Nearest rotations (drops scale/shear that a scaled rest matrix might carry)."""
    u, _, vt = np.linalg.svd(np.asarray(matrices, dtype=np.float64))
    rot = u @ vt
    flip = np.linalg.det(rot) < 0
    if np.any(flip):
        u[flip, :, -1] *= -1
        rot = u @ vt
    return rot


# --- input checks -------------------------------------------------------------------------------


def _array(value, name: str, shape: tuple, dtype=np.float64) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as error:
        raise RetargetError(f"{name} is not numeric: {error}") from None
    if array.ndim != len(shape) or any(want is not None and got != want for got, want in zip(array.shape, shape)):
        wanted = "(" + ", ".join("N" if s is None else str(s) for s in shape) + ")"
        raise RetargetError(f"{name} has shape {array.shape}, expected {wanted}")
    if array.dtype.kind == "f" and not np.all(np.isfinite(array)):
        raise RetargetError(f"{name} contains NaN or infinite values")
    return array


def _check_hierarchy(names, parents_value, what: str) -> np.ndarray:
    if len(set(names)) != len(names):
        dupes = sorted({n for n in names if names.count(n) > 1})
        raise RetargetError(f"{what} has duplicate names: {', '.join(dupes)}")
    parents = _array(parents_value, f"{what} parents", (len(names),), dtype=np.int64)
    if np.any(parents < -1) or np.any(parents >= len(names)):
        raise RetargetError(f"{what} parents must be -1 or a joint index below {len(names)}")
    topological_order(parents)
    return parents


def _check_source(clip: SourceClip) -> None:
    set_ = object.__setattr__
    names = tuple(clip.names)
    if not names:
        raise RetargetError("source skeleton has no joints")
    set_(clip, "names", names)
    parents = _check_hierarchy(list(names), clip.parents, "source skeleton")
    if int(np.sum(parents < 0)) != 1:
        raise RetargetError(f"source skeleton must have exactly one root joint, has {int(np.sum(parents < 0))}")
    set_(clip, "parents", parents)
    set_(clip, "offsets", _array(clip.offsets, "source offsets", (len(names), 3)))
    rotations = _array(clip.rotations, "rotations", (None, len(names), 4))
    if rotations.shape[0] < 1:
        raise RetargetError("clip has no frames")
    if np.any(np.linalg.norm(rotations, axis=-1) < 1e-8):
        raise RetargetError("rotations contain zero-length quaternions")
    set_(clip, "rotations", rotations)
    frames = rotations.shape[0]
    set_(clip, "root_translation", _array(clip.root_translation, "root_translation", (frames, 3)))
    if clip.joint_translations is not None:
        set_(clip, "joint_translations", _array(clip.joint_translations, "joint_translations", (frames, len(names), 3)))
    for key in ("fps", "unit_scale"):
        value = getattr(clip, key)
        try:
            value = float(value)
        except (TypeError, ValueError):
            raise RetargetError(f"{key} must be a number, got {value!r}") from None
        if not np.isfinite(value) or value <= 0:
            raise RetargetError(f"{key} must be positive, got {value}")
        set_(clip, key, value)
    up_axis = str(clip.up_axis).upper()
    if up_axis not in UP_AXES:
        raise RetargetError(f"up_axis must be 'Y' or 'Z', got {clip.up_axis!r}")
    set_(clip, "up_axis", up_axis)
    set_(clip, "smpl_to_source", _check_map(clip.smpl_to_source, names, "smpl_to_source", "source joint"))


def _check_target(rig: TargetRig) -> None:
    set_ = object.__setattr__
    names = tuple(rig.names)
    if not names:
        raise RetargetError("armature has no bones")
    set_(rig, "names", names)
    set_(rig, "parents", _check_hierarchy(list(names), rig.parents, "armature"))
    set_(rig, "rest_matrices", _array(rig.rest_matrices, "rest matrices", (len(names), 4, 4)))
    set_(rig, "smpl_to_bone", _check_map(rig.smpl_to_bone, names, "bone map", "bone"))


def _check_map(mapping, names: tuple[str, ...], what: str, item: str) -> dict[str, str]:
    if not isinstance(mapping, Mapping):
        raise RetargetError(f"{what} must be a dict, got {type(mapping).__name__}")
    known = set(names)
    clean = {str(k): str(v) for k, v in mapping.items() if v}
    unknown_joints = sorted(k for k in clean if k not in SMPL22_NAMES)
    if unknown_joints:
        raise RetargetError(f"{what} names joints that are not SMPL-22: {', '.join(unknown_joints)}")
    missing = sorted(f"{k} -> {v!r}" for k, v in clean.items() if v not in known)
    if missing:
        raise RetargetError(f"{what} refers to no such {item}: {', '.join(missing)}")
    return clean


def control_rotation(control_world: np.ndarray, deform_world: np.ndarray) -> np.ndarray:
    """The fixed turn from a control bone to the deform bone it moves: deform = control @ offset."""
    return control_world.T @ deform_world
