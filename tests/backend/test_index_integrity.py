"""Index integrity on real index folders: every kind of index file flipped, truncated and deleted.

A damaged manifest or codec is a clear `IndexFormatError` (never a traceback, never silently wrong scores); a
damaged chunk is quarantined while the rest stays searchable, `mofind index --verify` reports it, `--repair`
re-encodes its clips from their source files; `--prune` drops vanished takes and a moved take is found again by
content hash without re-encoding.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from fixtures.synthetic import write_action_library
from mofind.index.build import build_index
from mofind.index.chunk import Chunk, ChunkFormatError, chunk_bytes
from mofind.index.encoders import weights_present
from mofind.index.maintenance import prune_index, repair_index, verify_index
from mofind.index.manifest import IndexFormatError, IndexSpec, IndexStoreError, Manifest
from mofind.index.search import Searcher
from mofind.index.store import IndexReader

REPO = Path(__file__).resolve().parents[2]
QUERY = "a person waves the left hand"


@pytest.fixture(scope="module")
def encoder():
    from mofind.model.inference import Encoder

    return Encoder.load() if weights_present() else Encoder.random("compact")


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, encoder):
    """A library indexed in three commits (three chunks)."""
    root = tmp_path_factory.mktemp("pristine")
    library = root / "mocap"
    for i, kind in enumerate(("bandai", "cmu", "zup")):
        write_action_library(library / kind, kinds=(kind,), actions=("walk", "wave_left", "raise_both"),
                             seconds=3.0, seed=10 * i)
        build_index([library / kind], root / "index", encoder, workers=0)
    return root


@pytest.fixture()
def copy(tmp_path, pristine):
    """A private copy of library + index (sources keep their absolute paths under the copy)."""
    library = tmp_path / "mocap"
    shutil.copytree(pristine / "mocap", library)
    index = tmp_path / "index"
    shutil.copytree(pristine / "index", index)
    manifest = json.loads((index / "manifest.json").read_text())
    for chunk in (index / "chunks").glob("*.safetensors"):  # re-point the records at the copied sources
        _rewrite_chunk(chunk, manifest, lambda arrays, clips: (arrays, [
            c | {"source": c["source"].replace(str(pristine), str(tmp_path))} for c in clips]))
    for records in (index / "chunks").glob("*.clips.json"):
        records.write_text(records.read_text().replace(str(pristine), str(tmp_path)))
    (index / "manifest.json").write_text(json.dumps(manifest))
    return library, index


def _rewrite_chunk(path: Path, manifest: dict, change) -> None:
    """Rewrite one chunk through `change(arrays, clips)` and update its manifest entry (valid checksum)."""
    from mofind.index.chunk import bytes_checksum

    chunk = Chunk.open(path)
    arrays = {name: np.array(value) for name, value in chunk.arrays.items()}
    arrays, clips = change(arrays, chunk.clips)
    data = chunk_bytes(arrays, clips)
    path.chmod(0o644)
    path.write_bytes(data)
    entry = next(e for e in manifest["chunks"] if e["name"] == path.name)
    entry.update(bytes=len(data), checksum=bytes_checksum(data))


def _ranking(index: Path, encoder, k: int = 9) -> list[tuple[str, int, int]]:
    hits = Searcher(IndexReader.open(index), encoder).search(QUERY, k=k)
    return [(Path(h.source).name, h.start_frame, h.end_frame) for h in hits]


def _flip(path: Path, offset: int) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset % len(data)] ^= 0x5A
    path.write_bytes(bytes(data))


def _chunks(index: Path) -> list[Path]:
    return sorted((index / "chunks").glob("*.safetensors"))


def mofind(*args):
    env = {**os.environ, "PYTHONPATH": str(REPO / "backend")}
    if not weights_present():
        env["MOFIND_TEST_RANDOM_MODEL"] = "1"
    return subprocess.run([sys.executable, "-m", "mofind.cli", *map(str, args)], env=env, capture_output=True,
                          text=True, timeout=300)


# -- chunks ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["flip_body", "flip_header", "truncate", "delete"])
def test_damaged_chunk_is_quarantined_verified_and_repaired(copy, encoder, damage):
    library, index = copy
    before = _ranking(index, encoder)
    victim = _chunks(index)[1]
    if damage == "flip_body":
        _flip(victim, victim.stat().st_size - 100)  # inside the stored codes: only the checksum can tell
    elif damage == "flip_header":
        _flip(victim, 20)
    elif damage == "truncate":
        victim.chmod(0o644)
        os.truncate(victim, victim.stat().st_size // 2)
    else:
        victim.unlink()

    reader = IndexReader.open(index)
    (offline,) = reader.offline
    assert offline.name == victim.name and offline.clips == 3 and len(reader) == 6
    assert reader.offline_summary()["fix"].startswith("mofind index --repair")
    served = _ranking(index, encoder)  # the online takes answer exactly as before, the damaged ones not at all
    assert len(served) == 6 and set(served) <= set(before)
    assert not any(name.startswith("cmu_") for name, *_ in served)

    report = verify_index(index)
    assert report["ok"] is False and report["clips_offline"] == 3
    assert [c["status"] for c in report["chunks"]] == ["ok", "damaged", "ok"]
    result = mofind("index", "--verify", "--json", "--index", index)
    assert result.returncode == 1 and json.loads(result.stdout)["ok"] is False and "Traceback" not in result.stderr

    repaired = repair_index(index, encoder)
    assert repaired["damaged_chunks"] == [victim.name] and repaired["reencoded"] == 3
    assert verify_index(index)["ok"] and len(IndexReader.open(index)) == 9
    assert _ranking(index, encoder) == before  # the same answers as before the damage
    if damage != "delete":
        assert (index / "quarantine" / victim.name).is_file()


def test_repair_drops_clips_whose_files_are_gone_and_uses_the_header_without_records(copy, encoder):
    library, index = copy
    victim = _chunks(index)[0]
    (index / "chunks" / victim.name.replace(".safetensors", ".clips.json")).unlink()
    _flip(victim, victim.stat().st_size - 50)
    gone = next((library / "bandai").glob("*walk*.bvh"))
    gone.unlink()
    repaired = repair_index(index, encoder)
    assert repaired["reencoded"] == 2 and repaired["dropped"] == [str(gone)]
    reader = IndexReader.open(index)
    assert len(reader) == 8 and not reader.offline and str(gone) not in {r.source for r in reader.clips()}


def test_structural_damage_with_a_valid_checksum_is_still_refused(copy):
    _, index = copy
    manifest = json.loads((index / "manifest.json").read_text())
    victim = _chunks(index)[2]

    def negative_frames(arrays, clips):
        arrays["win_source"][0] = (-40, -10)
        return arrays, clips

    _rewrite_chunk(victim, manifest, negative_frames)
    (index / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(ChunkFormatError, match="negative or empty frame range"):
        Chunk.open(victim)
    (offline,) = IndexReader.open(index).offline
    assert "negative" in offline.reason


# -- manifest and codec -------------------------------------------------------------------------------------
@pytest.mark.parametrize("damage", ["invalid_utf8", "truncate", "delete", "bad_chunk_name", "wrong_types"])
def test_damaged_manifest_is_a_clear_format_error(copy, damage):
    _, index = copy
    path = index / "manifest.json"
    if damage == "invalid_utf8":
        path.write_bytes(path.read_bytes()[:40] + b"\xff\xfe" + path.read_bytes()[42:])
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:100])
    elif damage == "delete":
        path.unlink()
    else:
        data = json.loads(path.read_text())
        if damage == "bad_chunk_name":
            data["chunks"][0]["name"] = "../../../etc/passwd"
        else:
            data["spec"]["grid"] = ["12", 14]
        path.write_text(json.dumps(data))
    with pytest.raises(IndexStoreError) as caught:
        IndexReader.open(index)
    assert str(index) in str(caught.value)
    report = verify_index(index)
    assert report["ok"] is False and report["manifest"] != "ok"
    result = mofind("index", "--verify", "--index", index)
    assert result.returncode == 1 and "Traceback" not in result.stderr + result.stdout


@pytest.mark.parametrize("damage", ["flip", "truncate", "delete"])
def test_damaged_codec_is_a_clear_format_error(copy, damage):
    _, index = copy
    path = index / "codec.safetensors"
    if damage == "flip":
        _flip(path, path.stat().st_size - 7)
    elif damage == "truncate":
        path.write_bytes(path.read_bytes()[:64])
    else:
        path.unlink()
    with pytest.raises(IndexFormatError, match="codec"):
        IndexReader.open(index)
    assert verify_index(index)["codec"] != "ok"


def test_random_byte_flips_never_give_a_traceback_or_a_wrong_answer(copy, encoder):
    """Flip one byte anywhere in any index file: either a clear index error, or correct answers from what is
    still online (every result inside its clip, nothing twice)."""
    _, index = copy
    rng = random.Random(7)
    files = [index / "manifest.json", index / "codec.safetensors", *_chunks(index)]
    originals = {path: path.read_bytes() for path in files}
    for trial in range(30):
        path = rng.choice(files)
        _flip(path, rng.randrange(path.stat().st_size))
        try:
            reader = IndexReader.open(index)
        except IndexStoreError:
            pass
        else:
            hits = Searcher(reader, encoder).search(QUERY, k=9)
            assert len({h.clip_id for h in hits}) == len(hits)
            for hit in hits:
                record = reader.clip(hit.clip_id)
                assert record.frame_range[0] <= hit.start_frame < hit.end_frame <= record.frame_range[1]
                assert -1.0 <= hit.score <= 1.0
        path.write_bytes(originals[path])


# -- a live server -----------------------------------------------------------------------------------------
def test_server_keeps_serving_when_a_chunk_is_replaced_under_it(copy, encoder, tmp_path):
    """`cp` of a short file over a memory-mapped chunk used to kill the server with SIGBUS."""
    from fixtures.curve import make_keys, serving
    from mofind.server.handlers import Backend

    _, index = copy
    with serving(Backend(index, encoder), make_keys(tmp_path / "config")) as call:
        first = call("search", {"query": QUERY, "k": 9, "thumbnails": False})
        assert first["ok"] and "meta" not in first and len(first["result"]["results"]) == 9
        victim = _chunks(index)[0]
        victim.chmod(0o644)
        with open(victim, "r+b") as handle:  # what `cp backup chunk` does: truncate in place, then write
            handle.truncate(0)
            handle.write(b"\0" * 1000)
        reply = call("search", {"query": QUERY, "k": 9, "thumbnails": False})
        assert reply["ok"] and reply["meta"]["offline"]["chunks"] == [victim.name]
        assert len(reply["result"]["results"]) == 6
        info = call("info", {})["result"]
        assert info["index"]["offline"]["clips"] == 3 and info["index"]["clips"] == 6


# -- prune and move ----------------------------------------------------------------------------------------
def test_moved_take_is_found_again_without_reencoding_and_prune_drops_vanished(copy, encoder):
    library, index = copy
    before = IndexReader.open(index)
    moved_from = next((library / "cmu").glob("*wave_left*.bvh"))
    old = before.clip(next(r.clip_id for r in before.clips() if r.source == str(moved_from)))
    old_codes = [before.window_patches(ref)[0] for ref in before.windows(old.clip_id)]
    (library / "renamed").mkdir()
    moved_to = library / "renamed" / "Wave_Left_Hand_Take_03.bvh"
    moved_from.rename(moved_to)
    report = build_index([library], index, encoder, workers=0)
    assert report.moved == 1 and report.indexed == 0 and report.skipped == 8
    reader = IndexReader.open(index)
    (new,) = [r for r in reader.clips() if r.source == str(moved_to)]
    assert new.content_hash == old.content_hash and old.clip_id not in reader and len(reader) == 9
    for codes, ref in zip(old_codes, reader.windows(new.clip_id), strict=True):
        np.testing.assert_array_equal(reader.window_patches(ref)[0], codes)  # bit-exact: not re-encoded

    gone = next((library / "bandai").glob("*raise_both*.bvh"))
    gone.unlink()
    result = mofind("index", "--prune", "--json", "--index", index)
    assert result.returncode == 0, result.stderr
    pruned = json.loads(result.stdout)
    assert pruned["pruned"] == 1 and pruned["pruned_sources"] == [str(gone)] and pruned["clips_in_index"] == 8
    assert prune_index(index, IndexSpec.from_encoder(encoder))["pruned"] == 0
