"""Exceptions for unreadable or unmappable motion files.

Every bad input surfaces as a `MotionIOError` that names the file (and the line, where one
applies), so a batch job can report the culprit and carry on instead of dying deep in numpy.
"""

from __future__ import annotations

from pathlib import Path


class MotionIOError(ValueError):
    """A motion file could not be read or interpreted; `.path` and `.line` locate the problem."""

    def __init__(self, message: str, path: str | Path | None = None, line: int | None = None):
        self.path = str(path) if path is not None else None
        self.line = line
        self.reason = message
        where = self.path or "<memory>"
        if line is not None:
            where = f"{where}:{line}"
        super().__init__(f"{where}: {message}")


class BVHParseError(MotionIOError):
    """The BVH text is malformed: truncated, non-numeric, missing MOTION, unknown channel, ..."""


class SkeletonMappingError(MotionIOError):
    """The skeleton cannot be mapped onto SMPL-22 (too few recognisable joints)."""


class MotionFormatError(MotionIOError):
    """A non-BVH motion file (HumanML3D / KIT-ML .npy, text files) has the wrong shape or content."""
