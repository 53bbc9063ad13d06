"""Break text into lines that fit a width in pixels, measured by a function (no bpy: testable anywhere).

Blender's labels cut long text with "…"; the sidebar is ~290 px wide by default, so an error or a
take name must be split over lines by its measured width, not by a character count.
"""

from __future__ import annotations

import re
from typing import Callable

Measure = Callable[[str], float]
_SOFT_BREAKS = re.compile(r"(?<=[_\-/.\\,;:])")  # where a long word (a path, a take name) may break


def wrap(text: str, width: float, measure: Measure) -> list[str]:
    """Greedy word wrap of `text` into lines no wider than `width`; words wider than a line are split
    after `_ - / . , ; :` where possible, else between characters. Newlines in `text` are kept."""
    lines: list[str] = []
    for paragraph in text.split("\n"):
        lines.extend(_wrap_paragraph(paragraph, max(width, 1.0), measure))
    return lines or [""]


def join_fitting(pieces: list[str], width: float, measure: Measure, sep: str = " · ") -> list[str]:
    """Join short facts (score, duration, range) on as few lines as fit, never cutting one in half."""
    lines: list[str] = []
    for piece in filter(None, pieces):
        if lines and measure(lines[-1] + sep + piece) <= width:
            lines[-1] += sep + piece
        else:
            lines.append(piece)
    return lines


def _wrap_paragraph(text: str, width: float, measure: Measure) -> list[str]:
    lines: list[str] = []
    current = ""
    for word in text.split(" "):
        candidate = f"{current} {word}" if current else word
        if measure(candidate) <= width:
            current = candidate
            continue
        if current:
            lines.append(current)
        if measure(word) <= width:
            current = word
            continue
        pieces = _split_word(word, width, measure)
        lines.extend(pieces[:-1])
        current = pieces[-1]
    lines.append(current)
    return lines


def _split_word(word: str, width: float, measure: Measure) -> list[str]:
    """A word wider than the line: break at soft breaks, and between characters where even a piece is too wide."""
    lines: list[str] = []
    current = ""
    for chunk in _SOFT_BREAKS.split(word):
        if measure(current + chunk) <= width:
            current += chunk
            continue
        if current:
            lines.append(current)
            current = ""
        for char in chunk:
            if current and measure(current + char) > width:
                lines.append(current)
                current = ""
            current += char
    lines.append(current)
    return [line for line in lines if line] or [""]
