"""Which bone of a rig plays which SMPL-22 joint (pure Python, no bpy).

Both sides of a retarget meet on SMPL-22: the backend sends `smpl_to_source` for the clip, this
module finds `smpl_to_bone` for the user's armature. Known rigs are plain tables (`PRESETS`, one
entry per rig); anything else falls back to `CANONICAL_ALIASES` (SMPL joint -> name cores with a
`{side}` placeholder) matched through `split_bone_name`, a pure name normaliser. The result is a
`BoneMap` whose `to_dict()` is the plain dict the UI lists, edits and saves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

SMPL22_NAMES = (
    "pelvis", "left_hip", "right_hip", "spine1", "left_knee", "right_knee", "spine2", "left_ankle",
    "right_ankle", "spine3", "left_foot", "right_foot", "neck", "left_collar", "right_collar", "head",
    "left_shoulder", "right_shoulder", "left_elbow", "right_elbow", "left_wrist", "right_wrist",
)
SMPL22_PARENTS = (-1, 0, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 9, 9, 12, 13, 14, 16, 17, 18, 19)

_SIDES = ("left", "right")


def _limb_chains() -> MappingProxyType:
    """SMPL joint -> the joints further along its limb, nearest first.

    A bone's direction is "towards the next joint of its limb that both rigs have", so a rig
    without, say, spine2 still gets a well-defined spine1 direction (towards spine3).
    """
    torso = ("pelvis", "spine1", "spine2", "spine3", "neck", "head")
    chains = {name: torso[i + 1:] for i, name in enumerate(torso)}
    for side in _SIDES:
        for limb in (("hip", "knee", "ankle", "foot"), ("collar", "shoulder", "elbow", "wrist")):
            names = tuple(f"{side}_{part}" for part in limb)
            chains.update({name: names[i + 1:] for i, name in enumerate(names)})
    return MappingProxyType(chains)


LIMB_CHAINS = _limb_chains()


def _load_alias_table() -> dict:
    """bone_aliases.json: the backend's table (mofind/skeleton/), copied here by build_addon.py."""
    return json.loads(Path(__file__).with_name("bone_aliases.json").read_text(encoding="utf-8"))


def _expand_preset(entry: Mapping) -> MappingProxyType:
    """One rig's table: SMPL joint -> bone names to try in order (each side style, e.g. "Left{}")."""
    table: dict[str, tuple[str, ...]] = {joint: tuple(names) for joint, names in entry["centre"].items()}
    for part, names in entry["sided"].items():
        for index, side in enumerate(_SIDES):
            table[f"{side}_{part}"] = tuple(style[index].format(n) for n in names for style in entry["side_styles"])
    return MappingProxyType(table)


@dataclass(frozen=True)
class Drive:
    """How a control rig is animated: its deform bones follow control bones through constraints.

    `levels` lists (control, deform bone, reference bone) triples; each level is keyed after the
    ones before it are evaluated, so a control's parent (and anything its constraints read) is
    already in place. The reference bone turns rigidly with the control and rests like the deform
    bone (Rigify's ORG bones: its DEF bones also bend with the next control, rubber-hose style).
    `switches` are (bone, custom property, value) set first (IK/FK to FK).
    """

    location: str
    levels: tuple[tuple[tuple[str, str, str], ...], ...]
    switches: tuple[tuple[str, str, float], ...] = ()
    hips_settled_after: int | None = None  # levels that move the hip joints (None: all of them)

    @property
    def controls(self) -> tuple[str, ...]:
        return tuple(control for level in self.levels for control, _, _ in level)

    def fits(self, bone_names) -> bool:
        """True when the armature has every control (a rig exported without its controls does not)."""
        names = set(bone_names)
        return self.location in names and all(c in names and r in names for level in self.levels
                                              for c, _, r in level)


_ALIAS_TABLE = _load_alias_table()

# Known rigs, tried in this order (earlier wins a tie). Names compare case-insensitively after
# dropping a namespace ("mixamorig:", "Armature|") and the SMPL FBX prefixes "m_avg_"/"f_avg_".
PRESETS = MappingProxyType({name: _expand_preset(entry) for name, entry in _ALIAS_TABLE["presets"].items()})
PRESET_NAMES = tuple(PRESETS)
PRESET_LABELS = MappingProxyType({name: entry["label"] for name, entry in _ALIAS_TABLE["presets"].items()})
DRIVES = MappingProxyType({
    name: Drive(entry["drive"]["location"],
                tuple(tuple((str(row[0]), str(row[1]), str(row[-1])) for row in level)
                      for level in entry["drive"]["levels"]),
                tuple((str(b), str(p), float(v)) for b, p, v in entry["drive"].get("switches", ())),
                entry["drive"].get("hips_settled_after"))
    for name, entry in _ALIAS_TABLE["presets"].items() if "drive" in entry})

