"""Training data from real files: the feature cache, labelled BVH folders, HumanML3D-layout folders."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from fixtures.synthetic import write_action_bvh
from mofind.features.angles import joint_angles41
from mofind.features.mirror import mirror_joints
from mofind.io import load_motion
from mofind.train.captions import CaptionTemplates
from mofind.train.data import humanml3d_segments, kitml_segments, prepare_labelled_folder, prepare_text_folder
from mofind.train.feature_cache import FeatureCache, content_hash

STUDIO_TEMPLATES = {
    "pattern": r"(?P<action>[a-z]+)_(?P<side>left|right)_take\d+",
    "phrases": {
        "action": {"wave": {"verb": ["waves the {side_word} hand", "waves with the {side_word} arm"]},
                   "raise": {"verb": ["raises the {side_word} hand", "lifts the {side_word} arm"]}},
        "side": {"left": {"word": ["left"]}, "right": {"word": ["right"]}},
    },
    "templates": ["a person {action_verb}"],
}
SYNTHETIC = {"wave_left": ("wave", "left"), "wave_right": ("wave", "right"),
             "raise_left": ("raise", "left"), "raise_right": ("raise", "right")}


@pytest.fixture(scope="module")
def studio_folder(tmp_path_factory) -> Path:
    """A studio library named by its own convention: {action}_{side}_take{N}.bvh (procedural Bandai rigs)."""
    folder = tmp_path_factory.mktemp("studio")
    for n in range(3):
        for action, (verb, side) in SYNTHETIC.items():
            write_action_bvh(folder / f"{verb}_{side}_take{n}.bvh", "bandai", action, seconds=1.5, seed=n)
    (folder / "broken_left_take0.bvh").write_text("HIERARCHY\nROOT Hips\n{\n")  # name ok? no: 'broken' unknown
    return folder


def test_feature_cache_parses_each_file_once_keyed_by_content(tmp_path):
    take = write_action_bvh(tmp_path / "a.bvh", "bandai", "wave_left", seconds=1.0)
    cache = FeatureCache(tmp_path / "cache")
    features, failed = cache.build([take], workers=1)
    assert not failed
    joints = load_motion(take).joints
    got = features[take]
    np.testing.assert_array_equal(got.joints, joints)
    np.testing.assert_array_equal(got.angles41, joint_angles41(joints))
    np.testing.assert_array_equal(got.angles41_mirrored, joint_angles41(mirror_joints(joints)))
    assert got.fps == 20.0 and got.num_frames == 20
    entry = cache.entry_path(content_hash(take))
    assert entry.is_file() and len(list((tmp_path / "cache").rglob("*.npz"))) == 1
    # a renamed copy reuses the entry; an edited file gets a new one
    renamed = tmp_path / "elsewhere" / "b.bvh"
    renamed.parent.mkdir()
    shutil.copy(take, renamed)
    mtime = entry.stat().st_mtime_ns
    np.testing.assert_array_equal(cache.get(renamed).angles41, got.angles41)
    assert entry.stat().st_mtime_ns == mtime and len(list((tmp_path / "cache").rglob("*.npz"))) == 1
    write_action_bvh(renamed, "bandai", "wave_right", seconds=1.0)
    assert not np.array_equal(cache.get(renamed).angles41, got.angles41)
    assert len(list((tmp_path / "cache").rglob("*.npz"))) == 2


def test_parallel_build_reports_unreadable_files_by_name(tmp_path):
    good = [write_action_bvh(tmp_path / f"t{i}.bvh", "bandai", "walk", seconds=1.0, seed=i) for i in range(3)]
    bad = tmp_path / "truncated.bvh"
    bad.write_text(good[0].read_text()[:300])
    features, failed = FeatureCache(tmp_path / "cache").build(good + [bad], workers=2)
    assert set(features) == set(good)
    assert list(failed) == [bad] and "truncated.bvh" in failed[bad]


def test_labelled_studio_folder_trains_on_its_own_naming_convention(tmp_path, studio_folder):
    templates = CaptionTemplates.from_dict(STUDIO_TEMPLATES, source="studio.json")
    data = prepare_labelled_folder(studio_folder, templates, frames=32, val_fraction=0.34, workers=1,
                                   cache=FeatureCache(tmp_path / "cache"))
    assert [p.name for p in data.skipped] == ["broken_left_take0.bvh"]
    assert len(data.train) == 8 and len(data.val) == 4  # one take of each of the 4 label combinations
    assert {s.label_dict["action"] + s.label_dict["side"] for s in data.val.segments} == {
        "waveleft", "waveright", "raiseleft", "raiseright"}
    assert sorted(data.val.captions()) == ["a person raises the left hand", "a person raises the right hand",
                                           "a person waves the left hand", "a person waves the right hand"]
    item = data.train[0]
    assert item["x"].shape == (32, 29) and item["x"].dtype == np.float32 and item["valid_len"] == 30
    assert np.isfinite(item["x"]).all()
    # the model sees the mirror of a left-hand take as a right-hand take, caption and group alike
    data.train.mirror_prob = 1.0
    for i, segment in enumerate(data.train.segments):
        item = data.train[i]
        other = "right" if segment.label_dict["side"] == "left" else "left"
        assert f" {other} " in item["caption"] and item["group"] == f"action={segment.label_dict['action']}|side={other}"


def test_mirrored_left_wave_looks_like_a_right_wave(tmp_path):
    """The mirrored angle table of a left-hand wave is close to a real right-hand wave, far from the left one."""
    cache = FeatureCache(tmp_path / "cache")
    left = cache.get(write_action_bvh(tmp_path / "l.bvh", "bandai", "wave_left", seconds=1.5))
    right = cache.get(write_action_bvh(tmp_path / "r.bvh", "bandai", "wave_right", seconds=1.5))
    arm_columns = list(range(31, 39))  # shoulder and elbow angles of both arms
    to_right = np.abs(left.angles41_mirrored[:, arm_columns] - right.angles41[:, arm_columns]).mean()
    to_left = np.abs(left.angles41[:, arm_columns] - right.angles41[:, arm_columns]).mean()
    assert to_right < 0.2 * to_left


def write_text_folder(root: Path, kit: bool = False) -> Path:
    """A HumanML3D-layout folder from procedural takes (`kit`: 21 KIT joints at 12.5 fps in millimetres)."""
    (root / "new_joints").mkdir(parents=True)
    (root / "texts").mkdir()
    takes = {"000001": "walk", "000002": "wave_left", "M000002": "wave_right", "000003": "raise_both"}
    for motion_id, action in takes.items():
        joints = load_motion(write_action_bvh(root / f"{motion_id}.bvh", "bandai", action, seconds=4.0)).joints
        if kit:
            joints = smpl_to_kit(joints)[np.arange(0, len(joints), 20 / 12.5).astype(int)] * 1000.0
        np.save(root / "new_joints" / f"{motion_id}.npy", joints.astype(np.float32))
        (root / f"{motion_id}.bvh").unlink()
    (root / "texts" / "000001.txt").write_text("a person walks forward.#a/DET#0.0#0.0\nsomeone walks#x#0.0#0.0\n"
                                               "the person stops#x#2.0#3.5\n")
    (root / "texts" / "000002.txt").write_text("a person waves the left hand#x#0.0#0.0\n")
    (root / "texts" / "M000002.txt").write_text("a person waves the right hand#x#0.0#0.0\n")
    (root / "texts" / "000003.txt").write_text("a person raises both arms#x#nan#nan\n")
    (root / "train.txt").write_text("000001\n000002\nM000002\nmissing_id\n")
    (root / "val.txt").write_text("000003\n")
    return root


def smpl_to_kit(joints: np.ndarray) -> np.ndarray:
    from mofind.io.kitml import KIT_JOINT_NAMES, SMPL_FROM_KIT
    from mofind.skeleton.smpl import SMPL22_INDEX

    kit_from_smpl = {kit: smpl for smpl, kit in SMPL_FROM_KIT.items()}
    extra = {"root": "pelvis", "upper_neck": "neck", "left_ankle_2": "left_ankle", "right_ankle_2": "right_ankle"}
    return np.stack([joints[:, SMPL22_INDEX[kit_from_smpl.get(name) or extra[name]]] for name in KIT_JOINT_NAMES], 1)


def test_humanml3d_folder_gives_whole_and_cropped_caption_segments(tmp_path):
    root = write_text_folder(tmp_path / "h3d")
    segments = humanml3d_segments(root, "train")
    assert [(s.take_id, s.start, s.end, s.captions, s.mirrorable) for s in segments] == [
        ("000001", 0, None, ("a person walks forward.", "someone walks"), True),
        ("000001", 40, 70, ("the person stops",), True),
        ("000002", 0, None, ("a person waves the left hand",), False),
        ("M000002", 0, None, ("a person waves the right hand",), False),
    ]
    data = prepare_text_folder(root, frames=64, workers=1, cache=FeatureCache(tmp_path / "cache"), min_frames=16)
    assert len(data.train) == 4 and data.val.captions() == ["a person raises both arms"]
    assert data.val[0]["valid_len"] == 64 and data.val[0]["x"].shape == (64, 29)
    assert data.train.segments[1].end - data.train.segments[1].start == 30
    # upstream's 40-frame minimum drops the 1.5 s "stops" span by default
    default = prepare_text_folder(root, frames=64, workers=1, cache=FeatureCache(tmp_path / "cache"))
    assert len(default.train) == 3


def test_kitml_folder_is_read_at_the_model_frame_rate(tmp_path):
    root = write_text_folder(tmp_path / "kit", kit=True)
    assert np.load(root / "new_joints" / "000001.npy").shape == (50, 21, 3)
    assert [s.take_id for s in kitml_segments(root, "val")] == ["000003"]
    data = prepare_text_folder(root, frames=96, kind="kitml", workers=1, cache=FeatureCache(tmp_path / "cache"))
    assert data.val[0]["valid_len"] == 79  # 50 frames at 12.5 fps span 3.92 s = 78.4 frame steps at 20 fps
    with pytest.raises(ValueError, match="kind must be one of"):
        prepare_text_folder(root, frames=96, kind="amass")


def test_humanml3d_sample_from_shared(shared, tmp_path):
    root = shared / "data" / "humanml3d-sample"
    segments = humanml3d_segments(root, "train")
    assert [s.take_id for s in segments] == ["012314"]
    assert segments[0].captions[0].startswith("a person appears to be playing tennis")
    assert len(segments[0].captions) == 3
    cache = FeatureCache(tmp_path / "cache")
    take = cache.get(segments[0].path)
    assert take.num_frames == np.load(segments[0].path).shape[0]
