"""Where MoFind finds things on disk: shared data, caches, shipped weights, the default index.

Every location can be overridden by an environment variable so that CI, tests and
studios can point MoFind elsewhere without code changes.
"""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def shared_dir() -> Path | None:
    """The read-only `shared/` folder beside the checkout (MOFIND_SHARED overrides); None when absent."""
    path = Path(os.environ.get("MOFIND_SHARED", REPO_ROOT.parent / "shared"))
    return path if path.is_dir() else None


def cache_dir() -> Path:
    """Scratch space for extracted archives and derived data (MOFIND_CACHE overrides)."""
    path = Path(os.environ.get("MOFIND_CACHE", REPO_ROOT / ".cache"))
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_dir() -> Path:
    """The shipped model (MOFIND_MODEL overrides)."""
    return Path(os.environ.get("MOFIND_MODEL", REPO_ROOT / "model_weights"))


def default_index_dir() -> Path:
    """The persistent default index used by `make run` (MOFIND_INDEX overrides)."""
    if "MOFIND_INDEX" in os.environ:
        return Path(os.environ["MOFIND_INDEX"])
    data_home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return data_home / "mofind" / "index"
