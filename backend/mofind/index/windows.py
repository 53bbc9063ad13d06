"""Cutting a take into the overlapping fixed-length windows the model sees.

A 3-minute take is far longer than the model's window, so it is indexed as windows every `stride`
frames; a search then returns the best window, located in SOURCE frames so the add-on can apply
exactly that span of the original file. Windows are spread evenly from the first frame to the last
(the step is the stride rounded to fit, at most 1.5 strides), so every frame is covered, no window is
a near-duplicate of its neighbour, and none is padded unless the whole take is shorter than one window.

>>> window_starts(10, 96, 48)
[0]
>>> window_starts(200, 96, 48)
[0, 52, 104]
>>> [(w.start, w.end, w.source_start, w.source_end) for w in cut_windows(150, 96, 48, 20.0, (0, 225), 30.0)]
[(0, 96, 0, 144), (54, 150, 81, 225)]
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    start: int  # model-rate frames, end exclusive
    end: int
    source_start: int  # source frames, end exclusive
    source_end: int


def window_starts(num_frames: int, window: int, stride: int) -> list[int]:
    """First frame of each window, evenly spaced; the last one ends exactly at the last frame."""
    if num_frames <= 0:
        return []
    if num_frames <= window:
        return [0]
    last = num_frames - window
    steps = max(1, round(last / stride))
    return [round(i * last / steps) for i in range(steps + 1)]


def to_source_frame(frame: float, fps: float, frame_range: tuple[int, int], source_fps: float) -> int:
    """Model-rate frame (time from the start of the clip) -> source frame number, clamped to the range."""
    start, end = frame_range
    source = start + frame * source_fps / fps
    return int(min(max(math.floor(source + 1e-6), start), end))


def cut_windows(num_frames: int, window: int, stride: int, fps: float, frame_range: tuple[int, int],
                source_fps: float) -> list[Window]:
    out = []
    for start in window_starts(num_frames, window, stride):
        end = min(start + window, num_frames)
        source_start = to_source_frame(start, fps, frame_range, source_fps)
        source_end = frame_range[1] if end == num_frames else to_source_frame(end, fps, frame_range, source_fps)
        out.append(Window(start, end, source_start, max(source_end, source_start + 1)))
    return out
