"""Training data: by-take stratified split, dataset items (windows, captions, mirroring), statistics."""

from __future__ import annotations

import random
import re
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from mofind.features.normalize import AngleStats, motion_input
from mofind.train.bandai import TEMPLATES
from mofind.train.captions import CaptionTemplates
from mofind.train.data import MotionTextDataset, Segment, fit_stats, labelled_folder_segments, split_by_take
from mofind.train.feature_cache import TakeFeatures

CONTENTS = ["walk", "wave-left-hand", "wave-right-hand", "raise-up-left-hand"]
STYLES = ["normal", "elderly"]


@pytest.fixture(scope="module")
def templates() -> CaptionTemplates:
    return CaptionTemplates.load(TEMPLATES)


def fake_take(frames: int, seed: int) -> TakeFeatures:
    """Distinct angle tables for the plain and the mirrored take, so the test can tell which one was served."""
    rng = np.random.default_rng(seed)
    return TakeFeatures(joints=np.zeros((frames, 22, 3), np.float32), angles41=rng.normal(size=(frames, 41)),
                        angles41_mirrored=rng.normal(size=(frames, 41)) + 5.0, fps=20.0)


def labelled(content: str, style: str, n: int) -> Segment:
    name = f"dataset-2_{content}_{style}_{n:03d}"
    return Segment(take_id=name, path=Path(f"/lib/{name}.bvh"), labels=(("content", content), ("style", style)))


def library(per_stratum: int = 20) -> list[Segment]:
    return [labelled(c, s, n) for c in CONTENTS for s in STYLES for n in range(per_stratum)]


def test_split_is_by_take_stratified_and_deterministic():
    segments = library(20)
    # a second segment of some takes (e.g. a cropped caption span) must follow its take
    segments += [Segment(take_id=s.take_id, path=s.path, start=10, end=50, labels=s.labels) for s in segments[::3]]
    random.Random(0).shuffle(segments)
    train, val = split_by_take(segments, 0.15)
    assert len(train) + len(val) == len(segments)
    train_takes, val_takes = {s.take_id for s in train}, {s.take_id for s in val}
    assert not train_takes & val_takes
    assert Counter(s.stratum for s in {s.take_id: s for s in val}.values()) == {
        f"content={c}|style={s}": 3 for c in CONTENTS for s in STYLES}  # round(20 * 0.15) per stratum
    again_train, again_val = split_by_take(list(reversed(segments)), 0.15)
    assert {s.take_id for s in again_val} == val_takes
    # adding takes to a stratum keeps the earlier validation takes where they were, bar the boundary
    _, bigger_val = split_by_take(segments + [labelled("walk", "normal", n) for n in range(20, 40)], 0.15)
    walk_normal = {s.take_id for s in val if s.stratum == "content=walk|style=normal"}
    assert len(walk_normal - {s.take_id for s in bigger_val}) <= 1


def test_held_out_takes_always_land_in_validation_and_count_towards_the_share():
    segments = library(20)
    _, plain_val = split_by_take(segments, 0.15)
    plain_ids = {v.take_id for v in plain_val}
    first_train_take = {}  # one training take of each stratum
    for s in segments:
        if s.take_id not in plain_ids:
            first_train_take.setdefault(s.stratum, s.take_id)
    forced = list(first_train_take.values())
    train, val = split_by_take(segments, 0.15, held_out=forced)
    assert set(forced) <= {s.take_id for s in val} and not set(forced) & {s.take_id for s in train}
    assert len(val) == len(plain_val)  # same share per stratum: a hash-picked take made room for each
    # more held-out takes than a stratum's share: all of them still go to validation
    many = [s.take_id for s in segments if s.stratum == "content=walk|style=normal"][:5]
    _, val = split_by_take(segments, 0.15, held_out=many)
    assert [s.take_id for s in val if s.stratum == "content=walk|style=normal"] == many


def test_small_strata_still_get_a_validation_take_and_singletons_stay_in_train():
    segments = [labelled("walk", "normal", n) for n in range(3)] + [labelled("wave-left-hand", "normal", 0)]
    train, val = split_by_take(segments, 0.15)
    assert [s.stratum for s in val] == ["content=walk|style=normal"]
    assert "dataset-2_wave-left-hand_normal_000" in {s.take_id for s in train}
    with pytest.raises(ValueError, match="val_fraction"):
        split_by_take(segments, 1.0)


