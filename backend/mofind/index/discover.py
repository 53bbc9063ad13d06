"""Finding the motion files under the paths a user gives `mofind index`.

BVH, FBX and glTF/GLB files anywhere below a folder; HumanML3D / KIT-ML joint files (`*.npy`) only inside their standard
`new_joints/` folder (the `new_joint_vecs/` features and statistics files beside them are not motions).
HumanML3D's mirrored copies (`M012314.npy` next to `012314.npy`) are skipped: they would show every
result twice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

MOTION_SUFFIXES = (".bvh", ".fbx", ".glb", ".gltf")
JOINTS_FOLDER = "new_joints"


@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


def discover(paths, recursive: bool = True) -> Discovery:
    found: dict[Path, None] = {}
    result = Discovery()
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_file():
            if _is_motion_file(path, explicit=True):
                found[path.resolve()] = None
            else:
                result.missing.append((str(path), "not a motion file (.bvh, .fbx, .glb, .gltf, or .npy joints in new_joints/)"))
        elif path.is_dir():
            candidates = path.rglob("*") if recursive else path.glob("*")
            for candidate in sorted(candidates):
                if candidate.is_file() and _is_motion_file(candidate, explicit=False):
                    found[candidate.resolve()] = None
        else:
            result.missing.append((str(path), "no such file or folder"))
    result.files = sorted(_drop_mirrors(found))
    return result


def _is_motion_file(path: Path, explicit: bool) -> bool:
    suffix = path.suffix.lower()
    if suffix in MOTION_SUFFIXES:
        return True
    if suffix == ".npy":
        return explicit or path.parent.name == JOINTS_FOLDER
    return False


def _drop_mirrors(files) -> list[Path]:
    files = list(files)
    present = {(f.parent, f.name) for f in files}
    return [f for f in files
            if not (f.suffix.lower() == ".npy" and f.name.startswith("M") and (f.parent, f.name[1:]) in present)]
