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
        try:
            self._wait_for(fd)
            os.ftruncate(fd, 0)
            os.write(fd, f"{os.getpid()}\n".encode())
        except BaseException:  # timeout, Ctrl-C while waiting, a full disk: never leak the descriptor
            os.close(fd)
            raise
        self._fd = fd
        return self

    def _wait_for(self, fd: int) -> None:
        deadline = time.monotonic() + self.timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise IndexLockedError(
                        f"{self.path.parent} is being written by another indexer{_read_holder(fd)}; "
                        "wait for it to finish (or stop it) and retry") from None
                time.sleep(self.poll_interval)

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
