"""Known rigs: SMPL-22 joint -> source joint name (first alternative present wins).

The table is data, `bone_aliases.json`, shared with the Blender add-on (build_addon.py copies it
into the zip), so the backend and the add-on recognise the same rigs by the same names. Names
are compared case-insensitively after dropping a namespace prefix ("mixamorig:", "Armature|").
Spine entries matter for retargeting only: SMPL spine positions are always sampled along the
source spine (see convert).
"""

from __future__ import annotations

import json
from pathlib import Path

ALIAS_FILE = Path(__file__).with_name("bone_aliases.json")
_SIDES = ("left", "right")


def load_alias_table(path: Path = ALIAS_FILE) -> dict:
    """The parsed bone-alias table (presets and fallback aliases)."""
    return json.loads(path.read_text(encoding="utf-8"))


def expand_preset(entry: dict) -> dict[str, tuple[str, ...]]:
    """SMPL joint -> bone names to try, in the preset's order (sided parts spelled in every side style)."""
    table = {joint: tuple(names) for joint, names in entry["centre"].items()}
    for part, names in entry["sided"].items():
        for index, side in enumerate(_SIDES):
            table[f"{side}_{part}"] = tuple(style[index].format(n) for n in names for style in entry["side_styles"])
    return table


ALIAS_TABLE = load_alias_table()
PRESETS: dict[str, dict[str, tuple[str, ...]]] = {name: expand_preset(entry)
                                                  for name, entry in ALIAS_TABLE["presets"].items()}
# Joints that identify a preset beyond what it shares with others (CMU vs Mixamo share most names).
SIGNATURES: dict[str, tuple[str, ...]] = {name: tuple(entry.get("signature", ()))
                                          for name, entry in ALIAS_TABLE["presets"].items()}
