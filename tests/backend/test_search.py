"""Search over a store of known embeddings: ranking vs brute-force MaxSim, per-take grouping, filters, modes.

Embeddings are random unit vectors with planted structure, so every expected ranking is computed
independently here (float MaxSim over the decoded patches with `mofind.model.maxsim`), not copied
from the code under test.
"""

from __future__ import annotations

import numpy as np
import pytest

from mofind.index.manifest import IndexSpec
from mofind.index.search import Filters, SearchError, Searcher
from mofind.index.store import ClipRecord, IndexReader, IndexWriter, WindowEmbedding, clip_id_for
from mofind.model.maxsim import maxsim

ROWS, COLS, DIM = 4, 3, 32
SPEC = IndexSpec(model_hash="m", model_name="test", dim=DIM, grid=(ROWS, COLS), frames_per_row=4,
                 window_frames=16, stride_frames=8, fps=20.0, part_names=("a", "b", "c"))


def unit(x):
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def build(folder, clips):
    """clips: list of (name, duration, skeleton, [window patch arrays], valid_rows)."""
    with IndexWriter(folder, SPEC) as writer:
        for name, duration, skeleton, windows, valid_rows in clips:
            source = f"/lib/{skeleton}/{name}.bvh"
            record = ClipRecord(clip_id=clip_id_for(source), source=source, content_hash=name, size=1, mtime_ns=1,
                                format="bvh", frame_range=(0, int(duration * 30)), source_fps=30.0,
                                num_frames=int(duration * 20), duration=duration, skeleton=skeleton,
                                labels=name.split("_")[:1])
            embedded = []
            for w, patches in enumerate(windows):
                valid = np.zeros((ROWS, COLS), bool)
                valid[:valid_rows] = True
                embedded.append(WindowEmbedding(start=8 * w, source_start=12 * w, source_end=12 * w + 24,
                                                patches=patches, valid=valid.ravel()))
            writer.add(record, embedded)
    return IndexReader.open(folder, SPEC)


@pytest.fixture()
def library(tmp_path):
    rng = np.random.default_rng(42)
    clips = []
    for i in range(30):
        n_windows = 1 + i % 4
        windows = [unit(rng.standard_normal((ROWS * COLS, DIM))) for _ in range(n_windows)]
        clips.append((f"{['walk', 'wave', 'run'][i % 3]}_{i:02d}", 1.0 + i * 0.5, ["bandai", "cmu_bvh"][i % 2],
                      windows, 1 + i % ROWS))
    return build(tmp_path, clips), clips


def brute_force(reader, tokens):
    """Float MaxSim of `tokens` against every stored window: {clip_id: [(score, source_start), ...]}."""
    out = {}
    for record in reader.clips():
        for ref in reader.windows(record.clip_id):
            patches, valid = reader.window_patches(ref)
            score = maxsim(tokens[None], np.ones((1, len(tokens)), bool), patches[None], valid[None])[0, 0]
            out.setdefault(record.clip_id, []).append((float(score), ref.source_start))
    return out


def test_exact_search_matches_brute_force_maxsim(library):
    reader, _ = library
    searcher = Searcher(reader)
    rng = np.random.default_rng(1)
    for _ in range(5):
        tokens = unit(rng.standard_normal((6, DIM)))
        hits = searcher.search_tokens([tokens], k=8, mode="exact")[0]
        truth = brute_force(reader, tokens)
        best = sorted(((max(w)[0], cid) for cid, w in truth.items()), reverse=True)
        assert len(hits) == 8
        assert len({h.clip_id for h in hits}) == 8  # one result per take
        for hit in hits:
            score, _ = max(truth[hit.clip_id])
            assert hit.score == pytest.approx(score, abs=0.01)  # only the query side is quantised here
            window_score = dict((start, s) for s, start in truth[hit.clip_id])[hit.start_frame]
            assert window_score >= score - 0.01  # the take's best window (up to near-ties)
        # the ranking agrees with brute force up to near-ties
        for hit, (score, _) in zip(hits, best):
            assert hit.score == pytest.approx(score, abs=0.02)


def test_planted_window_is_found_first_in_both_modes(library):
    reader, clips = library
    name, _, skeleton, windows, valid_rows = clips[13]
    target = clip_id_for(f"/lib/{skeleton}/{name}.bvh")
    query = windows[1][: valid_rows * COLS][[0, 1, 2]]  # three of the second window's own patches
    searcher = Searcher(reader)
    for mode in ("exact", "two_stage"):
        hits = searcher.search_tokens([query], k=3, mode=mode, candidates=5)[0]
        assert hits[0].clip_id == target
        assert hits[0].start_frame == 12  # the second window, in source frames
        assert hits[0].score > 0.9


def test_batched_queries_equal_single_queries(library):
    reader, _ = library
    searcher = Searcher(reader)
    rng = np.random.default_rng(3)
    queries = [unit(rng.standard_normal((n, DIM))) for n in (1, 4, 9)]
    batched = searcher.search_tokens(queries, k=5)
    for query, result in zip(queries, batched):
        single = searcher.search_tokens([query], k=5)[0]
        assert [(h.clip_id, h.start_frame) for h in single] == [(h.clip_id, h.start_frame) for h in result]
        assert [h.score for h in single] == pytest.approx([h.score for h in result], abs=1e-6)


