"""One writer at a time: an advisory `fcntl.flock` on `<index>/write.lock`.

flock locks belong to the open file description, so they conflict between processes AND between two
opens inside one process, and the kernel drops them when the holder dies (SIGKILL included) -- a
crashed indexer never leaves a stale lock behind. Readers take no lock: committed files are immutable
and the manifest is replaced atomically.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

LOCK_NAME = "write.lock"


class IndexLockedError(RuntimeError):
    """Another process (or another writer in this one) is writing the index."""


class WriteLock:
    """Context manager holding the exclusive write lock of an index directory."""

    def __init__(self, folder: Path, timeout: float = 0.0, poll_interval: float = 0.05):
        self.path = Path(folder) / LOCK_NAME
        self.timeout = timeout
        self.poll_interval = poll_interval
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> "WriteLock":
        if self._fd is not None:
            return self
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = _read_holder(fd)
                    os.close(fd)
                    raise IndexLockedError(
                        f"{self.path.parent} is being written by another indexer{holder}; "
                        "wait for it to finish (or stop it) and retry") from None
                time.sleep(self.poll_interval)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def __enter__(self) -> "WriteLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_holder(fd: int) -> str:
    try:
        pid = os.pread(fd, 32, 0).decode().strip()
    except OSError:
        return ""
    return f" (pid {pid})" if pid.isdigit() else ""
