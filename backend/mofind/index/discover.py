"""Finding the motion files under the paths a user gives `mofind index`.

BVH, FBX and glTF/GLB files anywhere below a folder; HumanML3D / KIT-ML joint files (`*.npy`) only inside their standard
`new_joints/` folder (the `new_joint_vecs/` features and statistics files beside them are not motions).
HumanML3D's mirrored copies (`M012314.npy` next to `012314.npy`) are skipped: they would show every
result twice.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

MOTION_SUFFIXES = (".bvh", ".fbx", ".glb", ".gltf")
JOINTS_FOLDER = "new_joints"
DEFAULT_MAX_FILES = 1_000_000  # files one run may discover (a job over "/" stops here with a clear reason)


@dataclass
class Discovery:
    files: list[Path] = field(default_factory=list)
    missing: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    cancelled: bool = False


def discover(paths, recursive: bool = True, *, cancel=None, roots=None,
             max_files: int | None = DEFAULT_MAX_FILES) -> Discovery:
    """Motion files under `paths`, walked with os.scandir one folder at a time.

    Checks `cancel` (a threading.Event) at every entry and stops at `max_files`, so a huge tree never
    holds up a job that should stop; with `roots` (a LibraryRoots) anything that resolves outside them
    (a symlink leading out) is reported in `missing` instead of indexed. Symlinked folders are not
    entered (no loops). File names that are not UTF-8 are kept as Python's surrogate-escaped str.
    """
    found: dict[Path, None] = {}
    result = Discovery()
    limit = max_files if max_files is not None else float("inf")

    def add(candidate: Path) -> bool:
        resolved = candidate.resolve()
        if roots is not None and not roots.holds_source(str(resolved)):
            result.missing.append((str(candidate), f"outside the library roots ({roots.describe()})"))
        else:
            found[resolved] = None
        if len(found) >= limit:
            result.missing.append((str(candidate), f"stopped after {max_files} files (the cap on one job); "
                                                   "index sub-folders separately"))
            return False
        return True

    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_file():
            if _is_motion_file(path, explicit=True):
                if not add(path):
                    break
            else:
                result.missing.append((str(path), "not a motion file (.bvh, .fbx, .glb, .gltf, or .npy joints in new_joints/)"))
        elif path.is_dir():
            if not _walk(path, recursive, add, cancel, result):
                break
        else:
            result.missing.append((str(path), "no such file or folder"))
    result.files = sorted(_drop_mirrors(found))
    return result


def _walk(top: Path, recursive: bool, add, cancel, result: Discovery) -> bool:
    """Depth-first, sorted per folder; False when the walk must stop (cancelled or the file cap)."""
    stack = [top]
    while stack:
        folder = stack.pop()
        try:
            with os.scandir(folder) as entries:
                listed = sorted(entries, key=lambda e: e.name)
        except OSError as exc:
            result.missing.append((str(folder), f"cannot list folder ({exc.strerror or exc})"))
            continue
        subfolders = []
        for entry in listed:
            if cancel is not None and cancel.is_set():
                result.cancelled = True
                return False
            try:
                if entry.is_dir(follow_symlinks=False):
                    if recursive:
                        subfolders.append(Path(entry.path))
                    continue
                is_file = entry.is_file()
            except OSError:
                continue
            candidate = Path(entry.path)
            if is_file and _is_motion_file(candidate, explicit=False) and not add(candidate):
                return False
        stack.extend(reversed(subfolders))
    return True


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