# Fallback for unknown rigs: SMPL joint -> name cores (see `split_bone_name`), best first.
# "{side}" stands for left/right; "spine" cores are shared by spine1..3, which are dealt out
# bottom to top over the spine-like bones in rig order.
CANONICAL_ALIASES = MappingProxyType({
    **{joint: tuple(cores) for joint, cores in _ALIAS_TABLE["aliases"]["centre"].items()},
    **{f"{{side}}_{part}": tuple(cores) for part, cores in _ALIAS_TABLE["aliases"]["sided"].items()},
})
# Upper arm before collar: "shoulder" is the collar only when the rig also has an upper-arm bone.
_CANONICAL_ORDER = ("pelvis", "neck", "head", "{side}_shoulder", "{side}_collar", "{side}_elbow", "{side}_wrist",
                    "{side}_hip", "{side}_knee", "{side}_ankle", "{side}_foot")

_NAMESPACE = re.compile(r"^.*[:|]")
_RIG_PREFIX = re.compile(r"^(DEF|ORG|MCH|CC_Base|RL|Bip0*\d*|mixamorig\d*|[mf]_avg|J_Bip|C)[-_ .]", re.IGNORECASE)
_MECHANISM_PREFIX = re.compile(r"^(ORG|MCH)[-_ .]", re.IGNORECASE)
_SIDE_PATTERNS = (
    (re.compile(r"^(left|right)", re.IGNORECASE)),
    (re.compile(r"(left|right)$", re.IGNORECASE)),
    (re.compile(r"^([LR])(?=[A-Z0-9_\-. ])")),          # L_Hip, LHipJoint, RThumb
    (re.compile(r"^([lr])[_\-. ]")),                     # l_hand
    (re.compile(r"[_\-. ]([LRlr])(?=$|[_\-. ])")),      # thigh.L, thigh_l, upper_arm.L.001
    (re.compile(r"[_\-. ](left|right)(?=[_\-. ])", re.IGNORECASE)),
)
# Words that mark helper bones (twist, IK, fingers, face ...) which never play an SMPL joint.
_HELPER_WORDS = frozenset(_ALIAS_TABLE["aliases"]["helper_words"])


class BoneMapError(ValueError):
    """An edited or saved bone map does not fit the armature (unknown joint, missing or reused bone)."""


def preset_key(name: str) -> str:
    """How preset names compare: namespace and SMPL FBX prefix dropped, lower case."""
    return re.sub(r"^[mf]_avg_", "", _NAMESPACE.sub("", name), flags=re.IGNORECASE).lower()


def _strip_prefixes(name: str) -> str:
    base = _NAMESPACE.sub("", name)
    previous = None
    while previous != base:
        previous, base = base, _RIG_PREFIX.sub("", base)
    return base


def split_bone_name(name: str) -> tuple[str | None, str]:
    """Normalise a bone name to (side, core) for alias matching.

    >>> split_bone_name("mixamorig:LeftForeArm")
    ('left', 'forearm')
    >>> split_bone_name("DEF-upper_arm.L.001")
    ('left', 'upperarm001')
    >>> split_bone_name("CC_Base_R_Thigh")
    ('right', 'thigh')
    >>> split_bone_name("spine_03")
    (None, 'spine03')
    """
    base = _strip_prefixes(name)
    side = None
    for pattern in _SIDE_PATTERNS:
        match = pattern.search(base)
        if match:
            side = "left" if match.group(1)[0] in "Ll" else "right"
            base = base[: match.start(1)] + " " + base[match.end(1):]
            break
    return side, re.sub(r"[^a-z0-9]", "", base.lower())


def _is_helper(name: str) -> bool:
    base = _strip_prefixes(name)
    words = re.split(r"[^A-Za-z0-9]+|(?<=[a-z])(?=[A-Z])", base)
    return any(re.sub(r"\d+$", "", w.lower()) in _HELPER_WORDS for w in words)


