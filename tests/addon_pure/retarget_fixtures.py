"""Synthetic takes and rig specs for the retarget tests (numpy only, so bpy tests share them).

The take is a CMU-named, T-pose, Y-up, centimetre skeleton walking and turning, animated from
Euler angles. Its joint positions come from an FK written here on rotation *matrices*, while the
payload carries *quaternions* built separately from axis-angle products: a convention slip in the
add-on's core shows up as a mismatch instead of cancelling out.

Rig specs are lists of `BoneSpec` (head, tail, roll in Blender armature space: metres, Z-up,
facing -Y, left side +X). `tests/addon_bpy/rigs.py` turns them into real armatures; the pure
tests turn them into rest matrices with `rest_matrices`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

SOURCE_UNIT = 0.01  # the take is in centimetres
Y_TO_Z_UP = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, -1.0], [0.0, 1.0, 0.0]])

# name, parent, offset (cm, Y-up, T-pose facing +Z, left +X); LHipJoint/LowerBack/Neck sit on their parent.
_SOURCE_LEFT = [
    ("LHipJoint", "Hips", (0, 0, 0)), ("LeftUpLeg", "LHipJoint", (9, -5, 0)), ("LeftLeg", "LeftUpLeg", (0, -42, 0)),
    ("LeftFoot", "LeftLeg", (0, -40, 0)), ("LeftToeBase", "LeftFoot", (0, -5, 12)),
]
_SOURCE_SPINE = [
    ("LowerBack", "Hips", (0, 0, 0)), ("Spine", "LowerBack", (0, 10, 0)), ("Spine1", "Spine", (0, 20, 0)),
    ("Neck", "Spine1", (0, 17, 0)), ("Neck1", "Neck", (0, 5, 0)), ("Head", "Neck1", (0, 8, 0)),
]
_SOURCE_LEFT_ARM = [
    ("LeftShoulder", "Spine1", (3, 15, 0)), ("LeftArm", "LeftShoulder", (14, 0, 0)),
    ("LeftForeArm", "LeftArm", (28, 0, 0)), ("LeftHand", "LeftForeArm", (25, 0, 0)),
    ("LeftFingerBase", "LeftHand", (8, 0, 0)),
]
# Joints no SMPL joint maps to: the identity test keeps them still so positions must match exactly.
HELPER_JOINTS = ("LHipJoint", "RHipJoint", "Neck", "LeftFingerBase", "RightFingerBase")
# What the backend sends for this skeleton (CMU conventions), written out rather than detected.
SOURCE_SMPL = {
    "pelvis": "Hips", "spine1": "LowerBack", "spine2": "Spine", "spine3": "Spine1", "neck": "Neck1", "head": "Head",
    **{f"{side}_{part}": f"{s}{name}" for side, s in (("left", "Left"), ("right", "Right"))
       for part, name in (("hip", "UpLeg"), ("knee", "Leg"), ("ankle", "Foot"), ("foot", "ToeBase"),
                          ("collar", "Shoulder"), ("shoulder", "Arm"), ("elbow", "ForeArm"), ("wrist", "Hand"))},
}

# Euler amplitudes in degrees per axis (Z, X, Y): constant + amplitude * sin(omega * t * rate + phase).
# Right-side joints reuse the left entries with a half-cycle phase shift and mirrored Z/Y.
_MOTION = {
    "Hips": {"Z": (0, 4, 1, 0), "X": (0, 3, 2, 0), "Y": (0, 5, 1, 0.3)},
    "LeftUpLeg": {"X": (0, -25, 1, 0), "Z": (0, 4, 1, 0), "Y": (0, 8, 1, 0.5)},
    "LeftLeg": {"X": (17, -17, 1, 1.0)},
    "LeftFoot": {"X": (0, 10, 1, 2.0)},
    "LeftToeBase": {"X": (0, 10, 1, 2.5)},
    "LowerBack": {"X": (0, 3, 2, 0), "Y": (0, 12, 1, 0.7)},  # the twist tells pelvis and spine1 apart
    "Spine": {"Y": (0, 6, 1, 0), "X": (0, 4, 2, 0)},
    "Spine1": {"Y": (0, 6, 1, 0.3), "Z": (0, 3, 1, 0)},
    "Neck": {"X": (0, 4, 1, 0.2)},
    "Neck1": {"X": (0, 5, 1, 0)},
    "Head": {"Y": (0, 10, 0.8, 0), "X": (0, 5, 1, 0.4)},
    "LeftShoulder": {"Z": (0, 5, 1, 0)},
    "LeftArm": {"Z": (-65, 10, 1, 0), "X": (0, 25, 0.5, 0), "Y": (0, 20, 1, np.pi)},
    "LeftForeArm": {"Y": (30, 25, 1, 0), "X": (0, 15, 1, 1.0)},
    "LeftHand": {"Z": (0, 15, 1, 0), "X": (0, 10, 1, 0)},
    "LeftFingerBase": {"Z": (0, 10, 1, 0)},
}


def _mirror(entries):
    out = []
    for name, parent, (x, y, z) in entries:
        out.append((_right(name), _right(parent), (-x, y, z)))
    return out


def _right(name: str) -> str:
    return name.replace("Left", "Right").replace("LHip", "RHip")


def source_skeleton() -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, parents, offsets cm) of the synthetic CMU-named source, parents before children."""
    table = ([("Hips", None, (0, 0, 0))] + _SOURCE_LEFT + _mirror(_SOURCE_LEFT) + _SOURCE_SPINE
             + _SOURCE_LEFT_ARM + _mirror(_SOURCE_LEFT_ARM))
    names = [row[0] for row in table]
    parents = np.array([names.index(p) if p else -1 for _, p, _ in table])
    offsets = np.array([row[2] for row in table], dtype=np.float64)
    return names, parents, offsets


