"""Parse every take once: SMPL-22 joints and the 41 joint angles (plus their mirror), cached on disk.

Reading a BVH, mapping it to SMPL-22 and computing the angles costs far more than a training step, so
each file is processed once, in parallel, and stored as `.npz` under `cache_dir()/features`, keyed by
the file's content hash and the feature pipeline version: renaming or moving a take reuses its entry,
editing it (or changing the pipeline) recomputes it.
"""

from __future__ import annotations

import os
import tempfile
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mofind import paths
from mofind.io.files import file_sha256

# Bump when joints/angles would come out differently for the same file (reader, mapping, angle code).
PIPELINE_VERSION = "1"


@dataclass(frozen=True)
class TakeFeatures:
    """What training needs from one motion file, at `fps`."""

    joints: np.ndarray  # (T, 22, 3) float32, metres, Y-up, facing +Z
    angles41: np.ndarray  # (T, 41) float64
    angles41_mirrored: np.ndarray  # (T, 41) float64: angles of the left-right mirrored joints
    fps: float

    @property
    def num_frames(self) -> int:
        return int(self.joints.shape[0])


def content_hash(path: str | Path) -> str:
    """sha256 of the file's bytes: the cache key (names and folders do not matter)."""
    return file_sha256(path)


def compute_features(path: str | Path, fps: float = 20.0) -> TakeFeatures:
    """Load a motion file through `mofind.io.load_motion` and compute its angles (and mirrored angles)."""
    from mofind.features.angles import joint_angles41
    from mofind.features.mirror import mirror_joints
    from mofind.io import load_motion

    joints = np.asarray(load_motion(path, fps=fps).joints, dtype=np.float32)
    return TakeFeatures(
        joints=joints,
        angles41=joint_angles41(joints),
        angles41_mirrored=joint_angles41(np.asarray(mirror_joints(joints), dtype=np.float32)),
        fps=float(fps),
    )


class FeatureCache:
    """Content-addressed store of `TakeFeatures` (one `.npz` per file version)."""

    def __init__(self, root: str | Path | None = None, fps: float = 20.0):
        self.root = Path(root) if root is not None else paths.cache_dir() / "features"
        self.fps = float(fps)

    def entry_path(self, digest: str) -> Path:
        return self.root / digest[:2] / f"{digest}-p{PIPELINE_VERSION}-{self.fps:g}fps.npz"

    def get(self, path: str | Path) -> TakeFeatures:
        """Features of one file, computed and stored on first use."""
        entry = self.entry_path(content_hash(path))
        if not entry.is_file():
            _store(entry, compute_features(path, self.fps))
        return _read(entry)

    def build(self, files: list[str | Path], workers: int = 2, progress=None
              ) -> tuple[dict[Path, TakeFeatures], dict[Path, str]]:
        """Features of many files; missing entries are computed by `workers` processes.

        Returns `({path: TakeFeatures}, {path: error message})`: a file that cannot be read (the
        `MotionIOError` message names it) is reported, not fatal, so one bad take does not stop a library-sized job.
        `progress(done, total)` is called as entries are computed.
        """
        files = [Path(f) for f in files]
        entries = {path: self.entry_path(content_hash(path)) for path in files}
        todo = [(str(path), str(entry), self.fps) for path, entry in entries.items() if not entry.is_file()]
        failures: dict[Path, str] = {}
        if len(todo) > 1 and workers > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                self._collect(pool.map(_compute_and_store, todo, chunksize=8), failures, progress, len(todo))
        else:
            self._collect(map(_compute_and_store, todo), failures, progress, len(todo))
        features = {path: _read(entry) for path, entry in entries.items() if path not in failures}
        return features, failures

    @staticmethod
    def _collect(results, failures: dict, progress, total: int) -> None:
        for done, (path, error) in enumerate(results, 1):
            if error is not None:
                failures[Path(path)] = error
            if progress is not None:
                progress(done, total)


def _compute_and_store(job: tuple[str, str, float]) -> tuple[str, str | None]:
    """Worker: compute one file's features and store them; returns the error instead of raising it."""
    path, entry, fps = job
    try:
        _store(Path(entry), compute_features(path, fps))
    except ValueError as exc:  # MotionIOError and the angle code's input errors are ValueErrors
        return path, str(exc)  # a string always crosses the process boundary (some exceptions don't pickle)
    return path, None


def _store(entry: Path, features: TakeFeatures) -> None:
    """Write atomically (temp file + rename) so parallel workers and crashes never leave half an entry."""
    entry.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=entry.parent, suffix=".tmp.npz")
    os.close(handle)
    try:
        np.savez(tmp, joints=features.joints, angles41=features.angles41,
                 angles41_mirrored=features.angles41_mirrored, fps=np.float64(features.fps))
        os.replace(tmp, entry)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _read(entry: Path) -> TakeFeatures:
    with np.load(entry) as data:
        return TakeFeatures(joints=data["joints"], angles41=data["angles41"],
                            angles41_mirrored=data["angles41_mirrored"], fps=float(data["fps"]))
