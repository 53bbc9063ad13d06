"""Labels parsed from file names, so a library can be filtered by what its files are called.

Names like `dataset-2_wave-left-hand_elderly_014.bvh` or `angry_01_000.bvh` carry the action and the
style; we keep every word-like part, drop take numbers and a few generic words.

>>> labels_from_name("dataset-2_wave-left-hand_elderly_014.bvh")
['wave-left-hand', 'elderly']
>>> labels_from_name("/mocap/Angry_01_000.bvh")
['angry']
>>> labels_from_name("012314.npy")
[]
"""

from __future__ import annotations

import re
from pathlib import Path

_SPLIT = re.compile(r"[_\s.,;+()\[\]]+")
_NOISE = re.compile(r"^(?:dataset|data|take|clip|mocap|motion|anim|seq|subject|trial|v)?[-\d]*$")


def labels_from_name(path: str | Path) -> list[str]:
    labels = []
    for part in _SPLIT.split(Path(path).stem.lower()):
        part = part.strip("-")
        if not part or _NOISE.match(part) or not re.search(r"[a-z]", part):
            continue
        if part not in labels:
            labels.append(part)
    return labels