def source_rest_blender() -> np.ndarray:
    """(J, 3) rest-pose joint positions of the source in metres, Z-up, hips at the origin."""
    names, parents, offsets = source_skeleton()
    rest = np.zeros((len(names), 3))
    for j, p in enumerate(parents):
        if p >= 0:
            rest[j] = rest[p] + offsets[j]
    return SOURCE_UNIT * rest @ Y_TO_Z_UP.T


def _axis_matrix(axis: str, angle: np.ndarray) -> np.ndarray:
    c, s = np.cos(angle), np.sin(angle)
    one, zero = np.ones_like(angle), np.zeros_like(angle)
    rows = {"X": [[one, zero, zero], [zero, c, -s], [zero, s, c]],
            "Y": [[c, zero, s], [zero, one, zero], [-s, zero, c]],
            "Z": [[c, -s, zero], [s, c, zero], [zero, zero, one]]}[axis]
    return np.moveaxis(np.array(rows), (0, 1), (-2, -1))


def _axis_quat(axis: str, angle: np.ndarray) -> np.ndarray:
    q = np.zeros(angle.shape + (4,))
    q[..., 0] = np.cos(angle / 2)
    q[..., 1 + "XYZ".index(axis)] = np.sin(angle / 2)
    return q


def _hamilton(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    w1, x1, y1, z1 = np.moveaxis(a, -1, 0)
    w2, x2, y2, z2 = np.moveaxis(b, -1, 0)
    return np.stack([w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2, w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
                     w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2, w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2], axis=-1)


@dataclass
class Take:
    """A synthetic source take: the payload the add-on gets plus ground truth computed independently."""

    payload: dict  # get_motion result with arrays decoded
    positions: np.ndarray  # (T, J, 3) world joint positions, source units and axes
    rotations: np.ndarray  # (T, J, 3, 3) world joint rotations, source axes

    @property
    def names(self) -> list[str]:
        return list(self.payload["skeleton"]["names"])

    def blender_positions(self) -> np.ndarray:
        """(T, J, 3) positions in metres, Z-up (Blender armature space before any rig scaling)."""
        return SOURCE_UNIT * self.positions @ Y_TO_Z_UP.T


def walking_take(seconds: float = 2.0, fps: float = 30.0, still_helpers: bool = False) -> Take:
    """A turning walk with arm swing, elbow bends, spine and forearm twist; T-pose rest, facing +Z."""
    names, parents, offsets = source_skeleton()
    frames = max(1, int(round(seconds * fps)))
    t = np.arange(frames) / fps
    omega = 2 * np.pi
    local_m = np.broadcast_to(np.eye(3), (frames, len(names), 3, 3)).copy()
    local_q = np.zeros((frames, len(names), 4))
    local_q[..., 0] = 1.0
    for j, name in enumerate(names):
        left_name = name.replace("Right", "Left").replace("RHip", "LHip")
        spec = _MOTION.get(left_name)
        if spec is None or (still_helpers and name in HELPER_JOINTS):
            continue
        mirrored = left_name != name
        angles = {}
        for axis in "ZXY":
            const, amp, rate, phase = spec.get(axis, (0, 0, 1, 0))
            value = const + amp * np.sin(omega * rate * t + phase + (np.pi if mirrored else 0.0))
            if mirrored and axis in "ZY":
                value = -value
            angles[axis] = np.radians(value)
        # BVH ZXY channels: R = Rz @ Rx @ Ry
        local_m[:, j] = _axis_matrix("Z", angles["Z"]) @ _axis_matrix("X", angles["X"]) @ _axis_matrix("Y", angles["Y"])
        local_q[:, j] = _hamilton(_hamilton(_axis_quat("Z", angles["Z"]), _axis_quat("X", angles["X"])),
                                  _axis_quat("Y", angles["Y"]))
    # Walk forward (+Z) while the hips yaw by 40 degrees over the take; bob twice per cycle.
    yaw = np.radians(40.0) * t / max(seconds, 1e-9)
    local_m[:, 0] = _axis_matrix("Y", yaw) @ local_m[:, 0]
    local_q[:, 0] = _hamilton(_axis_quat("Y", yaw), local_q[:, 0])
    root = np.stack([10 * np.sin(0.7 * t), 95 + 2 * np.sin(2 * omega * t), 120 * t], axis=-1)

    world_r = np.empty_like(local_m)
    world_p = np.empty((frames, len(names), 3))
    for j, p in enumerate(parents):
        if p < 0:
            world_r[:, j], world_p[:, j] = local_m[:, j], root
        else:
            world_r[:, j] = world_r[:, p] @ local_m[:, j]
            world_p[:, j] = world_p[:, p] + world_r[:, p] @ offsets[j]
    payload = {
        "skeleton": {"names": names, "parents": parents.tolist(), "offsets": offsets.tolist()},
        "fps": fps, "start_frame": 0, "end_frame": frames, "unit_scale": SOURCE_UNIT, "up_axis": "Y",
        "rotations": local_q.astype(np.float32), "root_translation": root.astype(np.float32),
        "smpl_to_source": dict(SOURCE_SMPL),
    }
    return Take(payload, world_p, world_r)


# --- rigs ----------------------------------------------------------------------------------------


@dataclass
class BoneSpec:
    name: str
    parent: str | None
    head: np.ndarray
    tail: np.ndarray
    roll: float = 0.0  # radians about the bone's own Y axis


def _unit(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v / np.linalg.norm(v)


def body_joints(scale: float = 1.0, arm_drop_deg: float = 0.0, leg_spread_deg: float = 0.0,
                arm_scale: float = 1.0, hip_half_width: float = 0.09, spine_bend: float = 0.0) -> dict:
    """Joint positions of a target body (metres, Z-up, facing -Y). Legs keep the source's 42:40 thigh:shin."""
    drop, spread = np.radians(arm_drop_deg), np.radians(leg_spread_deg)
    j = {"pelvis": np.array([0.0, 0.0, 0.95]), "spine1": np.array([0.0, 0.0, 1.05]),
         "spine2": np.array([0.0, spine_bend, 1.17]), "spine3": np.array([0.0, spine_bend, 1.30]),
         "neck": np.array([0.0, -spine_bend, 1.47]), "head": np.array([0.0, -spine_bend, 1.57]),
         "head_top": np.array([0.0, -spine_bend, 1.75])}
    for side, sx in (("left", 1.0), ("right", -1.0)):
        leg = np.array([sx * np.sin(spread), 0.0, -np.cos(spread)])
        arm = np.array([sx * np.cos(drop), 0.0, -np.sin(drop)])
        j[f"{side}_hip"] = np.array([sx * hip_half_width, 0.0, 0.90])
        j[f"{side}_knee"] = j[f"{side}_hip"] + 0.42 * leg
        j[f"{side}_ankle"] = j[f"{side}_knee"] + 0.40 * leg
        j[f"{side}_foot"] = j[f"{side}_ankle"] + np.array([0.0, -0.12, -0.05])
        j[f"{side}_toe_end"] = j[f"{side}_foot"] + np.array([0.0, -0.06, 0.0])
        j[f"{side}_collar"] = np.array([sx * 0.03, spine_bend, 1.45])
        j[f"{side}_shoulder"] = np.array([sx * 0.17, spine_bend, 1.45])
        j[f"{side}_elbow"] = j[f"{side}_shoulder"] + 0.28 * arm_scale * arm
        j[f"{side}_wrist"] = j[f"{side}_elbow"] + 0.25 * arm_scale * arm
        j[f"{side}_hand_end"] = j[f"{side}_wrist"] + 0.08 * arm
    return {k: v * scale for k, v in j.items()}


def _rolls(names: list[str], seed: int | None) -> dict:
    if seed is None:
        return {n: 0.0 for n in names}
    rng = np.random.default_rng(seed)
    return {n: float(rng.uniform(-np.pi, np.pi)) for n in names}


def mixamo_spec(scale: float = 0.9, arm_scale: float = 1.15, hip_half_width: float = 0.11,
                roll_seed: int | None = 7, fingers: bool = False, arm_drop_deg: float = 0.0) -> list[BoneSpec]:
    """Mixamo names (mixamorig:), other proportions than the source, random bone rolls; 65 bones with fingers."""
    j = body_joints(scale, arm_drop_deg=arm_drop_deg, arm_scale=arm_scale, hip_half_width=hip_half_width,
                    spine_bend=0.02)
    p = "mixamorig:"
    rows = [("Hips", None, "pelvis", "spine1"), ("Spine", "Hips", "spine1", "spine2"),
            ("Spine1", "Spine", "spine2", "spine3"), ("Spine2", "Spine1", "spine3", "neck"),
            ("Neck", "Spine2", "neck", "head"), ("Head", "Neck", "head", "head_top")]
    for side, s in (("left", "Left"), ("right", "Right")):
        rows += [(f"{s}UpLeg", "Hips", f"{side}_hip", f"{side}_knee"),
                 (f"{s}Leg", f"{s}UpLeg", f"{side}_knee", f"{side}_ankle"),
                 (f"{s}Foot", f"{s}Leg", f"{side}_ankle", f"{side}_foot"),
                 (f"{s}ToeBase", f"{s}Foot", f"{side}_foot", f"{side}_toe_end"),
                 (f"{s}Shoulder", "Spine2", f"{side}_collar", f"{side}_shoulder"),
                 (f"{s}Arm", f"{s}Shoulder", f"{side}_shoulder", f"{side}_elbow"),
                 (f"{s}ForeArm", f"{s}Arm", f"{side}_elbow", f"{side}_wrist"),
                 (f"{s}Hand", f"{s}ForeArm", f"{side}_wrist", f"{side}_hand_end")]
    specs = [BoneSpec(p + name, p + parent if parent else None, j[h], j[t]) for name, parent, h, t in rows]
    top = j["head_top"]
    specs.append(BoneSpec(p + "HeadTop_End", p + "Head", top, top + np.array([0, 0, 0.05 * scale])))
    for side, s in (("left", "Left"), ("right", "Right")):
        end = j[f"{side}_toe_end"]
        specs.append(BoneSpec(p + f"{s}Toe_End", p + f"{s}ToeBase", end, end + np.array([0, -0.03 * scale, 0])))
        if fingers:
            specs += _finger_specs(p + f"{s}Hand", p + f"{s}Hand", j[f"{side}_wrist"], j[f"{side}_hand_end"], scale)
    rolls = _rolls([s.name for s in specs], roll_seed)
    for spec in specs:
        spec.roll = rolls[spec.name]
    return specs


def _finger_specs(parent: str, prefix: str, wrist: np.ndarray, hand_end: np.ndarray, scale: float) -> list[BoneSpec]:
    """Five fingers of four bones each (Mixamo's Thumb1..4 ... Pinky1..4)."""
    along = _unit(hand_end - wrist)
    specs = []
    for k, finger in enumerate(("Thumb", "Index", "Middle", "Ring", "Pinky")):
        start = hand_end + np.array([0.0, (k - 2) * 0.02 * scale, 0.0])
        previous = parent
        for segment in range(1, 5):
            length = (0.03 if segment < 4 else 0.01) * scale
            head = start + along * 0.03 * scale * (segment - 1)
            name = f"{prefix}{finger}{segment}"
            specs.append(BoneSpec(name, previous, head, head + along * length))
            previous = name
    return specs


def rigify_spec(scale: float = 1.08, roll_seed: int | None = 11) -> list[BoneSpec]:
    """Rigify-style deform bones (DEF-spine.00N, DEF-upper_arm.L + twist .001 ...) plus control/MCH bones."""
    j = body_joints(scale, hip_half_width=0.1, spine_bend=-0.015)
    mid = lambda a, b: 0.5 * (j[a] + j[b])  # noqa: E731 - tiny local helper
    neck_mid = mid("neck", "head")
    rows = [("root", None, np.zeros(3), np.array([0.0, 0.3, 0.0])),
            ("DEF-spine", None, j["pelvis"], j["spine1"]),
            ("DEF-spine.001", "DEF-spine", j["spine1"], j["spine2"]),
            ("DEF-spine.002", "DEF-spine.001", j["spine2"], j["spine3"]),
            ("DEF-spine.003", "DEF-spine.002", j["spine3"], j["neck"]),
            ("DEF-spine.004", "DEF-spine.003", j["neck"], neck_mid),
            ("DEF-spine.005", "DEF-spine.004", neck_mid, j["head"]),
            ("DEF-spine.006", "DEF-spine.005", j["head"], j["head_top"]),
            ("torso", "root", j["pelvis"] + np.array([0, 0.3, 0]), j["pelvis"] + np.array([0, 0.5, 0])),
            ("MCH-spine", "torso", j["pelvis"], j["spine1"])]
    for side, s in (("left", "L"), ("right", "R")):
        rows += [(f"DEF-pelvis.{s}", "DEF-spine", j["pelvis"], j[f"{side}_hip"] + np.array([0, -0.08, 0])),
                 (f"DEF-thigh.{s}", "DEF-spine", j[f"{side}_hip"], mid(f"{side}_hip", f"{side}_knee")),
                 (f"DEF-thigh.{s}.001", f"DEF-thigh.{s}", mid(f"{side}_hip", f"{side}_knee"), j[f"{side}_knee"]),
                 (f"DEF-shin.{s}", f"DEF-thigh.{s}.001", j[f"{side}_knee"], mid(f"{side}_knee", f"{side}_ankle")),
                 (f"DEF-shin.{s}.001", f"DEF-shin.{s}", mid(f"{side}_knee", f"{side}_ankle"), j[f"{side}_ankle"]),
                 (f"DEF-foot.{s}", f"DEF-shin.{s}.001", j[f"{side}_ankle"], j[f"{side}_foot"]),
                 (f"DEF-toe.{s}", f"DEF-foot.{s}", j[f"{side}_foot"], j[f"{side}_toe_end"]),
                 (f"DEF-shoulder.{s}", "DEF-spine.003", j[f"{side}_collar"], j[f"{side}_shoulder"]),
                 (f"DEF-upper_arm.{s}", f"DEF-shoulder.{s}", j[f"{side}_shoulder"],
                  mid(f"{side}_shoulder", f"{side}_elbow")),
                 (f"DEF-upper_arm.{s}.001", f"DEF-upper_arm.{s}", mid(f"{side}_shoulder", f"{side}_elbow"),
                  j[f"{side}_elbow"]),
                 (f"DEF-forearm.{s}", f"DEF-upper_arm.{s}.001", j[f"{side}_elbow"],
                  mid(f"{side}_elbow", f"{side}_wrist")),
                 (f"DEF-forearm.{s}.001", f"DEF-forearm.{s}", mid(f"{side}_elbow", f"{side}_wrist"),
                  j[f"{side}_wrist"]),
                 (f"DEF-hand.{s}", f"DEF-forearm.{s}.001", j[f"{side}_wrist"], j[f"{side}_hand_end"]),
                 (f"upper_arm_fk.{s}", "torso", j[f"{side}_shoulder"], j[f"{side}_elbow"]),
                 (f"thigh_ik.{s}", "root", j[f"{side}_hip"], j[f"{side}_knee"])]
    specs = [BoneSpec(n, parent, np.asarray(h, float), np.asarray(t, float)) for n, parent, h, t in rows]
    rolls = _rolls([s.name for s in specs], roll_seed)
    for spec in specs:
        spec.roll = rolls[spec.name]
    return specs


def unreal_apose_spec(scale: float = 1.0, roll_seed: int | None = 3) -> list[BoneSpec]:
    """UE5-mannequin names in an A-pose (arms 45 degrees down, legs spread), FBX-like tails.

    Tails point along a fixed axis instead of at the child joint, as FBX imports without
    "automatic bone orientation" leave them, so only head positions say where a limb points.
    """
    j = body_joints(scale, arm_drop_deg=45.0, leg_spread_deg=6.0, arm_scale=0.95, hip_half_width=0.085)
    rows = [("root", None, "origin"), ("pelvis", "root", "pelvis"), ("spine_01", "pelvis", "spine1"),
            ("spine_02", "spine_01", None), ("spine_03", "spine_02", "spine2"), ("spine_04", "spine_03", None),
            ("spine_05", "spine_04", "spine3"), ("neck_01", "spine_05", "neck"), ("neck_02", "neck_01", None),
            ("head", "neck_02", "head")]
    j["origin"] = np.zeros(3)
    heads = {}
    for name, parent, joint in rows:
        if joint is None:  # in-between spine/neck bones sit halfway to the next named joint
            continue
        heads[name] = j[joint]
    heads["spine_02"] = 0.5 * (heads["spine_01"] + heads["spine_03"])
    heads["spine_04"] = 0.5 * (heads["spine_03"] + heads["spine_05"])
    heads["neck_02"] = 0.5 * (heads["neck_01"] + heads["head"])
    for side, s in (("left", "l"), ("right", "r")):
        limb = [(f"thigh_{s}", "pelvis", f"{side}_hip"), (f"calf_{s}", f"thigh_{s}", f"{side}_knee"),
                (f"foot_{s}", f"calf_{s}", f"{side}_ankle"), (f"ball_{s}", f"foot_{s}", f"{side}_foot"),
                (f"clavicle_{s}", "spine_05", f"{side}_collar"), (f"upperarm_{s}", f"clavicle_{s}", f"{side}_shoulder"),
                (f"lowerarm_{s}", f"upperarm_{s}", f"{side}_elbow"), (f"hand_{s}", f"lowerarm_{s}", f"{side}_wrist")]
        rows += limb
        heads.update({name: j[joint] for name, _, joint in limb})
    fbx_axis = _unit([0.3, -0.2, 1.0]) * 0.08 * scale
    specs = [BoneSpec(name, parent, heads[name], heads[name] + fbx_axis) for name, parent, _ in rows]
    rolls = _rolls([s.name for s in specs], roll_seed)
    for spec in specs:
        spec.roll = rolls[spec.name]
    return specs


def rest_matrices(specs: list[BoneSpec]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(names, parents, rest 4x4) like Blender's bone.matrix_local: +Y along head->tail, then the roll."""
    names = [s.name for s in specs]
    parents = np.array([names.index(s.parent) if s.parent else -1 for s in specs])
    mats = np.zeros((len(specs), 4, 4))
    for i, s in enumerate(specs):
        y = _unit(s.tail - s.head)
        base = _swing_from_y(y)
        mats[i, :3, :3] = base @ _axis_matrix("Y", np.array(s.roll))
        mats[i, :3, 3] = s.head
        mats[i, 3, 3] = 1.0
    return names, parents, mats


def _swing_from_y(y: np.ndarray) -> np.ndarray:
    """Smallest rotation taking +Y to `y` (Rodrigues), as Blender builds a bone matrix before the roll."""
    up = np.array([0.0, 1.0, 0.0])
    axis = np.cross(up, y)
    s, c = np.linalg.norm(axis), float(np.dot(up, y))
    if s < 1e-12:
        return np.eye(3) if c > 0 else np.diag([-1.0, -1.0, 1.0])
    k = axis / s
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + s * kx + (1 - c) * kx @ kx
