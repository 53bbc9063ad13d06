"""Name-heuristic mapping of an unknown rig onto SMPL-22.

A bone name is split into (side, core): namespace prefixes ("mixamorig:", "Armature|"), rig prefixes
("DEF-", "CC_Base_", "Bip01 ", ...) and digits are dropped, the side is read from Left/Right/L/R/_l/.L
tokens, and the core is looked up in an alias table. When several joints share a core ("Spine",
"Spine1", "Spine2") the one closest to the root wins for limbs. Joints that only help a character
look good (twist, roll, share, IK, fingers, face) are ignored.
"""

from __future__ import annotations

import re

import numpy as np

from mofind.io.motion import SourceSkeleton

from .presets import ALIAS_TABLE

# core alias -> body part (from bone_aliases.json, shared with the add-on); sided parts get
# left_/right_ prefixes. Order inside a part = preference.
_SIDED_ALIASES: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in ALIAS_TABLE["aliases"]["sided"].items()}
_CENTRE_ALIASES: dict[str, tuple[str, ...]] = {k: tuple(v) for k, v in ALIAS_TABLE["aliases"]["centre"].items()}
# Helper joints (twist, IK, fingers, face ...): any of these words inside the name core.
_IGNORE = re.compile("|".join(ALIAS_TABLE["aliases"]["helper_words"] + ["mch", "org"]), re.IGNORECASE)
_PREFIXES = re.compile(r"^(def|mch|org|cc_base|rl|bip\d*|b|j_bip_[clr]|j|bone|jnt|joint|rig|char|mixamorig\d*)[-_ .]",
                       re.IGNORECASE)
# (pattern, flags): first match decides the side; group 1 is the side token that gets removed.
_SIDE_PATTERNS = [
    (r"^(left|right)", re.IGNORECASE),  # LeftArm, left_arm
    (r"(left|right)$", re.IGNORECASE),  # ShoulderLeft (Kinect)
    (r"^([LR])(?=[A-Z]|[-_ .])", 0),  # LHipJoint, RThumb, L_Thigh
    (r"^([lr])(?=[-_ .])", 0),  # l_hip
    (r"[-_ .]([LlRr])$", 0),  # hand.L, thigh_l
    (r"[-_ .]([LlRr])[-_ .]", 0),  # Bip01 L Thigh
    (r"(Left|Right)", 0),  # HandLeftThumb
]


def split_name(name: str) -> tuple[str | None, str]:
    """'mixamorig:LeftForeArm' -> ('left', 'forearm'); 'DEF-upper_arm.L' -> ('left', 'upperarm')."""
    base = re.split(r"[:|]", name)[-1]
    previous = None
    while previous != base:
        previous = base
        base = _PREFIXES.sub("", base)
    side = None
    for pattern, flags in _SIDE_PATTERNS:
        match = re.search(pattern, base, flags)
        if match:
            side = "left" if match.group(1)[0] in "Ll" else "right"
            base = base[: match.start(1)] + " " + base[match.end(1):]
            break
    core = re.sub(r"[^a-z]", "", base.lower())
    return side, core


def automap(skeleton: SourceSkeleton) -> tuple[dict[str, str], list[str]]:
    """Guess SMPL-22 -> source names; returns (smpl_to_source, source joints that were ignored)."""
    depth = _depths(skeleton.parents)
    candidates: dict[str, list[tuple[int, int, int]]] = {}  # smpl name -> (alias rank, depth, joint)
    ignored: list[str] = []
    for j, name in enumerate(skeleton.names):
        side, core = split_name(name)
        if not core or _IGNORE.search(core):
            ignored.append(name)
            continue
        matched = False
        table = _SIDED_ALIASES if side else _CENTRE_ALIASES
        for part, aliases in table.items():
            if core in aliases:
                smpl = f"{side}_{part}" if side else part
                candidates.setdefault(smpl, []).append((aliases.index(core), int(depth[j]), j))
                matched = True
        if not matched:
            ignored.append(name)

    chosen: dict[str, str] = {}
    used: set[int] = set()
    # the arm needs care: "shoulder" is a collar when the rig also has an upper-arm joint
    order = ["pelvis", "head", "neck"] + [f"{s}_{p}" for p in ("shoulder", "elbow", "wrist", "collar", "hip", "knee",
                                                                "ankle", "foot") for s in ("left", "right")]
    for smpl in order:
        options = sorted(candidates.get(smpl, []))
        options = [o for o in options if o[2] not in used]
        if smpl.endswith("_shoulder"):
            proper = [o for o in options if o[0] < len(_SIDED_ALIASES["shoulder"]) - 1]
            options = proper or options
        if options:
            j = options[0][2]
            chosen[smpl] = skeleton.names[j]
            used.add(j)
    for smpl, spine_name in _spine_from_chain(skeleton, chosen, candidates).items():
        chosen[smpl] = spine_name
    return chosen, ignored


def _spine_from_chain(skeleton, chosen, candidates) -> dict[str, str]:
    """Assign spine1..3 to the spine-like joints between pelvis and neck, bottom to top."""
    spine_joints = sorted(j for _, _, j in candidates.get("spine", []))
    if not spine_joints:
        return {}
    picks = spine_joints if len(spine_joints) <= 3 else [spine_joints[i] for i in
                                                          np.linspace(0, len(spine_joints) - 1, 3).round().astype(int)]
    names = ["spine1", "spine2", "spine3"] if len(picks) == 3 else (["spine1", "spine3"] if len(picks) == 2
                                                                      else ["spine2"])
    return {smpl: skeleton.names[j] for smpl, j in zip(names, picks)}


def _depths(parents: np.ndarray) -> np.ndarray:
    depth = np.zeros(len(parents), dtype=np.int64)
    for j, p in enumerate(parents):
        depth[j] = 0 if p < 0 else depth[p] + 1
    return depth
