"""Where MoFind finds things on disk: shared data, caches, shipped weights, the default index.

Every location can be overridden by an environment variable so that CI, tests and
studios can point MoFind elsewhere without code changes.
"""

from __future__ import annotations

import os
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_ROOT = PACKAGE_DIR.parents[1]
#: True when running from a source checkout (editable install or PYTHONPATH), False for an installed wheel.
IN_CHECKOUT = (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "backend" / "mofind").is_dir()


def shared_dir() -> Path | None:
    """The read-only `shared/` folder beside the checkout (MOFIND_SHARED overrides); None when absent."""
    path = Path(os.environ.get("MOFIND_SHARED", REPO_ROOT.parent / "shared"))
    return path if path.is_dir() else None


def cache_dir() -> Path:
    """Scratch space for extracted archives and derived data (MOFIND_CACHE overrides).

    A checkout keeps it beside the code (`.cache/`); an installed package uses the user's cache folder.
    """
    if "MOFIND_CACHE" in os.environ:
        path = Path(os.environ["MOFIND_CACHE"])
    elif IN_CHECKOUT:
        path = REPO_ROOT / ".cache"
    else:
        path = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "mofind"
    path.mkdir(parents=True, exist_ok=True)
    return path


def model_dir() -> Path:
    """The shipped model (MOFIND_MODEL overrides): the checkout's `model_weights/`, else the copy that a built
    wheel carries as package data (`mofind/model_weights/`, see setup.py)."""
    if "MOFIND_MODEL" in os.environ:
        return Path(os.environ["MOFIND_MODEL"])
    return REPO_ROOT / "model_weights" if IN_CHECKOUT else PACKAGE_DIR / "model_weights"


def config_dir() -> Path:
    """The user's MoFind settings and keys (MOFIND_CONFIG overrides; XDG_CONFIG_HOME, or %APPDATA% on Windows).

    The Blender add-on computes the same folder (`blender_addon/core/keys.py`) to find the server's public
    key and enrol its own, so the two must agree: change both or neither.
    """
    if os.environ.get("MOFIND_CONFIG"):
        return Path(os.environ["MOFIND_CONFIG"])
    if os.name == "nt" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "mofind"
    return Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config") / "mofind"


def default_index_dir() -> Path:
    """The persistent default index used by `make run` (MOFIND_INDEX overrides)."""
    if "MOFIND_INDEX" in os.environ:
        return Path(os.environ["MOFIND_INDEX"])
    data_home = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return data_home / "mofind" / "index"
