"""The server's memory promise: `--max-memory` for the process, an equal share of what is left per request.

Why a budget and not a watchdog: a request that would not fit must be refused before it allocates
(TOO_LARGE, naming the limit), never killed half-way. What the server keeps between requests (the
model and libraries, measured as RSS when the backend starts; the searcher's first-stage tables and
its unpacked-block cache) is subtracted from `--max-memory`; the rest is split between the worker
threads, since each may run one request at a time. Each request's need is an upper bound computed from
its parameters before any work (`Searcher.request_bytes` for searches).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass

_UNITS = {"": 1, "B": 1, "K": 1 << 10, "KB": 1 << 10, "KIB": 1 << 10, "M": 1 << 20, "MB": 1 << 20, "MIB": 1 << 20,
          "G": 1 << 30, "GB": 1 << 30, "GIB": 1 << 30, "T": 1 << 40, "TB": 1 << 40, "TIB": 1 << 40}
MIN_MAX_MEMORY = 256 << 20


def parse_size(text: str) -> int:
    """'6G', '512MiB', '1.5GB' or a number of bytes -> bytes (binary units). ValueError when malformed.

    >>> parse_size("6G"), parse_size("512 MiB"), parse_size("1048576")
    (6442450944, 536870912, 1048576)
    """
    match = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([A-Za-z]*)\s*", str(text))
    if not match or match.group(2).upper() not in _UNITS:
        raise ValueError(f"{text!r} is not a size (use e.g. 6G, 512M or a number of bytes)")
    return int(float(match.group(1)) * _UNITS[match.group(2).upper()])


def machine_memory() -> int:
    """Physical memory, or the cgroup's limit when the server runs in a smaller container."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        try:
            with open(path, encoding="ascii") as handle:
                value = handle.read().strip()
        except OSError:
            continue
        if value.isdigit() and 0 < int(value) < total:
            total = int(value)
    return total


def default_max_memory() -> int:
    """Half the machine: the other half stays for the page cache of the index files, Blender and the rest."""
    return max(MIN_MAX_MEMORY, machine_memory() // 2)


def rss_bytes() -> int:
    """This process's resident set now (0 where /proc is missing)."""
    try:
        with open("/proc/self/statm", encoding="ascii") as handle:
            return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def mib(value: int) -> str:
    return f"{value / (1 << 20):,.0f} MiB"


@dataclass
class MemoryBudget:
    """--max-memory of the whole server, the baseline it started with, and how many requests run at once."""

    max_bytes: int
    workers: int = 4
    baseline: int = 0  # RSS when the backend started (model, libraries)

    def per_request(self, resident: int) -> int:
        """Bytes one request may use while `resident` bytes are kept by the searcher."""
        return max(0, (self.max_bytes - self.baseline - resident) // max(1, self.workers))

    def refusal(self, need: int, resident: int, what: str) -> str | None:
        """None when `need` fits; else the TOO_LARGE message naming the limit."""
        allowed = self.per_request(resident)
        if need <= allowed:
            return None
        return (f"{what} needs about {mib(need)}; each request may use {mib(allowed)} (--max-memory "
                f"{mib(self.max_bytes)}, less {mib(self.baseline + resident)} the server keeps, shared by "
                f"{self.workers} workers): ask for less (smaller k or per_take, filters, mode two_stage) or "
                "restart the server with a larger --max-memory")

    def to_dict(self, resident: int) -> dict:
        return {"max_bytes": self.max_bytes, "baseline_bytes": self.baseline, "resident_bytes": resident,
                "per_request_bytes": self.per_request(resident), "workers": self.workers}
