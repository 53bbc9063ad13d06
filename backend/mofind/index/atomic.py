"""Crash-safe file replacement: write a temp file, fsync it, rename it over the target, fsync the folder.

Why: a power cut or SIGKILL at any instant must leave either the old file or the new one, never a torn
mix. `os.replace` is atomic on POSIX; the two fsyncs make the new bytes and the rename durable.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

TEMP_SUFFIX = ".tmp"


def fsync_dir(path: Path) -> None:
    """Make a rename or unlink inside `path` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomic(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers and crashes see the old or the new content only."""
    path = Path(path)
    fd, temp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMP_SUFFIX, dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def remove_stale_temps(folder: Path) -> list[Path]:
    """Delete temp files left by an interrupted `write_atomic` (only call while holding the write lock)."""
    removed = []
    for temp in Path(folder).glob(f".*{TEMP_SUFFIX}"):
        temp.unlink(missing_ok=True)
        removed.append(temp)
    return removed
