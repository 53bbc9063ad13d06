"""The two data classes every layer passes around: a source skeleton and a motion on SMPL-22.

`SourceSkeleton` keeps the file's own hierarchy (so the Blender add-on can retarget the original
rotations), `Motion` carries both that source animation and the SMPL-22 joint positions the
features and the model consume.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class SourceSkeleton:
    """A joint hierarchy as written in the source file (source units, source axes)."""

    names: list[str]
    parents: np.ndarray  # (J,) int, -1 for a root
    offsets: np.ndarray  # (J, 3) float64, rest offset of each joint from its parent
    channels: list[list[str]]  # per joint, e.g. ["Xposition", ..., "Zrotation", "Xrotation", "Yrotation"]
    end_sites: dict[int, np.ndarray] = field(default_factory=dict)  # joint index -> (3,) end-site offset

    @property
    def num_joints(self) -> int:
        return len(self.names)

    def index(self, name: str) -> int:
        return self.names.index(name)

    def children(self, joint: int) -> list[int]:
        return [int(j) for j in np.flatnonzero(self.parents == joint)]

    def rotation_order(self, joint: int) -> str:
        """The joint's rotation channel axes in file order, e.g. "ZXY" (empty when it has none)."""
        return "".join(c[0].upper() for c in self.channels[joint] if c.lower().endswith("rotation"))

    def to_dict(self) -> dict:
        """JSON-friendly form used on the wire (`get_motion`)."""
        return {
            "names": list(self.names),
            "parents": [int(p) for p in self.parents],
            "offsets": np.asarray(self.offsets, dtype=float).tolist(),
            "channels": [list(c) for c in self.channels],
        }


@dataclass
class Motion:
    """A motion clip: SMPL-22 joints (metres, Y-up, facing +Z at frame 0) plus its source animation."""

    joints: np.ndarray  # (T, 22, 3) float32 at `fps`
    fps: float
    source: str | None = None
    frame_range: tuple[int, int] = (0, 0)  # source frames, end exclusive
    source_fps: float = 0.0
    skeleton: SourceSkeleton | None = None
    local_rotations: np.ndarray | None = None  # (Ts, J, 4) float32, w,x,y,z per source frame
    root_translation: np.ndarray | None = None  # (Ts, 3) float32, source units (joint 0's translation)
    # (Ts, J, 3) float32 local translation of every joint (its OFFSET, or its position channels when a non-root
    # joint has them, e.g. Bandai's Hips carry the body's movement); None when only the root moves.
    joint_translations: np.ndarray | None = None
    mapping: dict | None = None  # preset, smpl_to_source, unmapped, unit_scale, up_axis
    take: str = ""  # which take of a file holding several (FBX animation stack, glTF animation); "" for BVH

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])

    @property
    def duration(self) -> float:
        return self.num_frames / self.fps if self.fps else 0.0
