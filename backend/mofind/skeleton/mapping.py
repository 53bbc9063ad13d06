"""Choose how a source skeleton maps onto SMPL-22: a known preset if one fits, else the name heuristic."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mofind.io.errors import SkeletonMappingError
from mofind.io.motion import SourceSkeleton

from .automap import automap
from .presets import PRESETS, SIGNATURES
from .smpl import REQUIRED, SMPL22_NAMES


@dataclass
class SkeletonMapping:
    """`smpl_to_source`: SMPL-22 name -> source joint name; `unmapped`: SMPL joints without one
    (their positions are interpolated); `ignored`: source joints that play no part."""

    preset: str | None
    smpl_to_source: dict[str, str]
    unmapped: list[str]
    ignored: list[str] = field(default_factory=list)

    def source_index(self, skeleton: SourceSkeleton) -> dict[str, int]:
        lookup = {name: i for i, name in enumerate(skeleton.names)}
        return {smpl: lookup[name] for smpl, name in self.smpl_to_source.items()}


def bare_name(name: str) -> str:
    """Drop a namespace ("mixamorig:Hips", "Armature|Hips") and compare case-insensitively."""
    return re.split(r"[:|]", name)[-1].strip().lower()


def map_skeleton(skeleton: SourceSkeleton, path: str | None = None) -> SkeletonMapping:
    """Best preset (most joints found, all required ones present) or the heuristic; raises
    `SkeletonMappingError` naming the missing SMPL joints when neither finds the limbs."""
    lookup: dict[str, str] = {}
    for name in skeleton.names:
        lookup.setdefault(bare_name(name), name)

    best: tuple[tuple[int, int], str, dict[str, str]] | None = None
    for preset, table in PRESETS.items():
        found: dict[str, str] = {}
        for smpl, alternatives in table.items():
            for alt in alternatives:  # the first alternative present and not taken by another joint
                bone = lookup.get(alt.lower())
                if bone is not None and bone not in found.values():
                    found[smpl] = bone
                    break
        if not all(r in found for r in REQUIRED):
            continue
        signature = sum(s.lower() in lookup for s in SIGNATURES.get(preset, ()))
        score = (len(found), signature)
        if best is None or score > best[0]:
            best = (score, preset, found)

    if best is not None:
        _, preset, found = best
        used = set(found.values())
        ignored = [n for n in skeleton.names if n not in used]
    else:
        preset = None
        found, ignored = automap(skeleton)
    missing = [r for r in REQUIRED if r not in found]
    if missing:
        raise SkeletonMappingError(
            f"cannot map skeleton to SMPL-22: no joint found for {', '.join(missing)} "
            f"(joints: {', '.join(skeleton.names[:12])}{', ...' if skeleton.num_joints > 12 else ''})", path)
    if "neck" not in found and "head" not in found:
        raise SkeletonMappingError("cannot map skeleton to SMPL-22: neither a neck nor a head joint found", path)
    ordered = {smpl: found[smpl] for smpl in SMPL22_NAMES if smpl in found}
    unmapped = [smpl for smpl in SMPL22_NAMES if smpl not in found]
    return SkeletonMapping(preset=preset, smpl_to_source=ordered, unmapped=unmapped, ignored=ignored)
