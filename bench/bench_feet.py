"""Foot skating of retargeted takes, with and without the plant-feet IK (numpy only, no Blender).

Takes: the synthetic walk (always) and the walking/turning takes of ../shared/data/bvh-samples (CMU and
Bandai, when present), retargeted onto the test Mixamo rig, whose legs are proportioned unlike any of
the actors. Contacts are found on the source ankles (`retarget.feet.foot_contacts`); skating is how far
the rig's ankle travels horizontally during one contact (path length, cm), as the keys evaluate
(forward kinematics the way Blender evaluates a pose). The source ankle's own drift during its
contacts, scaled to the rig, is printed as the floor a perfect transfer would reach.

Target (fails the run when missed): with the IK, mean skating per contact <= 1 cm and below the
result without it on every take.

    .venv/bin/python -m bench.bench_feet
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
TARGET_CM = 1.0
TAKES = ("dataset-2_walk_normal_001.bvh", "cmu_01_01_fairmotion.bvh", "cmu_iclone_002_01.bvh",
         "dataset-2_raise-up-left-hand_elderly_001.bvh")


def _addon(name: str):
    if "mofind_addon" not in sys.modules:
        package = types.ModuleType("mofind_addon")
        package.__path__ = [str(ROOT / "blender_addon")]
        sys.modules["mofind_addon"] = package
    return importlib.import_module(f"mofind_addon.{name}")


def evaluate_ankles(core, quat, rig, rest, keys, ankles) -> np.ndarray:
    """(T, len(ankles), 3) ankle heads from the keys, evaluated as Blender evaluates a pose."""
    frames, count = keys.rotations.shape[:2]
    basis = np.tile(np.eye(4), (frames, count, 1, 1))
    basis[..., :3, :3] = quat.quat_to_matrix(keys.rotations)
    basis[:, list(keys.bone_names).index(keys.root_bone), :3, 3] = keys.root_location
    world = np.empty((frames, count, 4, 4))
    for b in core.topological_order(rig.parents):
        p = int(rig.parents[b])
        world[:, b] = rest[b] @ basis[:, b] if p < 0 else world[:, p] @ np.linalg.inv(rest[p]) @ rest[b] @ basis[:, b]
    return world[:, [list(rig.names).index(a) for a in ankles]][..., :3, 3]


def source_ankles(core, clip, rig, smpl_joints) -> np.ndarray:
    """(T, n, 3) source ankle positions in metres, Z up (contact detection needs height and speed only)."""
    _, positions = core.source_forward_kinematics(clip)
    up = core.to_z_up(clip.up_axis)
    return clip.unit_scale * positions[:, [clip.names.index(clip.smpl_to_source[j]) for j in smpl_joints]] @ up.T


def measure(payload: dict, label: str) -> dict:
    core, quat, feet, mapping = (_addon(m) for m in ("retarget.core", "retarget.quat", "retarget.feet",
                                                        "retarget.mapping"))
    sys.path.insert(0, str(ROOT / "tests"))
    from addon_pure.retarget_fixtures import mixamo_spec, rest_matrices

    names, parents, rest = rest_matrices(mixamo_spec())
    rig = core.TargetRig(names, parents, rest, mapping.detect_bone_map(names).smpl_to_bone)
    clip = core.SourceClip.from_payload(payload)
    sides = ("left_ankle", "right_ankle")
    ankles = [rig.smpl_to_bone[j] for j in sides]
    src = source_ankles(core, clip, rig, sides)
    row = {"take": label, "frames": clip.num_frames}
    per_mode = {}
    for plant in (False, True):
        keys = core.retarget(clip, rig, core.RetargetOptions(plant_feet=plant))
        got = evaluate_ankles(core, quat, rig, rest, keys, ankles)
        skids, floor = [], []
        for s in range(2):
            contact = feet.foot_contacts(src[:, s], clip.fps)
            skids.append(feet.skating_per_contact(got[:, s], contact))
            floor.append(keys.scale * feet.skating_per_contact(src[:, s], contact))
        per_mode[plant] = np.concatenate(skids) * 100
        row["contacts"] = len(per_mode[plant])
        row["source_cm"] = float(np.mean(np.concatenate(floor)) * 100) if row["contacts"] else 0.0
    row["without_cm"] = float(per_mode[False].mean()) if row["contacts"] else 0.0
    row["with_cm"] = float(per_mode[True].mean()) if row["contacts"] else 0.0
    row["with_max_cm"] = float(per_mode[True].max()) if row["contacts"] else 0.0
    row["target"] = f"IK <= {TARGET_CM:g} cm and < no IK"
    row["ok"] = (row["with_cm"] <= TARGET_CM and row["with_cm"] < row["without_cm"]) if row["contacts"] else ""
    return row


def payload_from_bvh(path: Path) -> dict:
    from mofind.skeleton import load_motion

    motion = load_motion(path)
    payload = {
        "skeleton": motion.skeleton.to_dict(), "fps": motion.source_fps, "unit_scale": motion.mapping["unit_scale"],
        "up_axis": motion.mapping["up_axis"], "rotations": motion.local_rotations,
        "root_translation": motion.root_translation, "smpl_to_source": motion.mapping["smpl_to_source"],
    }
    if getattr(motion, "joint_translations", None) is not None:
        payload["joint_translations"] = motion.joint_translations
    return payload


def run() -> list[dict]:
    sys.path.insert(0, str(ROOT / "tests"))
    from addon_pure.retarget_fixtures import walking_take

    rows = [measure(walking_take(seconds=4.0, fps=30.0).payload, "synthetic walk (4 s)")]
    shared = Path(os.environ.get("MOFIND_SHARED", ROOT.parent / "shared")) / "data" / "bvh-samples"
    for name in TAKES:
        if (shared / name).is_file():
            rows.append(measure(payload_from_bvh(shared / name), name))
        else:
            print(f"(skipped {name}: not in {shared})")
    return rows


def main() -> int:
    rows = run()
    print(f"{'take':44s} {'frames':>6s} {'contacts':>8s} {'source':>7s} {'no IK':>7s} {'IK':>7s} {'IK max':>7s}"
          "   (cm of ankle travel per contact)")
    failed = []
    for r in rows:
        print(f"{r['take']:44s} {r['frames']:6d} {r['contacts']:8d} {r['source_cm']:7.2f} {r['without_cm']:7.2f} "
              f"{r['with_cm']:7.2f} {r['with_max_cm']:7.2f}")
        if r["ok"] is False:
            failed.append(r["take"])
    if failed:
        print(f"FAILED: skating with the IK above {TARGET_CM} cm per contact or not below without it: "
              + ", ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
