"""`mofind inspect FILE...`: what MoFind sees in each motion file, before anything is indexed.

Per file: skeleton (joints, channels), fps, frames, duration, detected unit and up axis, height, and
how the skeleton maps onto SMPL-22 (preset or name heuristic, which SMPL joints are interpolated).
A bad file is reported and the others still run; the exit status is 1 when any file failed.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

HELP = "Describe motion files: skeleton, fps, units, up axis, SMPL-22 mapping."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("files", nargs="+", type=Path, metavar="FILE",
                        help="BVH, FBX, glTF/GLB or HumanML3D/KIT-ML .npy files")
    parser.add_argument("--json", action="store_true", help="print one JSON list instead of text")
    parser.add_argument("--fps", type=float, default=20.0, help="rate the SMPL-22 joints are resampled to")


def describe(path: Path, fps: float = 20.0) -> dict:
    """A JSON-friendly description of one file; raises MotionIOError for bad input."""
    from mofind.io import load_motions

    motions = load_motions(path, fps=fps)
    motion = motions[0]
    source_frames = motion.frame_range[1] - motion.frame_range[0]
    info: dict = {
        "path": str(path),
        "ok": True,
        "source_fps": round(motion.source_fps, 6),
        "frames": int(source_frames),
        "duration_s": round(source_frames / motion.source_fps, 4) if motion.source_fps else 0.0,
        "smpl22_frames": motion.num_frames,
        "smpl22_fps": motion.fps,
    }
    if motion.take:  # FBX stacks / glTF animations: the first is described, all are listed
        info["takes"] = [{"name": m.take, "frames": m.frame_range[1] - m.frame_range[0], "fps": m.source_fps}
                         for m in motions]
    skeleton = motion.skeleton
    if skeleton is not None:
        info["skeleton"] = {
            "joints": skeleton.num_joints,
            "channels": int(sum(len(c) for c in skeleton.channels)),
            "root": skeleton.names[0],
            "channels_per_joint": sorted({len(c) for c in skeleton.channels}),
            "rotation_orders": sorted({skeleton.rotation_order(j) for j in range(skeleton.num_joints)} - {""}),
            "names": list(skeleton.names),
        }
    mapping = motion.mapping or {}
    if mapping:
        info.update({
            "unit": mapping["unit"],
            "unit_scale": mapping["unit_scale"],
            "up_axis": mapping["up_axis"],
            "height_m": round(mapping["height_m"], 3),
            "mapping": {
                "method": f"preset:{mapping['preset']}" if mapping["preset"] else "heuristic",
                "smpl_to_source": mapping["smpl_to_source"],
                "unmapped": mapping["unmapped"],
                "interpolated": mapping["interpolated"],
                "ignored_source_joints": len(mapping["ignored_source_joints"]),
            },
        })
    else:
        info.update({"unit": "m", "unit_scale": 1.0, "up_axis": "Y", "mapping": {"method": "smpl22 joints"}})
    return info


def _text(info: dict) -> str:
    if not info["ok"]:
        return f"{info['path']}\n  ERROR: {info['error']}"
    lines = [info["path"]]
    if info.get("takes"):
        takes = ", ".join(f"{t['name']} ({t['frames']} frames)" for t in info["takes"])
        lines.append(f"  takes      {len(info['takes'])}: {takes}; the first is described below")
    if "skeleton" in info:
        s = info["skeleton"]
        lines.append(f"  skeleton   {s['joints']} joints, {s['channels']} channels (root {s['root']}, "
                     f"{'/'.join(map(str, s['channels_per_joint']))} per joint, rotation {', '.join(s['rotation_orders'])})")
    lines.append(f"  timing     {info['frames']} frames at {info['source_fps']:g} fps = {info['duration_s']:.2f} s "
                 f"-> {info['smpl22_frames']} SMPL-22 frames at {info['smpl22_fps']:g} fps")
    if "height_m" in info:
        lines.append(f"  geometry   unit {info['unit']} (x{info['unit_scale']:g} m), up {info['up_axis']} "
                     f"(after FK), height {info['height_m']:.2f} m")
    mapping = info["mapping"]
    lines.append(f"  mapping    {mapping['method']}")
    if "smpl_to_source" in mapping:
        pairs = ", ".join(f"{k}={v}" for k, v in mapping["smpl_to_source"].items())
        lines.append(f"             {pairs}")
        if mapping["unmapped"]:
            lines.append(f"  unmapped   {', '.join(mapping['unmapped'])} (interpolated)")
        lines.append(f"  interp.    {', '.join(mapping['interpolated'])}; "
                     f"{mapping['ignored_source_joints']} source joints unused")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    from mofind.io.errors import MotionIOError

    results = []
    for path in args.files:
        try:
            results.append(describe(path, fps=args.fps))
        except MotionIOError as exc:
            results.append({"path": str(path), "ok": False, "error": str(exc), "error_type": type(exc).__name__})
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        print("\n".join(_text(r) for r in results))
    failed = [r for r in results if not r["ok"]]
    if failed:
        print(f"{len(failed)} of {len(results)} files could not be read", file=sys.stderr)
    return 1 if failed else 0