def test_labelled_folder_reads_labels_from_names_and_reports_the_rest(tmp_path, templates):
    (tmp_path / "sub").mkdir()
    for name in ["dataset-2_walk_normal_001.bvh", "sub/dataset-2_wave-left-hand_elderly_002.BVH",
                 "dataset-2_swim_normal_001.bvh", "notes.txt", "random_take.bvh"]:
        (tmp_path / name).write_text("")
    segments, skipped = labelled_folder_segments(tmp_path, templates)
    assert {s.take_id: s.label_dict for s in segments} == {
        "dataset-2_walk_normal_001": {"content": "walk", "style": "normal"},
        "sub/dataset-2_wave-left-hand_elderly_002": {"content": "wave-left-hand", "style": "elderly"}}
    assert sorted(p.name for p in skipped) == ["dataset-2_swim_normal_001.bvh", "random_take.bvh"]
    with pytest.raises(FileNotFoundError, match="nowhere"):
        labelled_folder_segments(tmp_path / "nowhere", templates)


def test_eval_items_are_deterministic_first_windows_with_canonical_captions(templates):
    segment = labelled("wave-left-hand", "elderly", 1)
    take = fake_take(300, seed=1)
    stats = fit_stats([segment], {segment.path: take})
    ds = MotionTextDataset([segment], {segment.path: take}, stats, frames=224, templates=templates, train=False)
    item = ds[0]
    expected, valid = motion_input(take.angles41, stats, 224)
    assert item["x"].dtype == np.float32 and item["x"].shape == (224, 29)
    np.testing.assert_array_equal(item["x"], expected)
    assert item["valid_len"] == valid == 224
    assert item["caption"] == "an elderly person waves their left hand" == ds.captions()[0]
    assert item["take_id"] == segment.take_id


def test_training_items_mirror_motion_and_caption_together(templates):
    left, right = labelled("wave-left-hand", "normal", 1), labelled("raise-up-left-hand", "normal", 2)
    features = {left.path: fake_take(60, 1), right.path: fake_take(60, 2)}
    stats = fit_stats([left, right], features)
    mirrored = MotionTextDataset([left, right], features, stats, frames=64, templates=templates, mirror_prob=1.0)
    plain = MotionTextDataset([left, right], features, stats, frames=64, templates=templates, mirror_prob=0.0)
    for epoch in range(20):
        mirrored.set_epoch(epoch)
        plain.set_epoch(epoch)
        for i, segment in enumerate([left, right]):
            m, p = mirrored[i], plain[i]
            assert m["valid_len"] == p["valid_len"] == 60
            np.testing.assert_array_equal(m["x"], motion_input(features[segment.path].angles41_mirrored, stats, 64)[0])
            np.testing.assert_array_equal(p["x"], motion_input(features[segment.path].angles41, stats, 64)[0])
            assert re.search(r"\bright\b", m["caption"]) and not re.search(r"\bleft\b", m["caption"]), m["caption"]
            assert re.search(r"\bleft\b", p["caption"]) and not re.search(r"\bright\b", p["caption"]), p["caption"]


def test_free_text_captions_are_mirrored_with_the_motion():
    segment = Segment(take_id="000001", path=Path("/h/000001.npy"), captions=("a person kicks with the left leg",))
    features = {segment.path: fake_take(40, 3)}
    stats = fit_stats([segment], features)
    item = MotionTextDataset([segment], features, stats, frames=48, mirror_prob=1.0)[0]
    assert item["caption"] == "a person kicks with the right leg"
    # data that ships its own mirrored twin (HumanML3D "M" ids) is never mirrored again
    twin = Segment(take_id="M000001", path=segment.path, captions=segment.captions, mirrorable=False)
    assert MotionTextDataset([twin], features, stats, frames=48, mirror_prob=1.0)[0]["caption"] == segment.captions[0]


