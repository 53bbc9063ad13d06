"""Refuse bone maps that would twist the body, and say which bones to map (pure Python, no bpy).

A body part whose bone is missing keeps its rest pose while its neighbours move, and a bone
mapped out of hierarchy order (spine3 on the head bone, a neck below the chest) drags the
wrong part along: both look like a broken neck or crossed legs, not like an error. So Apply
checks the map first and refuses with the joints to map. Applying only part of the body is
an explicit choice of `scope`; the joints outside it are not keyed at all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .mapping import PRESETS, SMPL22_NAMES, SMPL22_PARENTS, BoneMap, BoneMapError, preset_key


@dataclass(frozen=True)
class Scope:
    label: str
    description: str
    joints: tuple[str, ...]  # joints keyed with this scope
    required: tuple[str, ...]  # joints that must be mapped ("spine" = any of spine1..3)


def _sided(*parts: str) -> tuple[str, ...]:
    return tuple(f"{side}_{part}" for side in ("left", "right") for part in parts)


_SPINE = ("spine1", "spine2", "spine3")
_ARMS = _sided("collar", "shoulder", "elbow", "wrist")
_LEGS = _sided("hip", "knee", "ankle", "foot")

SCOPES: Mapping[str, Scope] = {
    "FULL": Scope("Full Body", "Every body part; refuses when pelvis, spine, neck, head or a limb is unmapped",
                  SMPL22_NAMES, ("pelvis", "spine", "neck", "head", *_sided("hip", "knee", "ankle"),
                                 *_sided("shoulder", "elbow", "wrist"))),
    "UPPER": Scope("Upper Body", "Spine, neck, head and arms; hips and legs stay as they are",
                   (*_SPINE, "neck", "head", *_ARMS), ("spine", "neck", "head", *_sided("shoulder", "elbow", "wrist"))),
    "LOWER": Scope("Hips and Legs", "Pelvis (with its travel) and legs; the upper body stays as it is",
                   ("pelvis", *_LEGS), ("pelvis", *_sided("hip", "knee", "ankle"))),
    "ARMS": Scope("Arms", "Collars and arms only", _ARMS, _sided("shoulder", "elbow", "wrist")),
    "MAPPED": Scope("Mapped Bones Only", "Whatever the bone map names, nothing required (hierarchy order is still "
                    "checked)", SMPL22_NAMES, ()),
}
SCOPE_ITEMS = tuple((key, scope.label, scope.description) for key, scope in SCOPES.items())


def restrict_to_scope(bone_map: BoneMap, bone_names: Sequence[str], parents: Sequence[int], scope: str = "FULL",
                      armature: str = "armature") -> BoneMap:
    """The part of `bone_map` that `scope` keys, after checking it cannot twist the body.

    Raises BoneMapError naming the joints to map, or the bones mapped out of hierarchy order.
    """
    if scope not in SCOPES:
        raise BoneMapError(f"unknown body scope {scope!r}; choose one of {', '.join(SCOPES)}")
    wanted = SCOPES[scope]
    mapping = {joint: bone for joint, bone in bone_map.smpl_to_bone.items() if joint in wanted.joints}
    missing = [joint for joint in wanted.required
               if (not any(j in mapping for j in _SPINE) if joint == "spine" else joint not in mapping)]
    if missing:
        names = ", ".join("a spine bone (spine1, spine2 or spine3)" if j == "spine" else j for j in missing)
        partial = "" if scope != "FULL" else (" To animate only part of the body, choose another Body scope "
                                              "(Upper Body, Hips and Legs, Arms, Mapped Bones Only).")
        raise BoneMapError(f"{armature}: Apply refused ({wanted.label}), the body would twist: no bone for {names}. "
                           f"Pick the bones in the Bone Map.{partial}")
    if not mapping:
        raise BoneMapError(f"{armature}: no bone is mapped for {wanted.label}; pick bones in the Bone Map")
    problems = hierarchy_problems(mapping, bone_names, parents, bone_map.preset)
    if problems:
        raise BoneMapError(f"{armature}: Apply refused, bones mapped out of hierarchy order: {'; '.join(problems)}. "
                           "Fix these rows in the Bone Map.")
    return BoneMap(mapping, [j for j in SMPL22_NAMES if j not in mapping], bone_map.preset)


def hierarchy_problems(mapping: Mapping[str, str], bone_names: Sequence[str], parents: Sequence[int],
                       preset: str | None = None) -> list[str]:
    """Each mapped joint's bone must hang below the bone of its nearest mapped SMPL ancestor.

    A bone above its SMPL parent's bone is always wrong. Bones in unrelated branches are wrong
    too, except where both names are the preset's own (Rigify's DEF bones follow their parent
    part through constraints, not through parenting).
    """
    index = {name: i for i, name in enumerate(bone_names)}

    def ancestors(bone: str) -> set[str]:
        found, i = set(), int(parents[index[bone]])
        while i >= 0:
            found.add(bone_names[i])
            i = int(parents[i])
        return found

    problems = []
    for joint, bone in mapping.items():
        parent_joint = _mapped_smpl_parent(joint, mapping)
        if parent_joint is None:
            continue
        parent_bone = mapping[parent_joint]
        if parent_bone in ancestors(bone):
            continue
        if bone in ancestors(parent_bone):
            problems.append(f"{joint} -> {bone!r} sits above {parent_joint} -> {parent_bone!r}")
        elif not (_preset_names(preset, joint, bone) and _preset_names(preset, parent_joint, parent_bone)):
            problems.append(f"{joint} -> {bone!r} is not below {parent_joint} -> {parent_bone!r}")
    return problems


def _mapped_smpl_parent(joint: str, mapping: Mapping[str, str]) -> str | None:
    index = SMPL22_PARENTS[SMPL22_NAMES.index(joint)]
    while index >= 0:
        if SMPL22_NAMES[index] in mapping:
            return SMPL22_NAMES[index]
        index = SMPL22_PARENTS[index]
    return None


def _preset_names(preset: str | None, joint: str, bone: str) -> bool:
    table = PRESETS.get(preset or "")
    return bool(table) and preset_key(bone) in {preset_key(name) for name in table.get(joint, ())}