@dataclass
class BoneMap:
    """SMPL-22 joint -> bone name for one rig, plus what could not be matched."""

    smpl_to_bone: dict[str, str]
    unmatched: list[str] = field(default_factory=list)
    preset: str | None = None

    def to_dict(self) -> dict:
        """The plain, JSON-friendly form the UI lists, edits and saves as a scheme."""
        return {"preset": self.preset, "smpl_to_bone": dict(self.smpl_to_bone), "unmatched": list(self.unmatched)}

    @classmethod
    def from_dict(cls, data: dict) -> "BoneMap":
        """Accept `to_dict()` output or a bare {smpl joint: bone} dict; empty bone names mean unmapped."""
        if not isinstance(data, dict):
            raise BoneMapError(f"a bone map must be a dict, got {type(data).__name__}")
        full_form = "smpl_to_bone" in data
        raw = data["smpl_to_bone"] if full_form else data
        if not isinstance(raw, dict):
            raise BoneMapError(f"'smpl_to_bone' must be a dict, got {type(raw).__name__}")
        unknown = sorted(str(k) for k in raw if k not in SMPL22_NAMES)
        if unknown:
            raise BoneMapError(f"bone map names joints that are not SMPL-22: {', '.join(unknown)}")
        mapping = {joint: str(raw[joint]) for joint in SMPL22_NAMES if raw.get(joint)}
        preset = data.get("preset") if full_form else None
        return cls(mapping, [j for j in SMPL22_NAMES if j not in mapping], preset)

    def checked(self, bone_names: list[str]) -> "BoneMap":
        """This map, verified against an armature's bones; raises BoneMapError naming every problem."""
        known = set(bone_names)
        problems = [f"{joint} -> {bone!r} (no such bone)" for joint, bone in self.smpl_to_bone.items()
                    if bone not in known]
        seen: dict[str, str] = {}
        for joint, bone in self.smpl_to_bone.items():
            if bone in seen:
                problems.append(f"{joint} and {seen[bone]} both use bone {bone!r}")
            seen.setdefault(bone, joint)
        if problems:
            raise BoneMapError("bone map does not fit the armature: " + "; ".join(problems))
        return self


def detect_bone_map(bone_names: list[str]) -> BoneMap:
    """Guess which bones play the SMPL-22 joints: best-fitting preset first, then name aliases for the gaps."""
    names = [str(n) for n in bone_names]
    preset, mapping = _best_preset(names)
    used = set(mapping.values())
    for joint, bone in _canonical_map(names, used).items():
        mapping.setdefault(joint, bone)
    ordered = {joint: mapping[joint] for joint in SMPL22_NAMES if joint in mapping}
    return BoneMap(ordered, [j for j in SMPL22_NAMES if j not in ordered], preset)


def _best_preset(names: list[str]) -> tuple[str | None, dict[str, str]]:
    by_key: dict[str, str] = {}
    for name in names:
        by_key.setdefault(preset_key(name), name)
    best: tuple[tuple[int, float], str | None, dict[str, str]] = ((0, 0.0), None, {})
    for preset, table in PRESETS.items():
        found: dict[str, str] = {}
        for joint, alternatives in table.items():
            for alternative in alternatives:
                bone = by_key.get(preset_key(alternative))
                if bone is not None and bone not in found.values():
                    found[joint] = bone
                    break
        score = (len(found), len(found) / len(table))
        if score > best[0]:
            best = (score, preset, found)
    (count, fraction), preset, found = best
    # A preset must explain most of the body, or a few shared names ("Hips", "Head") would claim any rig.
    if count >= 12 and fraction >= 0.75:
        return preset, dict(found)
    return None, {}


def _canonical_map(names: list[str], used: set[str]) -> dict[str, str]:
    deform_only = any(n.upper().startswith("DEF-") for n in names)
    candidates: list[tuple[int, str, str | None, str]] = []  # (rig order, bone, side, core without digits)
    for index, name in enumerate(names):
        if name in used or _MECHANISM_PREFIX.match(_NAMESPACE.sub("", name)) or _is_helper(name):
            continue
        if deform_only and not name.upper().startswith("DEF-"):
            continue
        side, core = split_bone_name(name)
        candidates.append((index, name, side, core))

    chosen: dict[str, str] = {}
    taken = set(used)
    for template in _CANONICAL_ORDER:
        for side in (_SIDES if "{side}" in template else (None,)):
            joint = template.format(side=side) if side else template
            bone = _first_alias_match(candidates, CANONICAL_ALIASES[template], side, taken)
            if bone is not None:
                chosen[joint] = bone
                taken.add(bone)
    spine = [(i, name) for i, name, side, core in candidates
             if side is None and name not in taken and re.sub(r"\d+$", "", core) in CANONICAL_ALIASES["spine"]]
    chosen.update(_deal_spine([name for _, name in sorted(spine)]))
    return chosen


def _first_alias_match(candidates, aliases, side, taken) -> str | None:
    # Prefer the alias rank, then bones without a trailing number (twist segments), then rig order.
    best = None
    for index, name, cand_side, core in candidates:
        if cand_side != side or name in taken:
            continue
        stem = re.sub(r"\d+$", "", core)
        if stem not in aliases:
            continue
        key = (aliases.index(stem), stem != core, index)
        if best is None or key < best[0]:
            best = (key, name)
    return best[1] if best else None


def _deal_spine(spine_bones: list[str]) -> dict[str, str]:
    """spine1..3 from the spine-like bones, bottom to top: first, middle and last when there are more."""
    if not spine_bones:
        return {}
    if len(spine_bones) == 1:
        return {"spine2": spine_bones[0]}
    if len(spine_bones) == 2:
        return {"spine1": spine_bones[0], "spine3": spine_bones[1]}
    return {"spine1": spine_bones[0], "spine2": spine_bones[len(spine_bones) // 2], "spine3": spine_bones[-1]}
