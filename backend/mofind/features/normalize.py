"""Per-column angle statistics and the model's (length, 29) input window.

The official dataset normalises the full 41-column clip in float64, *then* crops or pads to the
model length with zero rows (so padding means "mean pose" only by accident of normalisation: a
padded row is exactly 0), *then* keeps the 29 used columns and casts to float32. ``motion_input``
follows that order so its output equals the official dataset item bit for bit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Iterable

import numpy as np

from .parts import COLUMNS41, USED_INDICES

MEAN_FILE = "Mean_angle.npy"
STD_FILE = "Std_angle.npy"
N_COLUMNS = len(COLUMNS41)

# Added to the std in the denominator, as upstream does (also guards a hand-made zero std).
_STD_EPS = 1e-8


def _as_angle_table(angles41, what: str) -> np.ndarray:
    arr = np.asarray(angles41, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != N_COLUMNS:
        raise ValueError(f"{what}: expected joint angles of shape (T, {N_COLUMNS}), got {arr.shape}")
    return arr


def _as_column_vector(values, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (N_COLUMNS,):
        raise ValueError(f"{what}: expected shape ({N_COLUMNS},), got {arr.shape}")
    if not np.isfinite(arr).all():
        raise ValueError(f"{what}: contains NaN or inf")
    return arr


@dataclass(frozen=True)
class AngleStats:
    """Mean and std of each of the 41 angle columns, in the official file layout."""

    mean: np.ndarray
    std: np.ndarray

    def __post_init__(self) -> None:
        object.__setattr__(self, "mean", _as_column_vector(self.mean, "AngleStats.mean"))
        object.__setattr__(self, "std", _as_column_vector(self.std, "AngleStats.std"))

    @classmethod
    def load(cls, directory: str | Path) -> "AngleStats":
        """Read ``Mean_angle.npy`` and ``Std_angle.npy`` from ``directory``."""
        directory = Path(directory)
        arrays = []
        for name in (MEAN_FILE, STD_FILE):
            path = directory / name
            if not path.is_file():
                raise FileNotFoundError(f"{path}: angle statistics file is missing")
            try:
                arrays.append(_as_column_vector(np.load(path, allow_pickle=False), str(path)))
            except ValueError as exc:
                raise ValueError(f"{path}: not a valid statistics array ({exc})") from exc
        return cls(*arrays)

    def save(self, directory: str | Path) -> None:
        """Write the two ``.npy`` files (float64, (41,)) into ``directory``, creating it if needed."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / MEAN_FILE, self.mean)
        np.save(directory / STD_FILE, self.std)

    @classmethod
    def fit(cls, clips: Iterable[np.ndarray]) -> "AngleStats":
        """Statistics over all frames of all clips (population std); a constant column gets std 1.

        Clips containing NaN are rejected rather than skipped, so a bad file is noticed.
        """
        tables = []
        for i, clip in enumerate(clips):
            table = _as_angle_table(clip, f"clip {i}")
            if np.isnan(table).any():
                raise ValueError(f"clip {i}: joint angles contain NaN")
            tables.append(table)
        if not tables or sum(len(t) for t in tables) == 0:
            raise ValueError("AngleStats.fit needs at least one frame")
        frames = np.concatenate(tables, axis=0)
        std = frames.std(axis=0)
        return cls(frames.mean(axis=0), np.where(std < 1e-8, 1.0, std))

    def normalize(self, angles41: np.ndarray) -> np.ndarray:
        """z-scores of a (T, 41) clip, float64."""
        return (_as_angle_table(angles41, "angles") - self.mean) / (self.std + _STD_EPS)


def motion_input(angles41: np.ndarray, stats: AngleStats, length: int, start: int = 0
                 ) -> tuple[np.ndarray, int]:
    """Model input for frames ``start .. start+length`` of a (T, 41) clip.

    Returns ``(x, valid_len)``: ``x`` is (length, 29) float32 — normalised, cropped or padded with
    zero rows, the 29 used columns — and ``valid_len`` the number of real (non-padded) frames.
    """
    if length <= 0:
        raise ValueError(f"length must be positive, got {length}")
    table = _as_angle_table(angles41, "angles")
    if not 0 <= start <= len(table):
        raise ValueError(f"start {start} is outside the clip (0..{len(table)})")
    z = stats.normalize(table[start:start + length])  # elementwise: same bits as whole-clip
    valid_len = len(z)
    if valid_len < length:
        z = np.concatenate([z, np.zeros((length - valid_len, N_COLUMNS))], axis=0)
    return z[:, list(USED_INDICES)].astype(np.float32), valid_len
