"""The `shared/data/cmu-captioned` archive: CMU takes with their CMU descriptions and HumanML3D captions.

The archive is extracted once into `cache_dir()/cmu-captioned` (the same way as the Bandai archive) and its
`captions.json` is read into typed records; each take loads as a `Motion` through `mofind.io.load_motion`
(both rigs, the 31-joint CMU skeleton and the 43-joint Daz-style one, map by preset).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mofind import paths
from mofind.io import load_motion

from .bandai import extract_once

ARCHIVE_NAME = "cmu-captioned.tar.xz"
RIGS = ("cmu-31", "cmu-daz-43")


@dataclass(frozen=True)
class CaptionSegment:
    """One HumanML3D clip cut from the take: seconds from the take's start and three free-form captions."""

    humanml3d_id: str
    split: str
    start_s: float
    end_s: float
    texts: tuple[str, ...]


@dataclass(frozen=True)
class CmuTake:
    """One take of the archive (`description`/`category` are CMU's own words, not always an action).

    `fps`/`frames` are what captions.json says; the BVH header rules the motion (16_01 and 16_02 are listed
    as 120 fps but are 30 fps files), so use `load().duration` for timing."""

    take_id: str
    bvh: Path
    rig: str
    fps: float
    frames: int
    description: str
    category: str
    segments: tuple[CaptionSegment, ...]

    @property
    def duration(self) -> float:
        return self.frames / self.fps

    def load(self, fps: float = 20.0):
        """The take as a `Motion` on SMPL-22 at `fps`."""
        return load_motion(self.bvh, fps=fps)


def default_archive() -> Path:
    """`shared/data/cmu-captioned.tar.xz`; FileNotFoundError with the reason when unavailable."""
    shared = paths.shared_dir()
    if shared is None:
        raise FileNotFoundError("shared/ (or $MOFIND_SHARED) is absent: the CMU captioned archive is unavailable")
    archive = shared / "data" / ARCHIVE_NAME
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: CMU captioned archive not found")
    return archive


def ensure_extracted(archive: str | Path | None = None, target: str | Path | None = None) -> Path:
    """Extract the archive once; returns the folder holding `captions.json` and `bvh/`."""
    archive = Path(archive) if archive is not None else default_archive()
    target = extract_once(archive, Path(target) if target is not None else paths.cache_dir() / "cmu-captioned")
    found = sorted(p.parent for p in target.glob("*/captions.json"))
    if not found:
        raise FileNotFoundError(f"{archive}: no '<name>/captions.json' inside the archive")
    return found[0]


def load_takes(archive: str | Path | None = None, target: str | Path | None = None) -> list[CmuTake]:
    """All takes of the archive, sorted by id; ValueError naming the take when an entry is malformed."""
    root = ensure_extracted(archive, target)
    return parse_captions(root / "captions.json")


def parse_captions(path: str | Path) -> list[CmuTake]:
    """Read a `captions.json` (take id -> entry); BVH paths resolve against the file's folder."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: cannot read captions ({exc})") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: expected an object mapping take ids to entries")
    takes = []
    for take_id, entry in sorted(raw.items()):
        try:
            takes.append(_take(take_id, entry, path.parent))
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"{path}: take {take_id!r}: malformed entry ({exc!r})") from exc
    return takes


def _take(take_id: str, entry: dict, root: Path) -> CmuTake:
    segments = tuple(
        CaptionSegment(humanml3d_id=str(s["humanml3d_id"]), split=str(s.get("split", "")),
                       start_s=float(s["start_s"]), end_s=float(s["end_s"]),
                       texts=tuple(str(t) for t in s["texts"]))
        for s in entry.get("humanml3d") or ())
    return CmuTake(take_id=take_id, bvh=root / entry["file"], rig=str(entry["rig"]), fps=float(entry["fps"]),
                   frames=int(entry["frames"]), description=str(entry.get("cmu_description", "")),
                   category=str(entry.get("cmu_category", "")), segments=segments)
