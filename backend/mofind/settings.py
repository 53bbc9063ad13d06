"""The operator's settings file, `mofind.toml` in `mofind.paths.config_dir()` (MOFIND_SETTINGS overrides).

    [serve]
    library_roots = ["/mocap", "~/takes"]   # folders clients may index (index_add) and remove from

    [limits]                                # caps on hostile motion files (mofind.io.limits.MotionLimits)
    max_joints = 1024
    max_frames = 1000000

Command-line flags add to (roots) or override (limits) what the file says. A missing file means
defaults; a malformed one is a `SettingsError` naming the file and the key, never a traceback.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from mofind.io.limits import MotionLimits

SETTINGS_FILE = "mofind.toml"


class SettingsError(ValueError):
    """The settings file exists but cannot be used."""


@dataclass(frozen=True)
class Settings:
    path: Path
    library_roots: tuple[Path, ...] = ()
    limits: MotionLimits = field(default_factory=MotionLimits)


def settings_path() -> Path:
    from mofind.paths import config_dir

    return Path(os.environ.get("MOFIND_SETTINGS") or config_dir() / SETTINGS_FILE)


def load_settings(path: Path | None = None) -> Settings:
    path = Path(path) if path is not None else settings_path()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return Settings(path)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SettingsError(f"{path}: {exc}") from None
    serve = data.get("serve", {})
    roots = serve.get("library_roots", []) if isinstance(serve, dict) else None
    if not isinstance(roots, list) or not all(isinstance(r, str) and r for r in roots):
        raise SettingsError(f"{path}: [serve] library_roots must be a list of folder paths")
    limits_table = data.get("limits", {})
    if not isinstance(limits_table, dict):
        raise SettingsError(f"{path}: [limits] must be a table")
    try:
        limits = limits_from_mapping(limits_table, MotionLimits())
    except ValueError as exc:
        raise SettingsError(f"{path}: [limits] {exc}") from None
    return Settings(path, tuple(Path(r).expanduser() for r in roots), limits)


def limits_from_mapping(values: dict, base: MotionLimits) -> MotionLimits:
    """`base` with the given caps replaced; unknown names and non-positive numbers are a ValueError."""
    known = {f.name: f.type for f in fields(MotionLimits)}
    changes = {}
    for name, value in values.items():
        if name not in known:
            raise ValueError(f"unknown limit {name!r}; known: {', '.join(known)}")
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"{name} must be a positive number, got {value!r}")
        changes[name] = value
    return replace(base, **changes)
