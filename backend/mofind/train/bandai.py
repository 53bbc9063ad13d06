"""The Bandai-Namco-Research-Motiondataset-2 development archive as a labelled training folder.

The archive in `shared/data` is extracted once into `cache_dir()/bandai` (atomically, so an interrupted
extraction is redone) and read like any labelled BVH folder with the packaged `templates/bandai.json`.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

from mofind import paths

ARCHIVE_NAME = "bandai-namco-2-dev.tar.xz"
TEMPLATES = Path(__file__).resolve().parent / "templates" / "bandai.json"
_MARKER = ".extracted"
# shared/data/bvh-samples holds loose copies of these dev takes; tests rank them with the shipped model, so they
# always stay in the validation split and those tests check takes the model never trained on.
HELD_OUT = ("dataset-2_raise-up-left-hand_elderly_001", "dataset-2_walk_normal_001",
            "dataset-2_wave-right-hand_active_001")


def default_archive() -> Path:
    """`shared/data/bandai-namco-2-dev.tar.xz`; FileNotFoundError with the reason when unavailable."""
    shared = paths.shared_dir()
    if shared is None:
        raise FileNotFoundError("shared/ (or $MOFIND_SHARED) is absent: the Bandai archive is unavailable")
    archive = shared / "data" / ARCHIVE_NAME
    if not archive.is_file():
        raise FileNotFoundError(f"{archive}: Bandai archive not found")
    return archive


def ensure_extracted(archive: str | Path | None = None, target: str | Path | None = None) -> Path:
    """Extract the archive once; returns the folder holding the `.bvh` takes (`<target>/<top>/data`)."""
    archive = Path(archive) if archive is not None else default_archive()
    target = extract_once(archive, Path(target) if target is not None else paths.cache_dir() / "bandai")
    found = sorted(target.glob("*/data"))
    if not found:
        raise FileNotFoundError(f"{archive}: no '<name>/data' folder inside the archive")
    return found[0]


def extract_once(archive: Path, target: Path) -> Path:
    """Extract `archive` into `target` unless a marker says this very archive (name, size) already is there.

    Under an exclusive `flock` on `<target>.lock`, checked again once held: two processes on a fresh machine
    (`make bench` beside `make test`) both extracted, and the second replaced the folder while the first read
    its takes (8 of 300 failed to parse)."""
    stamp = f"{archive.name} {archive.stat().st_size}"
    marker = target / _MARKER
    if marker.is_file() and marker.read_text() == stamp:
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(target.parent / f"{target.name}.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # released by the kernel if this process dies
        if not (marker.is_file() and marker.read_text() == stamp):
            _extract(archive, target)
            marker.write_text(stamp)
    finally:
        os.close(fd)
    return target


def _extract(archive: Path, target: Path) -> None:
    staging = Path(tempfile.mkdtemp(prefix=".bandai-", dir=target.parent))
    try:
        try:
            with tarfile.open(archive, "r:*") as tar:
                tar.extractall(staging, filter="data")
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ValueError(f"{archive}: cannot extract ({exc})") from exc
        if target.exists():
            shutil.rmtree(target)
        staging.rename(target)
    finally:
        if staging.exists():
            shutil.rmtree(staging)
