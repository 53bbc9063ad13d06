"""HumanML3D folder reader: `new_joints/ID.npy` (T, 22, 3) at 20 fps, `texts/ID.txt`, split id lists.

The layout is read as distributed (users bring their own copy; it cannot be shipped):

    root/new_joints/000021.npy     (T, 22, 3) float32, SMPL-22 order, metres, Y-up, faces +Z at frame 0
    root/texts/000021.txt          one caption a line: `caption#word/POS word/POS ...#start#end`
    root/train.txt val.txt test.txt  one id a line

`start`/`end` are seconds into the clip; 0.0/0.0 means the caption covers the whole clip.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import MotionFormatError
from .motion import Motion

HUMANML3D_FPS = 20.0


@dataclass(frozen=True)
class Caption:
    text: str
    tokens: tuple[str, ...]  # "word/POS" items as written (empty when the file has no tags)
    start: float  # seconds; 0.0 with end 0.0 = whole clip
    end: float

    @property
    def whole_clip(self) -> bool:
        return self.start == 0.0 and self.end == 0.0


def read_joints_npy(path: str | Path, num_joints: int = 22) -> np.ndarray:
    """(T, num_joints, 3) float32 from a `.npy` file; a clear error for anything else."""
    path = Path(path)
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError) as exc:
        raise MotionFormatError(f"cannot read joints array: {exc}", path) from exc
    if data.ndim != 3 or data.shape[1:] != (num_joints, 3):
        raise MotionFormatError(f"expected joints of shape (T, {num_joints}, 3), found {data.shape}", path)
    if data.shape[0] == 0:
        raise MotionFormatError("joints array holds no frames", path)
    if not np.isfinite(data).all():
        raise MotionFormatError("joints array contains nan/inf", path)
    return data.astype(np.float32, copy=False)


def read_captions(path: str | Path) -> list[Caption]:
    """Parse a HumanML3D/KIT-ML `texts/ID.txt` file."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise MotionFormatError(f"cannot read captions: {exc.strerror or exc}", path) from exc
    captions = []
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.strip().split("#")
        if len(parts) < 4:
            raise MotionFormatError("caption line needs 'caption#tokens#start#end'", path, lineno)
        text, tokens, start, end = "#".join(parts[:-3]), parts[-3], parts[-2], parts[-1]
        try:
            start_s, end_s = float(start or 0.0), float(end or 0.0)
        except ValueError:
            raise MotionFormatError(f"non-numeric caption time {start!r}/{end!r}", path, lineno) from None
        if np.isnan(start_s) or np.isnan(end_s):
            start_s = end_s = 0.0  # HumanML3D writes nan for "whole clip" in a few files
        captions.append(Caption(text.strip(), tuple(tokens.split()), start_s, end_s))
    return captions


class MotionTextFolder:
    """A HumanML3D-layout folder. Subclasses change the joint set (`_to_smpl22`) and frame rate."""

    fps = HUMANML3D_FPS
    num_source_joints = 22

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not (self.root / "new_joints").is_dir():
            raise MotionFormatError("not a HumanML3D-style folder: new_joints/ is missing", self.root)

    def ids(self, split: str | None = None) -> list[str]:
        """Ids listed in `{split}.txt`, or every `new_joints/*.npy` when split is None."""
        if split is None:
            return sorted(p.stem for p in (self.root / "new_joints").glob("*.npy"))
        path = self.root / f"{split}.txt"
        if not path.is_file():
            raise MotionFormatError(f"split file {split}.txt is missing", path)
        return [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]

    def joints_path(self, motion_id: str) -> Path:
        return self.root / "new_joints" / f"{motion_id}.npy"

    def joints(self, motion_id: str) -> np.ndarray:
        """(T, 22, 3) float32 SMPL-22 joints at `self.fps`."""
        return self._to_smpl22(read_joints_npy(self.joints_path(motion_id), self.num_source_joints))

    def captions(self, motion_id: str) -> list[Caption]:
        return read_captions(self.root / "texts" / f"{motion_id}.txt")

    def motion(self, motion_id: str, fps: float | None = None) -> Motion:
        """A `Motion` for one id, resampled to `fps` (default: the dataset's own rate)."""
        from mofind.skeleton.convert import resample

        fps = float(fps or self.fps)
        joints = self.joints(motion_id)
        return Motion(joints=resample(joints, self.fps, fps).astype(np.float32), fps=fps,
                      source=str(self.joints_path(motion_id)), frame_range=(0, int(joints.shape[0])),
                      source_fps=self.fps)

    def _to_smpl22(self, joints: np.ndarray) -> np.ndarray:
        return joints


class HumanML3DFolder(MotionTextFolder):
    """HumanML3D: joints are already SMPL-22 in metres at 20 fps."""