def test_random_windows_vary_by_epoch_but_repeat_for_a_resumed_run(templates):
    segment = labelled("walk", "normal", 1)
    take = fake_take(400, 4)
    stats = fit_stats([segment], {segment.path: take})
    ds = MotionTextDataset([segment], {segment.path: take}, stats, frames=64, templates=templates, mirror_prob=0.0, seed=7)
    windows = []
    for epoch in range(30):
        ds.set_epoch(epoch)
        item = ds[0]
        assert item["valid_len"] == 64
        starts = [s for s in range(400 - 64 + 1) if np.array_equal(item["x"], motion_input(take.angles41, stats, 64, s)[0])]
        assert len(starts) == 1
        windows.append((starts[0], item["caption"]))
    assert len({w for w, _ in windows}) > 10 and len({c for _, c in windows}) > 10
    resumed = MotionTextDataset([segment], {segment.path: take}, stats, frames=64, templates=templates, mirror_prob=0.0, seed=7)
    resumed.set_epoch(12)
    assert resumed[0]["caption"] == windows[12][1]


def test_segments_crop_their_take_and_short_or_unreadable_ones_are_dropped(templates):
    take = fake_take(120, 5)
    path = Path("/h/000002.npy")
    crop = Segment(take_id="000002", path=path, start=20, end=70, captions=("a person jumps",))
    short = Segment(take_id="000002", path=path, start=100, end=110, captions=("a person sits",))
    lost = Segment(take_id="000003", path=Path("/h/000003.npy"), captions=("a person runs",))
    stats = fit_stats([crop], {path: take})
    ds = MotionTextDataset([crop, short, lost], {path: take}, stats, frames=64, train=False, min_frames=16)
    assert len(ds) == 1 and ds.missing == [short, lost]
    np.testing.assert_array_equal(ds[0]["x"], motion_input(take.angles41[20:70], stats, 64)[0])
    assert ds[0]["valid_len"] == 50


def test_stats_count_the_mirrored_takes():
    segment = labelled("walk", "normal", 1)
    take = fake_take(50, 6)
    both = fit_stats([segment], {segment.path: take})
    expected = AngleStats.fit([take.angles41, take.angles41_mirrored])
    np.testing.assert_allclose(both.mean, expected.mean)
    np.testing.assert_allclose(both.std, expected.std)
    plain = fit_stats([segment], {segment.path: take}, mirrored=False)
    np.testing.assert_allclose(plain.mean, take.angles41.mean(axis=0))


def walking_take(tmp_path: Path, frames_s: float = 8.0) -> TakeFeatures:
    from fixtures.synthetic import write_action_bvh
    from mofind.features.angles import joint_angles41
    from mofind.features.mirror import mirror_joints
    from mofind.io import load_motion

    joints = load_motion(write_action_bvh(tmp_path / "walk.bvh", "bandai", "walk", seconds=frames_s, fps=30)).joints
    return TakeFeatures(joints=joints, angles41=joint_angles41(joints),
                        angles41_mirrored=joint_angles41(mirror_joints(joints)), fps=20.0)


def test_window_invariant_items_are_canonical_windows_some_of_them_short(tmp_path, templates):
    from mofind.features.window import window_angles41

    segment = labelled("walk", "normal", 1)
    take = walking_take(tmp_path)
    stats = fit_stats([segment], {segment.path: take}, window_invariant=True)
    ds = MotionTextDataset([segment], {segment.path: take}, stats, frames=64, templates=templates, mirror_prob=0.0,
                           window_invariant=True, short_crop_prob=0.5)
    lengths = []
    for epoch in range(40):
        ds.set_epoch(epoch)
        item = ds[0]
        lengths.append(item["valid_len"])
        # every served window starts at its own origin: the forward travel column begins at 0
        assert item["x"][0, 0] == pytest.approx((0.0 - stats.mean[3]) / (stats.std[3] + 1e-8), abs=1e-5)
    assert 64 in lengths and min(lengths) >= 16 and sum(n < 64 for n in lengths) >= 8
    evaluation = MotionTextDataset([segment], {segment.path: take}, stats, frames=64, templates=templates,
                                   train=False, window_invariant=True)
    expected, _ = motion_input(window_angles41(take.joints[:64]), stats, 64)
    np.testing.assert_array_equal(evaluation[0]["x"], expected)
