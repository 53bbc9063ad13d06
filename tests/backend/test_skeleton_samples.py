"""Every real BVH sample in ../shared converts to a sensible SMPL-22 body (skipped when ../shared is absent)."""

from __future__ import annotations

import numpy as np
import pytest

from mofind.io import forward_kinematics, read_bvh
from mofind.skeleton import SMPL22_INDEX as I
from mofind.skeleton import load_motion

pytestmark = pytest.mark.needs_shared


def test_every_sample_gives_a_plausible_body(bvh_samples):
    for path in bvh_samples:
        bvh = read_bvh(path)
        assert np.isfinite(forward_kinematics(bvh)).all(), path.name
        motion = load_motion(path)
        j = motion.joints
        info = motion.mapping
        assert 1.4 < info["height_m"] < 2.1, (path.name, info["height_m"])
        assert info["up_axis"] == "Y", path.name  # every sample is Y-up after FK (iClone rotates its Z-up rest)
        assert info["preset"] in ("bandai", "cmu_bvh", "iclone_cc"), path.name
        assert motion.fps == 20.0 and j.shape[1:] == (22, 3)
        expected = int(np.floor((bvh.num_frames - 1) / bvh.fps * 20.0 + 1e-6)) + 1
        assert j.shape[0] == expected, path.name
        feet = j[:, [I["left_ankle"], I["right_ankle"], I["left_foot"], I["right_foot"]], 1].min(axis=1)
        assert np.median(feet) < 0.05, (path.name, np.median(feet))  # a foot is on the floor most of the time
        standing = np.median(j[:, I["head"], 1])
        assert 1.1 < standing < 1.8, (path.name, standing)
        assert j[0, I["left_hip"], 0] > j[0, I["right_hip"], 0]  # left is +X when facing +Z
        toes = j[:, [I["left_foot"], I["right_foot"]], 2] - j[:, [I["left_ankle"], I["right_ankle"]], 2]
        assert np.median(toes) > 0.02, path.name  # toes point the way the body faces: sides are not mirrored


def test_units_follow_the_rig(bvh_samples):
    units = {p.name: load_motion(p).mapping["unit"] for p in bvh_samples}
    for name, unit in units.items():
        if name.startswith("dataset-2_") or name.startswith("cmu_iclone"):
            assert unit == "cm", name
        else:
            assert unit == "cmu", name  # 31-joint CMU skeleton in CMU units (0.0254/0.45 m)


def _sample(bvh_samples, stem):
    for path in bvh_samples:
        if path.stem.startswith(stem):
            return path
    pytest.skip(f"{stem}*.bvh not in the samples")


def test_raise_left_hand_raises_the_left_wrist(bvh_samples):
    j = load_motion(_sample(bvh_samples, "dataset-2_raise-up-left-hand")).joints
    left, right = j[:, I["left_wrist"], 1], j[:, I["right_wrist"], 1]
    assert left.max() > j[:, I["neck"], 1].max()  # above the shoulders
    assert left.max() - right.max() > 0.3
    assert j[np.argmax(left), I["left_wrist"], 0] > j[np.argmax(left), I["pelvis"], 0]  # on the body's left (+X)


def test_wave_right_hand_moves_the_right_wrist(bvh_samples):
    j = load_motion(_sample(bvh_samples, "dataset-2_wave-right-hand")).joints
    right, left = j[:, I["right_wrist"]], j[:, I["left_wrist"]]
    assert right[:, 1].max() - left[:, 1].max() > 0.3
    assert np.ptp(right[:, 0]) > 2 * np.ptp(left[:, 0])  # the waving wrist swings sideways


def test_walk_goes_forward(bvh_samples):
    j = load_motion(_sample(bvh_samples, "dataset-2_walk")).joints
    assert j[-1, 0, 2] > 3.0 and abs(j[-1, 0, 0]) < 0.3 * j[-1, 0, 2]


def test_iclone_and_cmu_rigs_look_like_the_bandai_one(bvh_samples):
    """The ~100-joint iClone rig and the 120 fps CMU skeleton give the same kind of body as Bandai."""
    bodies = {stem: load_motion(_sample(bvh_samples, stem)).joints
              for stem in ("dataset-2_walk", "cmu_iclone_002_01", "cmu_01_01", "neutral_01")}

    def proportions(j):
        def length(a, b):
            return np.median(np.linalg.norm(j[:, I[a]] - j[:, I[b]], axis=-1))
        leg = length("left_hip", "left_knee") + length("left_knee", "left_ankle")
        return np.array([length("pelvis", "neck") / leg, length("left_shoulder", "left_wrist") / leg,
                         length("left_hip", "right_hip") / leg])

    reference = proportions(bodies["dataset-2_walk"])
    for stem, j in bodies.items():
        np.testing.assert_allclose(proportions(j), reference, rtol=0.3, err_msg=stem)
