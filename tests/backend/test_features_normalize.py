"""AngleStats and motion_input: official dataset items and the normalise/crop/pad/select order."""

from __future__ import annotations

import numpy as np
import pytest

from mofind.features.angles import joint_angles41
from mofind.features.normalize import AngleStats, motion_input
from mofind.features.parts import USED_INDICES

REFERENCE_IDS = ["012314", "012314_first60", "012314_fwdrev", "M012314"]
# the order of upstream's all.txt for this fixture (only affects the last bits of the mean)
FIT_ORDER = ["012314", "M012314", "012314_first60", "012314_fwdrev"]
WINDOW = 224


def ramp_clip(frames: int, seed: int = 0) -> np.ndarray:
    """A (frames, 41) table with distinct, non-zero values per column."""
    rng = np.random.default_rng(seed)
    return rng.normal(loc=np.arange(41) * 3.0, scale=1.0 + np.arange(41) / 10, size=(frames, 41))


@pytest.mark.needs_shared
@pytest.mark.parametrize("clip", REFERENCE_IDS)
def test_motion_input_reproduces_official_dataset_item(reference_dir, clip):
    stats = AngleStats.load(reference_dir / "stats")
    official = np.load(reference_dir / "outputs" / f"motion_{clip}.npz")
    angles = joint_angles41(np.load(reference_dir / "inputs" / f"joints_{clip}.npy"))
    x, valid = motion_input(angles, stats, WINDOW)
    assert x.shape == (WINDOW, 29) and x.dtype == np.float32
    assert valid == int(official["m_length"])
    # a few float32 ulps: numpy's trigonometry rounds the last bits differently by instruction set (on an AMD
    # EPYC with AVX2, one of M012314's 6,496 values differs by 1.07e-6 at magnitude 1.67; 0 on an AVX-512 Xeon)
    np.testing.assert_allclose(x, official["x"], rtol=1e-6, atol=1e-6)


@pytest.mark.needs_shared
def test_fit_reproduces_official_stats(reference_dir):
    clips = [np.load(reference_dir / "angles" / f"angles41_{c}.npy") for c in FIT_ORDER]
    fitted = AngleStats.fit(clips)
    official = AngleStats.load(reference_dir / "stats")
    np.testing.assert_allclose(fitted.mean, official.mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(fitted.std, official.std, rtol=1e-12, atol=1e-12)


def test_fit_uses_population_std_and_replaces_constant_columns_by_one():
    a, b = ramp_clip(50, 1), ramp_clip(30, 2)
    a[:, 7] = b[:, 7] = 4.5  # a constant column
    stats = AngleStats.fit([a, b])
    frames = np.concatenate([a, b])
    np.testing.assert_allclose(stats.mean, frames.mean(axis=0))
    assert stats.std[7] == 1.0
    others = [c for c in range(41) if c != 7]
    expected = np.sqrt(((frames[:, others] - frames[:, others].mean(0)) ** 2).mean(0))
    np.testing.assert_allclose(stats.std[others], expected)


def test_save_load_round_trip_uses_official_file_names(tmp_path):
    stats = AngleStats.fit([ramp_clip(20)])
    stats.save(tmp_path / "stats")
    assert sorted(p.name for p in (tmp_path / "stats").iterdir()) == ["Mean_angle.npy", "Std_angle.npy"]
    loaded = AngleStats.load(tmp_path / "stats")
    np.testing.assert_array_equal(loaded.mean, stats.mean)
    np.testing.assert_array_equal(loaded.std, stats.std)
    assert np.load(tmp_path / "stats" / "Mean_angle.npy").shape == (41,)


def test_short_clip_is_padded_with_zero_rows_after_normalisation():
    clip = ramp_clip(10)
    stats = AngleStats(mean=np.full(41, 1.0), std=np.full(41, 2.0))
    x, valid = motion_input(clip, stats, 16)
    assert valid == 10 and x.shape == (16, 29)
    expected = ((clip - 1.0) / (2.0 + 1e-8))[:, list(USED_INDICES)]
    np.testing.assert_allclose(x[:10], expected, rtol=1e-6)
    assert not x[10:].any()  # zero, not the (normalised) mean pose


def test_long_clip_is_cropped_at_start():
    clip = ramp_clip(40)
    stats = AngleStats.fit([clip])
    x0, v0 = motion_input(clip, stats, 16)
    x5, v5 = motion_input(clip, stats, 16, start=5)
    assert v0 == v5 == 16
    np.testing.assert_array_equal(x5[:11], x0[5:])
    tail, vt = motion_input(clip, stats, 16, start=30)  # runs past the end: padded
    assert vt == 10 and not tail[10:].any()
    np.testing.assert_array_equal(tail[:10], motion_input(clip, stats, 40)[0][30:])


def test_bad_input_raises_clear_errors(tmp_path):
    stats = AngleStats.fit([ramp_clip(5)])
    with pytest.raises(ValueError, match=r"\(T, 41\)"):
        motion_input(np.zeros((10, 29)), stats, 16)
    with pytest.raises(ValueError, match="length"):
        motion_input(ramp_clip(5), stats, 0)
    with pytest.raises(ValueError, match="start"):
        motion_input(ramp_clip(5), stats, 4, start=9)
    with pytest.raises(ValueError, match="shape"):
        AngleStats(mean=np.zeros(40), std=np.ones(41))
    with pytest.raises(FileNotFoundError, match="Mean_angle.npy"):
        AngleStats.load(tmp_path)
    nan_clip = ramp_clip(5)
    nan_clip[2, 3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        AngleStats.fit([nan_clip])
