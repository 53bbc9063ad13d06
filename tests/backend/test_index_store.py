"""The index folder on its own: commit, reopen, update, remove, compact, model check, lock, crash safety.

Embeddings here are random unit vectors (the store must not care where they come from); the tests that
run the real encoder live in test_index_build.py.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal

import numpy as np
import pytest

from mofind.index.chunk import Chunk
from mofind.index.codec import RotatedCodec
from mofind.index.lock import IndexLockedError, WriteLock
from mofind.index.manifest import IndexFormatError, IndexNotFoundError, IndexSpec, ModelMismatchError
from mofind.index.pooling import cluster_pool
from mofind.index.store import ClipRecord, IndexReader, IndexWriter, WindowEmbedding, clip_id_for

ROWS, COLS, DIM = 4, 3, 16
SPEC = IndexSpec(model_hash="aaaa", model_name="test", dim=DIM, grid=(ROWS, COLS), frames_per_row=4,
                 window_frames=16, stride_frames=8, fps=20.0, part_names=("a", "b", "c"))


def unit(rng, *shape):
    x = rng.standard_normal(shape).astype(np.float32)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def make_clip(name: str, n_windows: int = 2, seed: int = 0, valid_rows: int = ROWS):
    rng = np.random.default_rng(seed)
    record = ClipRecord(clip_id=clip_id_for(f"/lib/{name}.bvh"), source=f"/lib/{name}.bvh", content_hash=f"h{seed}",
                        size=10, mtime_ns=1, format="bvh", frame_range=(0, 30 * n_windows), source_fps=30.0,
                        num_frames=20 * n_windows, duration=float(n_windows), skeleton="bandai",
                        labels=[name.split("_")[0]])
    windows = []
    for w in range(n_windows):
        valid = np.zeros((ROWS, COLS), bool)
        valid[:valid_rows] = True
        windows.append(WindowEmbedding(start=8 * w, source_start=12 * w, source_end=12 * w + 24,
                                       patches=unit(rng, ROWS * COLS, DIM), valid=valid.ravel()))
    return record, windows


def test_commit_and_reopen_roundtrip(tmp_path):
    rec_a, win_a = make_clip("walk_a", 3, seed=1)
    rec_b, win_b = make_clip("wave_b", 1, seed=2, valid_rows=2)
    with IndexWriter(tmp_path, SPEC) as writer:
        writer.add(rec_a, win_a, thumbnail=b"\x89PNGfake-a")
        writer.add(rec_b, win_b)
    reader = IndexReader.open(tmp_path, SPEC)
    assert sorted(reader.clip_ids()) == sorted([rec_a.clip_id, rec_b.clip_id])
    assert reader.clip(rec_a.clip_id) == rec_a
    assert reader.thumbnail(rec_a.clip_id) == b"\x89PNGfake-a"
    assert reader.thumbnail(rec_b.clip_id) is None
    assert reader.num_windows == 4
    refs = reader.windows(rec_a.clip_id)
    assert [(r.start, r.source_start, r.source_end) for r in refs] == [(0, 0, 24), (8, 12, 36), (16, 24, 48)]
    # decoded patches are close to the originals; invalid rows are reported as such
    patches, valid = reader.window_patches(reader.windows(rec_b.clip_id)[0])
    assert valid.tolist() == [True] * 6 + [False] * 6
    original = win_b[0].patches[valid]
    cosines = (patches[valid] * original).sum(1)
    assert cosines.min() > 0.9
    assert np.all(patches[~valid] == 0)


def test_an_unchanged_manifest_is_not_parsed_again_and_a_changed_one_is(tmp_path, monkeypatch):
    """A server asks `reopen_if_changed` before every request: the manifest's bytes answer it while nothing was
    committed; a commit is parsed, and the same bytes written back (a restore) are the same state."""
    from mofind.index.manifest import Manifest

    with IndexWriter(tmp_path, SPEC) as writer:
        writer.add(*make_clip("walk_a", 2, seed=1))
    reader = IndexReader.open(tmp_path, SPEC)
    reads = []
    real_read = Manifest.read.__func__
    monkeypatch.setattr(Manifest, "read",
                        classmethod(lambda cls, folder, *raw: reads.append(folder) or real_read(cls, folder, *raw)))
    assert reader.reopen_if_changed() is reader and reads == []
    with IndexWriter(tmp_path, SPEC) as writer:
        writer.add(*make_clip("wave_b", 1, seed=2))
    reads.clear()
    newer = reader.reopen_if_changed()
    assert newer.generation > reader.generation and reads
    assert newer.reopen_if_changed() is newer
    saved = (tmp_path / "manifest.json").read_bytes()
    (tmp_path / "manifest.json").unlink()
    (tmp_path / "manifest.json").write_bytes(saved)  # the same bytes in a new file: the same state
    reads.clear()
    assert newer.reopen_if_changed() is newer and reads == []
    (tmp_path / "manifest.json").write_bytes(saved.replace(b"{", b"{ ", 1))  # other bytes: parsed, same state
    assert newer.reopen_if_changed() is newer and reads


def test_only_valid_patches_are_stored(tmp_path):
    rec, win = make_clip("short", 1, valid_rows=1)
    with IndexWriter(tmp_path, SPEC) as writer:
        writer.add(rec, win)
    chunk = IndexReader.open(tmp_path).chunks[0]
    assert chunk.arrays["patches"].shape == (COLS, DIM // 2 + DIM // 8)  # 5 bits per dim
    assert chunk.arrays["pooled"].shape == (32, DIM // 2)  # 32 pooled vectors at 4 bits, from 3 valid patches


def test_cluster_pool_summarises_valid_patches_only():
    rng = np.random.default_rng(0)
    centres = unit(rng, 3, DIM)
    patches = np.repeat(centres, 4, axis=0) + 0.01 * rng.standard_normal((12, DIM)).astype(np.float32)
    patches /= np.linalg.norm(patches, axis=1, keepdims=True)
    valid = np.ones(12, bool)
    valid[8:] = False  # the third cluster is padding
    pooled = cluster_pool(patches[None], valid[None], size=4)[0]
    best = (pooled @ centres.T).max(0)
    assert best[0] > 0.99 and best[1] > 0.99  # both real clusters are represented
    assert best[2] < 0.5  # padding never becomes a pooled vector
    np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, atol=1e-5)
    again = cluster_pool(patches[None], valid[None], size=4)[0]
    np.testing.assert_array_equal(pooled, again)  # deterministic


def test_update_replaces_clip_and_remove_tombstones(tmp_path):
    rec, win = make_clip("walk_a", 2, seed=1)
    other, other_win = make_clip("run_b", 1, seed=3)
    with IndexWriter(tmp_path, SPEC) as writer:
        writer.add(rec, win)
        writer.add(other, other_win)
    newer = ClipRecord(**{**rec.to_dict(), "content_hash": "changed", "frame_range": (0, 30)})
    _, new_win = make_clip("walk_a", 1, seed=9)
    with IndexWriter(tmp_path, SPEC) as writer:
        writer.add(newer, new_win)
    reader = IndexReader.open(tmp_path)
    assert len(reader) == 2
    assert reader.clip(rec.clip_id).content_hash == "changed"
    assert len(reader.windows(rec.clip_id)) == 1
    with IndexWriter(tmp_path, SPEC) as writer:
        assert writer.remove([other.clip_id, "no-such-clip"]) == 1
    reader = IndexReader.open(tmp_path)
    assert reader.clip_ids() == [rec.clip_id]
    with pytest.raises(KeyError, match="not in the index"):
        reader.clip(other.clip_id)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert sum(len(v) for v in manifest["tombstones"].values()) == 2  # the old copy + the removed clip


def test_remove_prefix(tmp_path):
    with IndexWriter(tmp_path, SPEC) as writer:
        for i, name in enumerate(["walk_a", "walk_b", "run_c"]):
            rec, win = make_clip(name, 1, seed=i)
            rec.source = f"/lib/{'walks' if name.startswith('walk') else 'runs'}/{name}.bvh"
            writer.add(rec, win)
    with IndexWriter(tmp_path, SPEC) as writer:
        assert writer.remove_prefix("/lib/walks/") == 2
    assert [r.source for r in IndexReader.open(tmp_path).clips()] == ["/lib/runs/run_c.bvh"]


def test_compaction_drops_dead_clips_and_keeps_codes_bit_exact(tmp_path):
    clips = [make_clip(f"clip_{i}", 1 + i % 3, seed=i) for i in range(6)]
    for rec, win in clips:  # one commit per clip: six small chunks
        with IndexWriter(tmp_path, SPEC) as writer:
            writer.add(rec, win, thumbnail=f"thumb{rec.clip_id}".encode())
    before = IndexReader.open(tmp_path)
    codes_before = {r.clip_id: [before.window_patches(ref)[0] for ref in before.windows(r.clip_id)]
                    for r in before.clips()}
    with IndexWriter(tmp_path, SPEC) as writer:
        writer.remove([clips[0][0].clip_id, clips[3][0].clip_id])
        stats = writer.compact()
    assert stats["chunks_before"] == 6 and stats["chunks_after"] == 1 and stats["dropped_clips"] == 2
    after = IndexReader.open(tmp_path)
    assert len(list((tmp_path / "chunks").glob("*.safetensors"))) == 1
    assert sorted(after.clip_ids()) == sorted(r.clip_id for r, _ in clips[1:3] + clips[4:])
    for clip_id in after.clip_ids():
        assert after.thumbnail(clip_id) == f"thumb{clip_id}".encode()
        decoded = [after.window_patches(ref)[0] for ref in after.windows(clip_id)]
        for x, y in zip(decoded, codes_before[clip_id], strict=True):
            np.testing.assert_array_equal(x, y)
    assert json.loads((tmp_path / "manifest.json").read_text())["tombstones"] == {}


def test_needs_compaction_when_many_clips_are_dead(tmp_path):
    clips = [make_clip(f"c{i}", 1, seed=i) for i in range(8)]
    with IndexWriter(tmp_path, SPEC) as writer:
        for rec, win in clips:
            writer.add(rec, win)
    with IndexWriter(tmp_path, SPEC) as writer:
        writer.remove([clips[0][0].clip_id, clips[1][0].clip_id])
        writer.commit()
        assert not writer.needs_compaction()  # 2 of 8 dead
        writer.remove([clips[2][0].clip_id])
        writer.commit()
        assert writer.needs_compaction()  # 3 of 8
        writer.compact()
        assert not writer.needs_compaction()


def test_reader_snapshot_survives_compaction(tmp_path):
    for i in range(3):
        with IndexWriter(tmp_path, SPEC) as writer:
            writer.add(*make_clip(f"c{i}", 1, seed=i))
    old = IndexReader.open(tmp_path)
    with IndexWriter(tmp_path, SPEC) as writer:
        writer.compact()
    # the old snapshot's chunk files are deleted, but its memory maps stay readable
    for clip_id in old.clip_ids():
        assert old.window_patches(old.windows(clip_id)[0])[1].any()
    assert old.reopen_if_changed().generation > old.generation


def test_other_model_is_refused_with_a_clear_message(tmp_path):
    with IndexWriter(tmp_path, SPEC) as writer:
        writer.add(*make_clip("a", 1))
    other = IndexSpec(**{**SPEC.to_dict(), "model_hash": "bbbb", "grid": SPEC.grid, "part_names": SPEC.part_names})
    with pytest.raises(ModelMismatchError, match="built with model 'test' \\(hash aaaa\\).*hash bbbb"):
        IndexReader.open(tmp_path, other)
    with pytest.raises(ModelMismatchError):
        IndexWriter(tmp_path, other)


def test_format_version_is_checked(tmp_path):
    with IndexWriter(tmp_path, SPEC):
        pass
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["format_version"] = 99
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(IndexFormatError, match="format version 99.*upgrade MoFind"):
        IndexReader.open(tmp_path)
    (tmp_path / "manifest.json").write_text("{not json")
    with pytest.raises(IndexFormatError, match="not valid JSON"):
        IndexReader.open(tmp_path)


def test_missing_index_and_damaged_chunk(tmp_path):
    with pytest.raises(IndexNotFoundError, match="not a MoFind index"):
        IndexReader.open(tmp_path / "nothing")
    with IndexWriter(tmp_path, SPEC) as writer:
        writer.add(*make_clip("a", 2))
    chunk_file = next((tmp_path / "chunks").glob("*.safetensors"))
    chunk_file.chmod(0o644)
    chunk_file.write_bytes(chunk_file.read_bytes()[:-10])
    reader = IndexReader.open(tmp_path)  # quarantined, not fatal: the rest of the library stays searchable
    assert "a" not in reader and len(reader) == 0
    (offline,) = reader.offline
    assert offline.name == chunk_file.name and offline.clips == 1 and "manifest says" in offline.reason


def test_second_writer_is_refused_while_the_first_holds_the_lock(tmp_path):
    with IndexWriter(tmp_path, SPEC):
        with pytest.raises(IndexLockedError, match=f"pid {os.getpid()}"):
            IndexWriter(tmp_path, SPEC)
    with IndexWriter(tmp_path, SPEC):  # released on exit
        pass


def test_a_refused_or_interrupted_lock_wait_leaves_no_open_descriptor(tmp_path, monkeypatch):
    open_fds = lambda: len(os.listdir("/proc/self/fd"))  # noqa: E731
    with WriteLock(tmp_path):
        before = open_fds()
        with pytest.raises(IndexLockedError):
            WriteLock(tmp_path).acquire()

        def ctrl_c(_seconds):  # the user presses Ctrl-C while the writer waits for the lock
            raise KeyboardInterrupt

        monkeypatch.setattr("mofind.index.lock.time.sleep", ctrl_c)
        with pytest.raises(KeyboardInterrupt):
            WriteLock(tmp_path, timeout=5.0).acquire()
        assert open_fds() == before


def _hold_lock_then_wait(folder, ready):
    WriteLock(folder).acquire()
    ready.set()
    signal.pause()


def test_lock_held_by_another_process_and_released_when_it_is_killed(tmp_path):
    with IndexWriter(tmp_path, SPEC):
        pass
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    holder = ctx.Process(target=_hold_lock_then_wait, args=(tmp_path, ready))
    holder.start()
    try:
        assert ready.wait(30)
        with pytest.raises(IndexLockedError, match=f"pid {holder.pid}"):
            IndexWriter(tmp_path, SPEC)
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.join(10)
    with IndexWriter(tmp_path, SPEC, lock_timeout=5):  # the kernel dropped the dead holder's lock
        pass


def test_exception_inside_writer_discards_uncommitted_clips(tmp_path):
    with IndexWriter(tmp_path, SPEC) as writer:
        writer.add(*make_clip("kept", 1))
    with pytest.raises(RuntimeError):
        with IndexWriter(tmp_path, SPEC) as writer:
            writer.add(*make_clip("lost", 1))
            raise RuntimeError("interrupted")
    reader = IndexReader.open(tmp_path)
    assert [r.source for r in reader.clips()] == ["/lib/kept.bvh"]


def test_orphan_chunks_and_temp_files_are_cleaned_by_the_next_writer(tmp_path):
    with IndexWriter(tmp_path, SPEC) as writer:
        writer.add(*make_clip("a", 1))
    orphan = tmp_path / "chunks" / "chunk-000099.safetensors"
    orphan.write_bytes(b"half written")
    temp = tmp_path / "chunks" / ".chunk-000100.safetensors.abc.tmp"
    temp.write_bytes(b"partial")
    assert len(IndexReader.open(tmp_path)) == 1  # readers ignore files the manifest does not list
    with IndexWriter(tmp_path, SPEC):
        pass
    assert not orphan.exists() and not temp.exists()


def test_window_shape_is_validated(tmp_path):
    rec, win = make_clip("a", 1)
    win[0].patches = win[0].patches[:, :8]
    with IndexWriter(tmp_path, SPEC) as writer:
        with pytest.raises(ValueError, match="expects"):
            writer.add(rec, win)


@pytest.mark.parametrize("bits, max_std", [(4, 0.015), (5, 0.008)])
def test_codec_error_is_small_for_unit_vectors(bits, max_std):
    rng = np.random.default_rng(7)
    codec = RotatedCodec.create(128, bits=bits)
    x, q = unit(rng, 2000, 128), unit(rng, 16, 128)
    packed = codec.encode(x)
    assert packed.shape == (2000, codec.bytes_per_vector) == (2000, 64 + (bits - 4) * 16)
    queries = codec.quantize_queries(q)
    levels = codec.levels(packed).astype(np.int64)
    assert levels.min() >= 0 and levels.max() <= codec.level_count - 1
    estimate = queries.to_scores(levels @ queries.q8.T.astype(np.int64))
    error = estimate - x @ q.T
    assert abs(error.mean()) < 2e-3 and error.std() < max_std
    np.testing.assert_allclose(codec.decode_original(packed) @ q.T, x @ q.T, atol=8 * max_std)


def test_five_bit_levels_round_trip_through_the_bit_plane():
    codec = RotatedCodec.create(16, bits=5)
    for value in range(32):  # every level survives packing, in every dimension
        rotated = np.full((1, 16), (value - 16 + 0.5) * codec.step, np.float32)
        packed = codec.encode(rotated @ codec.rotation)
        assert codec.levels(packed).tolist() == [[value] * 16]


def test_chunk_file_is_plain_safetensors(tmp_path):
    with IndexWriter(tmp_path, SPEC) as writer:
        writer.add(*make_clip("a", 2))
    from safetensors.numpy import load_file

    path = next((tmp_path / "chunks").glob("*.safetensors"))
    loaded = load_file(path)
    mapped = Chunk.open(path)
    for name, array in loaded.items():
        np.testing.assert_array_equal(np.asarray(mapped.arrays[name]), array)


@pytest.mark.parametrize("module", ["codec", "kernels", "windows", "labels", "pooling"])
def test_module_doctests(module):
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"mofind.index.{module}"))
    assert result.attempted > 0 and result.failed == 0


@pytest.mark.parametrize("bits", [4, 5])
def test_levels_unpack_every_byte_value_in_every_position(bits):
    codec = RotatedCodec.create(128, bits=bits)
    values = np.arange(256, dtype=np.uint8)
    packed = np.stack([np.roll(values, shift)[:codec.bytes_per_vector] for shift in range(256)] * 20)  # > one slice
    half = codec.dim // 2
    reference = np.concatenate([packed[:, :half] & 15, packed[:, :half] >> 4], axis=1)
    if bits == 5:
        reference |= np.unpackbits(packed[:, half:], axis=1, count=codec.dim) << 4
    np.testing.assert_array_equal(codec.levels(packed), reference.astype(np.int8))
