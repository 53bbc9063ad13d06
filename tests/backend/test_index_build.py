"""Bulk indexing of real BVH files (written by the synthetic fixture) with the real encoder.

The encoder is the shipped model when model_weights/ holds one, else the random compact model; the
assertions only rely on what must hold for any model (windowing, bookkeeping, failures, resumption,
and that a window's own patches find that window).
"""

from __future__ import annotations

import io
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from fixtures.synthetic import make_action, write_action_bvh, write_action_library
from mofind.index.build import build_index
from mofind.index.encoders import weights_present
from mofind.index.manifest import IndexSpec, Manifest
from mofind.index.search import Searcher
from mofind.index.similar import similar
from mofind.index.store import IndexReader, clip_id_for

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def encoder():
    from mofind.model.inference import Encoder

    return Encoder.load() if weights_present() else Encoder.random("compact")


@pytest.fixture()
def library(tmp_path):
    folder = tmp_path / "mocap"
    files = write_action_library(folder / "bandai", kinds=("bandai",), seconds=3.0)
    files += write_action_library(folder / "cmu", kinds=("cmu",), actions=("walk", "wave_left"), seconds=2.0)
    return folder, files


def corrupt_files(folder: Path) -> list[Path]:
    good = next(folder.rglob("*.bvh")).read_text()
    truncated = folder / "broken" / "truncated.bvh"
    truncated.parent.mkdir(parents=True)
    truncated.write_text(good[: len(good) // 2].rsplit("\n", 3)[0] + "\n1.0 2.0 abc\n")
    garbage = folder / "broken" / "garbage.bvh"
    garbage.write_bytes(b"\x00\x01 this is not a bvh file")
    return [truncated, garbage]


def test_library_with_corrupt_files_is_indexed_and_failures_reported(tmp_path, library, encoder):
    folder, files = library
    broken = corrupt_files(folder)
    report = build_index([folder], tmp_path / "index", encoder, workers=1, commit_every=4)
    assert report.indexed == len(files)
    assert sorted(p for p, _ in report.failed) == sorted(str(p.resolve()) for p in broken)
    for path, error in report.failed:
        assert path in error  # every reason names its file
    reader = IndexReader.open(tmp_path / "index", IndexSpec.from_encoder(encoder))
    assert len(reader) == len(files)
    assert {r.source for r in reader.clips()} == {str(f.resolve()) for f in files}
    for record in reader.clips():
        refs = reader.windows(record.clip_id)
        assert refs[0].source_start == record.frame_range[0]
        assert refs[-1].source_end == record.frame_range[1]  # the whole take is covered
        assert record.labels and record.skeleton in ("bandai", "cmu_bvh")
        png = reader.thumbnail(record.clip_id)
        from PIL import Image

        assert Image.open(io.BytesIO(png)).size == (256, 64)


def test_rerun_skips_unchanged_files_and_updates_changed_ones(tmp_path, library, encoder):
    folder, files = library
    index = tmp_path / "index"
    build_index([folder], index, encoder, workers=0)
    again = build_index([folder], index, encoder, workers=0)
    assert (again.indexed, again.skipped, again.failed) == (0, len(files), [])
    changed = files[0]
    before = IndexReader.open(index).clip(clip_id_for(changed))
    write_action_bvh(changed, "bandai", "walk", seconds=5.0, seed=7)  # new content, same path
    touched = files[1]
    os.utime(touched, ns=(time.time_ns(), time.time_ns()))  # new mtime, same content
    third = build_index([folder], index, encoder, workers=0)
    assert (third.indexed, third.skipped) == (1, len(files) - 1)
    reader = IndexReader.open(index)
    after = reader.clip(clip_id_for(changed))
    assert len(reader) == len(files)
    assert after.content_hash != before.content_hash
    assert after.frame_range[1] == 150 and after.duration == pytest.approx(5.0)


def write_long_take(path: Path) -> Path:
    """A 20-second take of six different actions in a row (no two windows look alike)."""
    from mofind.io.bvh import write_bvh

    actions = ("idle", "wave_left", "walk", "raise_both", "turn_right", "wave_right")
    clips = [make_action("bandai", action, seconds=20.0 / len(actions), seed=i) for i, action in enumerate(actions)]
    rotations = np.concatenate([c.local_rotations for c in clips])
    joints = np.concatenate([c.joint_translations for c in clips])
    return write_bvh(path, clips[0].skeleton, clips[0].fps, rotations, joints[:, 0], joint_translations=joints)


def test_a_window_of_a_long_take_is_found_with_its_source_frames(tmp_path, encoder):
    (tmp_path / "takes").mkdir()
    take = write_long_take(tmp_path / "takes" / "long_take.bvh")
    write_action_bvh(tmp_path / "takes" / "wave.bvh", "bandai", "wave_left", seconds=4.0)
    index = tmp_path / "index"
    build_index([tmp_path / "takes"], index, encoder, workers=0)
    reader = IndexReader.open(index)
    spec = reader.spec
    refs = reader.windows(clip_id_for(take))
    frames_at_20 = 400
    assert len(refs) == 1 + round((frames_at_20 - spec.window_frames) / spec.stride_frames)
    for ref in refs:  # 30 fps source, 20 fps model: source frames are 1.5x model frames
        assert ref.source_start == int(ref.start * 1.5)
        assert ref.source_end - ref.source_start in (144, 145)
    # encode one window straight from the file and use a few of its patches as the query
    from mofind.io import load_motion

    joints = load_motion(take, fps=spec.fps).joints
    target = refs[3]
    patches, valid = encoder.encode_motions([joints[target.start:target.start + spec.window_frames]])[0]
    query = patches[valid]  # the window's own patches: MaxSim ~1 for it, less for its overlapping neighbours
    hits = Searcher(reader).search_tokens([query], k=2, mode="exact")[0]
    assert hits[0].clip_id == clip_id_for(take)
    assert (hits[0].start_frame, hits[0].end_frame) == (target.source_start, target.source_end)


def test_similar_finds_an_identical_copy_first(tmp_path, library, encoder):
    folder, files = library
    copy = folder / "copies" / "same_as_wave.bvh"
    copy.parent.mkdir()
    original = next(f for f in files if f.name == "bandai_wave_left.bvh")
    shutil.copy(original, copy)
    index = tmp_path / "index"
    build_index([folder], index, encoder, workers=0)
    searcher = Searcher(IndexReader.open(index))
    hits = similar(searcher, clip_id_for(original), k=3)
    assert hits[0].clip_id == clip_id_for(copy)
    assert hits[0].score > 0.97
    assert all(h.clip_id != clip_id_for(original) for h in hits)
    assert hits[0].score >= hits[1].score


def test_cancel_commits_finished_clips_and_a_rerun_completes(tmp_path, library, encoder):
    folder, files = library
    cancel = threading.Event()

    def stop_after_three(report):
        if report.indexed >= 3:
            cancel.set()

    index = tmp_path / "index"
    report = build_index([folder], index, encoder, workers=0, commit_every=1, on_progress=stop_after_three,
                         cancel=cancel)
    assert report.cancelled
    partial = IndexReader.open(index)
    assert 3 <= len(partial) < len(files)
    rest = build_index([folder], index, encoder, workers=0)
    assert rest.skipped == len(partial) and rest.indexed == len(files) - len(partial)
    assert len(IndexReader.open(index)) == len(files)


def test_missing_path_is_reported(tmp_path, encoder):
    report = build_index([tmp_path / "nowhere"], tmp_path / "index", encoder, workers=0)
    assert report.failed == [(str(tmp_path / "nowhere"), "no such file or folder")]
    assert report.indexed == 0


def _content(index: Path) -> dict:
    reader = IndexReader.open(index)
    out = {}
    for record in reader.clips():
        windows = [(ref.start, ref.source_start, ref.source_end, reader.window_patches(ref))
                   for ref in reader.windows(record.clip_id)]
        out[record.source] = (record.content_hash, record.frame_range, windows)
    return out


@pytest.mark.slow
def test_sigkilled_indexer_leaves_an_index_that_opens_and_resumes_to_the_same_content(tmp_path, encoder):
    folder = tmp_path / "mocap"
    for seed in range(6):
        write_action_library(folder / f"set{seed}", kinds=("bandai",), seconds=2.0, seed=seed)
    total = len(list(folder.rglob("*.bvh")))
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    env = {**os.environ, "MOFIND_TEST_RANDOM_MODEL": "1", "PYTHONPATH": str(REPO / "backend")}
    command = [sys.executable, "-m", "mofind.cli", "index", str(folder), "--index", str(killed), "--workers", "0",
               "--commit-every", "2", "--quiet"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and process.poll() is None:
            try:
                if Manifest.read(killed).generation >= 3:  # a few commits are in: kill it mid-run
                    break
            except Exception:  # noqa: BLE001 - the manifest does not exist yet
                pass
            time.sleep(0.005)
        assert process.poll() is None, "the indexer finished before it could be killed; enlarge the library"
        process.send_signal(signal.SIGKILL)
        process.wait(30)
    finally:
        if process.poll() is None:
            process.kill()
    partial = IndexReader.open(killed)  # opens: the last commit is intact
    assert 0 < len(partial) < total
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, timeout=300)
    build_index([folder], reference, encoder, workers=0)
    resumed, expected = _content(killed), _content(reference)
    assert resumed.keys() == expected.keys() and len(resumed) == total
    for source, (content_hash, frame_range, windows) in expected.items():
        got_hash, got_range, got_windows = resumed[source]
        assert (got_hash, got_range) == (content_hash, frame_range)
        assert [w[:3] for w in got_windows] == [w[:3] for w in windows]
        for (_, _, _, (patches, valid)), (_, _, _, (want, want_valid)) in zip(got_windows, windows):
            np.testing.assert_array_equal(valid, want_valid)
            a, b = patches[valid], want[valid]
            cosine = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
            assert cosine.min() > 0.99  # the same codes, up to float noise of a different batch composition


def test_humanml3d_folder_indexes_joint_files_only(tmp_path, shared, encoder):
    sample = shared / "data" / "humanml3d-sample"
    if not (sample / "new_joints").is_dir():
        pytest.skip(f"{sample} has no new_joints/")
    report = build_index([sample], tmp_path / "index", encoder, workers=0)
    assert (report.indexed, report.failed) == (1, [])  # new_joint_vecs/, Mean.npy, Std.npy are not motions
    record = IndexReader.open(tmp_path / "index").clips()[0]
    frames = np.load(sample / "new_joints" / "012314.npy").shape[0]
    assert record.source.endswith("new_joints/012314.npy")
    assert (record.format, record.skeleton, record.source_fps) == ("humanml3d", "smpl", 20.0)
    assert tuple(record.frame_range) == (0, frames)


def test_discovery_skips_humanml3d_mirrors(tmp_path):
    from mofind.index.discover import discover

    joints = tmp_path / "HumanML3D" / "new_joints"
    vecs = tmp_path / "HumanML3D" / "new_joint_vecs"
    joints.mkdir(parents=True)
    vecs.mkdir()
    for name in ("000001.npy", "M000001.npy", "M000002.npy"):
        np.save(joints / name, np.zeros((4, 22, 3), np.float32))
    np.save(vecs / "000001.npy", np.zeros((4, 263), np.float32))
    (tmp_path / "notes.txt").write_text("not a motion")
    found = discover([tmp_path])
    # M000001 mirrors 000001 and is skipped; M000002 has no original beside it and is kept
    assert [p.name for p in found.files] == ["000001.npy", "M000002.npy"]
    assert found.missing == []