def test_per_take_lists_several_windows_of_a_take(library):
    reader, _ = library
    rng = np.random.default_rng(4)
    tokens = unit(rng.standard_normal((5, DIM)))
    hits = Searcher(reader).search_tokens([tokens], k=4, per_take=3)[0]
    truth = brute_force(reader, tokens)
    clip_order = list(dict.fromkeys(h.clip_id for h in hits))
    assert len(clip_order) == 4
    for clip_id in clip_order:
        mine = [h for h in hits if h.clip_id == clip_id]
        assert len(mine) == min(3, len(truth[clip_id]))
        assert [h.score for h in mine] == sorted((h.score for h in mine), reverse=True)
        assert len({h.start_frame for h in mine}) == len(mine)


def test_two_stage_with_every_window_as_candidate_equals_exact(library):
    reader, _ = library
    searcher = Searcher(reader)
    rng = np.random.default_rng(5)
    tokens = unit(rng.standard_normal((7, DIM)))
    exact = searcher.search_tokens([tokens], k=10, mode="exact")[0]
    staged = searcher.search_tokens([tokens], k=10, mode="two_stage", candidates=10_000)[0]
    assert [(h.clip_id, h.start_frame, h.score) for h in exact] == [(h.clip_id, h.start_frame, h.score) for h in staged]


def test_filters(library):
    reader, clips = library
    searcher = Searcher(reader)
    tokens = unit(np.random.default_rng(6).standard_normal((4, DIM)))
    records = {r.clip_id: r for r in reader.clips()}

    def ids(**filters):
        return {h.clip_id for h in searcher.search_tokens([tokens], k=100, filters=filters)[0]}

    assert ids() == set(records)
    assert ids(min_duration=5.0, max_duration=9.0) == {c for c, r in records.items() if 5.0 <= r.duration <= 9.0}
    assert ids(label="WAVE") == {c for c, r in records.items() if r.labels == ["wave"]}
    assert ids(skeleton="cmu_bvh") == {c for c, r in records.items() if r.skeleton == "cmu_bvh"}
    assert ids(path_prefix="/lib/bandai/") == {c for c, r in records.items() if r.source.startswith("/lib/bandai/")}
    assert ids(label="wave", skeleton="bandai", min_duration=3) == {
        c for c, r in records.items() if r.labels == ["wave"] and r.skeleton == "bandai" and r.duration >= 3}
    assert ids(label="no-such-label") == set()


@pytest.mark.parametrize("bad, message", [
    ({"min_duration": "long"}, "min_duration must be a number"),
    ({"label": 3}, "label must be a string"),
    ({"colour": "red"}, "unknown filter"),
    ([1, 2], "filters must be an object"),
])
def test_bad_filters_are_rejected(bad, message):
    with pytest.raises(SearchError, match=message):
        Filters.from_dict(bad)


def test_bad_arguments(library):
    reader, _ = library
    searcher = Searcher(reader)
    tokens = unit(np.ones((2, DIM)))
    with pytest.raises(SearchError, match="no words"):
        searcher.search_tokens([np.zeros((0, DIM), np.float32)])
    with pytest.raises(SearchError, match="unknown search mode"):
        searcher.search_tokens([tokens], mode="fast")
    with pytest.raises(SearchError, match="at least 1"):
        searcher.search_tokens([tokens], k=0)
    with pytest.raises(SearchError, match="no text encoder"):
        searcher.search("walk")


def test_refresh_sees_new_commits_and_removals(tmp_path):
    rng = np.random.default_rng(7)
    first = [("walk_a", 2.0, "bandai", [unit(rng.standard_normal((ROWS * COLS, DIM)))], ROWS)]
    reader = build(tmp_path, first)
    searcher = Searcher(reader)
    tokens = unit(rng.standard_normal((3, DIM)))
    assert len(searcher.search_tokens([tokens], k=10)[0]) == 1
    assert searcher.refresh() is False
    build(tmp_path, [("wave_b", 2.0, "bandai", [unit(rng.standard_normal((ROWS * COLS, DIM)))], ROWS)])
    assert searcher.refresh() is True
    assert len(searcher.search_tokens([tokens], k=10)[0]) == 2
    with IndexWriter(tmp_path, SPEC) as writer:
        writer.remove([clip_id_for("/lib/bandai/walk_a.bvh")])
    searcher.refresh()
    assert [h.source for h in searcher.search_tokens([tokens], k=10)[0]] == ["/lib/bandai/wave_b.bvh"]


def test_empty_index_returns_no_results(tmp_path):
    with IndexWriter(tmp_path, SPEC):
        pass
    searcher = Searcher(IndexReader.open(tmp_path))
    assert searcher.search_tokens([unit(np.ones((2, DIM)))], k=5) == [[]]
