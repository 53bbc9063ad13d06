"""Clip thumbnails: PNG bytes from the backend → files in the user cache → `bpy.utils.previews` icons.

`bpy.utils.previews` loads images only from files, so each thumbnail is written once under the
extension's user directory (never into the add-on's own folder), named by a hash of its bytes.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from pathlib import Path

import bpy
import bpy.utils.previews

log = logging.getLogger(__name__)


def thumbnail_dir(package: str) -> Path:
    """Per-user cache folder for thumbnails (a temp folder when not running as an extension)."""
    try:
        return Path(bpy.utils.extension_path_user(package, path="thumbnails", create=True))
    except (ValueError, RuntimeError):
        path = Path(tempfile.gettempdir()) / "mofind-thumbnails"
        path.mkdir(parents=True, exist_ok=True)
        return path


class ThumbnailCache:
    """Owns one preview collection; `close()` frees it (the add-on calls it on unregister)."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        self._collection = bpy.utils.previews.new()

    @property
    def closed(self) -> bool:
        return self._collection is None

    def add(self, png: bytes) -> str:
        """Load these PNG bytes as a preview; returns its key ('' when there is nothing to show)."""
        if self._collection is None or not png:
            return ""
        key = hashlib.sha1(png).hexdigest()[:20]
        if key not in self._collection:
            path = self.directory / f"{key}.png"
            try:
                if not path.exists():
                    path.write_bytes(png)
                self._collection.load(key, str(path), "IMAGE")
            except (OSError, RuntimeError, KeyError) as exc:
                log.warning("MoFind: cannot show a thumbnail (%s)", exc)
                return ""
        return key

    def icon_id(self, key: str) -> int:
        """The preview's icon id (0 without a UI, e.g. headless Blender, or for an unknown key)."""
        if self._collection is None or key not in self._collection:
            return 0
        return self._collection[key].icon_id

    def image_size(self, key: str) -> tuple[int, int]:
        """Pixel size of the loaded thumbnail ((0, 0) for an unknown key)."""
        if self._collection is None or key not in self._collection:
            return (0, 0)
        return tuple(self._collection[key].image_size)

    def clear(self) -> None:
        if self._collection is not None:
            self._collection.clear()

    def close(self) -> None:
        if self._collection is not None:
            bpy.utils.previews.remove(self._collection)
            self._collection = None
