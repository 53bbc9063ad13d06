"""Caps on what one motion file may make the backend allocate, checked while parsing (before allocating).

A motion file is untrusted input: a few MB of BVH can declare 10^5 joints, a 1e-300 s frame time or a
0.01 fps take that resamples into hours of frames. Every reader checks these caps as soon as it knows
the number (joint by joint in the HIERARCHY, the `Frames:` / `Frame Time:` header before the MOTION
block is parsed), and a file over a cap fails alone with a `MotionFormatError`/`BVHParseError` that
names the cap; the rest of an indexing run goes on. The defaults fit any real capture (documented in
docs/security.md); the operator changes them in the `[limits]` table of `mofind.toml` (mofind.settings).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class MotionLimits:
    max_file_bytes: int = 256 << 20  # bytes of one motion file
    max_joints: int = 1024  # joints (ROOT + JOINT) of one skeleton, also bounds the nesting depth
    max_channels: int = 6144  # channels of all joints together
    max_frames: int = 1_000_000  # frames declared by one file
    max_values: int = 32_000_000  # frames x channels (256 MB as float64)
    max_duration_s: float = 3600.0  # seconds of one take (it is resampled to the model's rate)
    min_fps: float = 1.0
    max_fps: float = 1000.0
    max_abs_value: float = 1e7  # any OFFSET or channel value (source units or degrees)

    def to_dict(self) -> dict:
        return asdict(self)


DEFAULT_LIMITS = MotionLimits()
