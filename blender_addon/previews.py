"""Clip thumbnails: PNG bytes from the backend → files in the user cache → `bpy.utils.previews` icons.

`bpy.utils.previews` loads images only from files, so each thumbnail is written once under the
extension's user directory (never into the add-on's own folder), named by a hash of its bytes.

The backend's thumbnail is a filmstrip (several square poses side by side, e.g. 256x64). Blender
draws every preview icon square, so a strip shown as one icon is a thin smear; `poses()` cuts it
into one square preview per pose (from the loaded preview's own pixels, no image datablock), so a
row shows one readable pose and the detail box the whole strip as a row of squares.
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

    def poses(self, key: str) -> list[int]:
        """Icon ids of the strip's square poses, left to right (the whole image when it is not a strip)."""
        if self._collection is None or key not in self._collection:
            return []
        names = self._pose_names(key)
        return [self._collection[name].icon_id for name in names]

    def key_pose(self, key: str) -> int:
        """Icon id of the pose a row shows: the middle of the strip (0 when there is none)."""
        poses = self.poses(key)
        return poses[len(poses) // 2] if poses else 0

    def _pose_names(self, key: str) -> list[str]:
        strip = self._collection[key]
        width, height = strip.image_size
        count = width // height if height and width > height else 1
        if count <= 1:
            return [key]
        names = [f"{key}:{index}" for index in range(count)]
        if names[0] not in self._collection:
            pixels = strip.image_pixels_float[:]
            for index, name in enumerate(names):
                pose = self._collection.new(name)
                pose.image_size = (height, height)
                pose.image_pixels_float = [value for row in range(height)
                                           for value in pixels[(row * width + index * height) * 4:
                                                               (row * width + (index + 1) * height) * 4]]
        return names

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
