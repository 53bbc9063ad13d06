"""The library's own words in search: collected from names, sidecars and tables at index time, fused with MaxSim.

Real BVH files (synthetic fixture), the real encoder (shipped weights, else the random compact model) and real
index builds. The same takes are indexed twice, under anonymised names and under descriptive ones: anonymised
names must leave today's ranking exactly as it was; descriptive names and labels must lift the right take.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from fixtures.synthetic import write_action_bvh
from mofind.index.build import build_index
from mofind.index.library_text import label_text, name_text, split_words, take_texts
from mofind.index.search import Searcher
from mofind.index.store import ClipRecord, IndexReader
from mofind.index.text_match import stem

ACTIONS = {"walk": "Locomotion/Walking_Forward_01", "wave_left": "Gestures/WaveLeftHand_take2",
           "raise_both": "Gestures/raise-both-arms", "turn_left": "Locomotion/TurnLeft90",
           "idle": "Idle/standing_idle_003", "turn_right": "Locomotion/turn_right_02",
           "wave_right": "Gestures/Wave_Right_Hand", "raise_left": "Gestures/RaiseLeftArm"}
QUERIES = {"walking forward": "walk", "a person waves the left hand": "wave_left",
           "someone raises both arms": "raise_both", "standing idle": "idle"}


@pytest.fixture(scope="module")
def encoder():
    from mofind.index.encoders import weights_present
    from mofind.model.inference import Encoder

    return Encoder.load() if weights_present() else Encoder.random("compact")


@pytest.fixture(scope="module")
def libraries(tmp_path_factory, encoder):
    """(anonymised index, named index, named root): the same takes under numbers and under descriptive names."""
    root = tmp_path_factory.mktemp("libraries")
    anonymous, named = root / "0417", root / "Studio_Library"
    anonymous.mkdir()
    for number, (action, name) in enumerate(ACTIONS.items()):
        source = write_action_bvh(anonymous / f"{number:04d}.bvh", "bandai", action, seconds=3.0, seed=number)
        target = named / f"{name}.bvh"
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    for folder in (anonymous, named):
        report = build_index([folder], root / f"index-{folder.name}", encoder, workers=0)
        assert not report.failed and report.indexed == len(ACTIONS)
    return root / f"index-{anonymous.name}", root / f"index-{named.name}", named


def ranking(hits):
    return [(h.clip_id, h.start_frame, h.end_frame, h.score) for h in hits]


def test_words_are_split_from_names_with_numbers_and_generic_words_dropped():
    assert split_words("Sitting_Down_Chair_03") == ["sitting", "down", "chair"]
    assert split_words("WaveLeftHand-take2 v10") == ["wave", "left", "hand", "take"]
    assert name_text("/lib/Locomotion/Sit/Sitting_Down_Chair_03.fbx", "/lib/Locomotion", "Armature|Take 001") == \
        "locomotion sit sitting down chair"
    assert name_text("/data/new_joints/012314.npy", "/data") == ""
    assert [stem(w) for w in ("sitting", "sits", "waves", "waving", "raised", "dancing", "dance")] == \
        ["sit", "sit", "wav", "wav", "rais", "danc", "danc"]


def test_labels_come_from_sidecars_folder_tables_and_humanml3d_captions(tmp_path):
    lib = tmp_path / "lib"
    (lib / "a").mkdir(parents=True)
    for name in ("one", "two", "three", "four", "five"):
        (lib / "a" / f"{name}.bvh").write_text("")
    (lib / "a" / "one.txt").write_text("a person sits down on a chair\n")
    (lib / "a" / "two.json").write_text(json.dumps({"description": "jumping jacks", "labels": ["cardio"]}))
    (lib / "a" / "descriptions.csv").write_text("file,description\nthree.bvh,cartwheel to the left\n")
    (lib / "captions.json").write_text(json.dumps({"four": {"file": "a/four.bvh", "cmu_description": "salsa"},
                                                   "five": ["kick", "a high kick"]}))
    assert label_text(lib / "a" / "one.bvh", root=lib) == "a person sits down on a chair"
    assert label_text(lib / "a" / "two.bvh", root=lib) == "jumping jacks; cardio"
    assert label_text(lib / "a" / "three.bvh", root=lib) == "cartwheel to the left"
    assert label_text(lib / "a" / "four.bvh", root=lib) == "salsa"
    assert label_text(lib / "a" / "five.bvh", root=lib) == "kick; a high kick"
    assert label_text(lib / "a" / "five.bvh") == ""  # tables above the file count only below the indexed root
    (lib / "a" / "broken.json").write_text("{not json")
    (lib / "a" / "broken.bvh").write_text("")
    assert take_texts(lib / "a" / "broken.bvh", lib) == {"name": "lib broken"}
    h3d = tmp_path / "humanml3d"
    (h3d / "new_joints").mkdir(parents=True)
    (h3d / "texts").mkdir()
    (h3d / "new_joints" / "000001.npy").write_bytes(b"")
    (h3d / "texts" / "000001.txt").write_text("a man walks in a circle#a/DET man/NOUN#0.0#0.0\n"
                                              "someone circles around#someone/PRON#0.0#0.0\n")
    assert take_texts(h3d / "new_joints" / "000001.npy", h3d) == {
        "name": "humanml", "label": "a man walks in a circle; someone circles around"}


def test_a_folder_is_listed_once_for_all_its_takes_and_again_when_a_table_is_added_or_edited(tmp_path):
    """Every take of a folder asks for its description tables: the folder is listed once per version of it (the
    4,612-entry Bandai folder listed and sorted for each take cost 34 ms a take), and a table added, renamed or
    edited afterwards is still read."""
    import os

    from mofind.index.library_text import _table_files

    folder = tmp_path / "flat"
    folder.mkdir()
    for n in range(300):
        (folder / f"take_{n:03d}.bvh").write_text("")
    _table_files.cache_clear()
    assert all(label_text(folder / f"take_{n:03d}.bvh") == "" for n in range(300))
    assert _table_files.cache_info().misses == 1
    (folder / "Labels.CSV").write_text("file,label\ntake_007.bvh,a cartwheel\n")  # any case, as before
    assert label_text(folder / "take_007.bvh") == "a cartwheel"
    assert _table_files.cache_info().misses == 2
    (folder / ".hidden_captions.json").write_text(json.dumps({"take_008": "ignored"}))  # hidden: skipped
    assert label_text(folder / "take_008.bvh") == ""
    table = folder / "Labels.CSV"
    table.write_text("file,label\ntake_007.bvh,a slow cartwheel\n")  # edited in place: the folder is unchanged
    os.utime(table, ns=(table.stat().st_atime_ns, table.stat().st_mtime_ns + 1_000_000))
    assert label_text(folder / "take_007.bvh") == "a slow cartwheel"
    table.rename(folder / "notes.csv")
    assert label_text(folder / "take_007.bvh") == ""


def test_index_stores_each_takes_words_and_old_records_stay_readable(libraries):
    _, named_index, _ = libraries
    records = {Path(r.source).stem: r for r in IndexReader.open(named_index).clips()}
    record = records["Walking_Forward_01"]
    assert record.text == {"name": "studio locomotion walking forward"}  # "library" is generic
    assert set(record.text_vectors) == {"name"}
    old = record.to_dict()
    for key in ("text", "text_vectors", "take"):
        old.pop(key)
    assert ClipRecord.from_dict(old).text == {}  # an index written before names were collected
    assert ClipRecord.from_dict(old | {"a_future_field": 1}).clip_id == record.clip_id


@pytest.mark.parametrize("mode", ["exact", "two_stage"])
def test_anonymised_file_names_give_exactly_the_motion_ranking(libraries, encoder, mode):
    anonymous_index, _, _ = libraries
    searcher = Searcher(IndexReader.open(anonymous_index), encoder)
    for query in QUERIES:
        motion_only = searcher.search(query, k=5, names_weight=0.0, mode=mode)
        for weight in (0.25, 1.0, 10.0):
            fused = searcher.search(query, k=5, names_weight=weight, mode=mode)
            assert ranking(fused) == ranking(motion_only)
            assert all("name" not in h.matched and "label" not in h.matched for h in fused)


def test_descriptive_names_put_the_right_take_first_and_say_so(libraries, encoder):
    _, named_index, named = libraries
    searcher = Searcher(IndexReader.open(named_index), encoder)
    for query, action in QUERIES.items():
        expected = str(named / f"{ACTIONS[action]}.bvh")
        motion_rank = [h.source for h in searcher.search(query, k=len(ACTIONS), names_weight=0.0)].index(expected)
        hits = searcher.search(query, k=len(ACTIONS), names_weight=0.25)
        assert hits[0].source == expected, (query, [h.source for h in hits])
        assert "name" in hits[0].matched and motion_rank >= 0
        # two-stage with a one-window shortlist still finds the well-named take
        assert searcher.search(query, k=1, names_weight=0.25, mode="two_stage", candidates=1)[0].source == expected


def test_queries_searched_together_rank_as_each_alone_rescue_included(libraries, encoder):
    """The name rescue re-scores windows with each query's own quantised batch (`_QueryBatch.alone`): a batch
    of queries must give each query what searching it alone gives (scores to float32 rounding: the batch's
    products sum its rows in another order)."""
    _, named_index, _ = libraries
    searcher = Searcher(IndexReader.open(named_index), encoder)
    texts = list(QUERIES)
    token_sets = [tokens for tokens, _ in encoder.encode_texts(texts)]
    together = searcher.search_tokens(token_sets, k=3, mode="two_stage", candidates=1, texts=texts,
                                      names_weight=0.25)
    for tokens, text, hits in zip(token_sets, texts, together):
        alone = searcher.search_tokens([tokens], k=3, mode="two_stage", candidates=1, texts=[text],
                                       names_weight=0.25)[0]
        assert [r[:3] for r in ranking(hits)] == [r[:3] for r in ranking(alone)]
        np.testing.assert_allclose([h.score for h in hits], [h.score for h in alone], rtol=1e-6)
        assert [h.matched for h in hits] == [h.matched for h in alone]
        assert "name" in hits[0].matched  # the rescue ran: a one-window shortlist still found the named take


def test_labels_from_a_table_lift_takes_with_anonymous_names(tmp_path, libraries, encoder):
    anonymous_index, _, _ = libraries
    folder = Path(IndexReader.open(anonymous_index).clips()[0].source).parent
    library = tmp_path / "takes"
    shutil.copytree(folder, library)
    wave = list(ACTIONS).index("wave_left")
    (library / "descriptions.json").write_text(json.dumps({f"{wave:04d}": "waving hello with the left hand"}))
    build_index([library], tmp_path / "index", encoder, workers=0)
    hits = Searcher(IndexReader.open(tmp_path / "index"), encoder).search("someone waves", k=3)
    assert Path(hits[0].source).name == f"{wave:04d}.bvh" and "label" in hits[0].matched


def test_a_takes_text_score_does_not_depend_on_which_other_takes_are_scored_with_it():
    """A shard scores a slice of the takes; each take must get the very same float score as in the whole library,
    or ties between equally named takes break differently on a cluster (cluster.py promises equal results)."""

    from mofind.index.text_match import SOURCES, LibraryText, encode_vector

    rng = np.random.default_rng(3)
    query = rng.standard_normal(384).astype(np.float32)
    query /= np.linalg.norm(query)
    vectors = query + rng.uniform(0.3, 1.0, (600, 1)) * rng.standard_normal((600, 384)).astype(np.float32) / 20
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    clips = [{"text": {SOURCES[0]: f"take {i}"}, "text_vectors": {SOURCES[0]: encode_vector(v)}}
             for i, v in enumerate(vectors)]
    whole = LibraryText.of(clips, 384).scores("a person walks", query)
    for start, stop in ((0, 5), (3, 600), (17, 37), (1, 2), (7, 517)):
        part = LibraryText.of(clips[start:stop], 384).scores("a person walks", query)
        assert np.array_equal(part, whole[start:stop]), (start, stop)
    assert 0.0 < whole[:, 0].min() < whole[:, 0].max() < 1.0  # the semantic scores vary (not all clipped)


@pytest.mark.parametrize("seed", range(6))
def test_top_k_and_the_rescued_takes_are_what_sorting_everything_gives(seed):
    """The partial selections equal the full stable sorts they replace, ties and unscored windows included, and
    each take's best source is its row maximum."""

    from mofind.index.text_match import SOURCES, SearchedTakes, _rescued_windows, _top_clips, _top_k_stable, \
        best_source

    rng = np.random.default_rng(seed)
    per_source = np.where(rng.random((90, len(SOURCES))) < 0.4, 0.0, rng.random((90, len(SOURCES))))
    np.testing.assert_array_equal(best_source(per_source), per_source.max(axis=1))
    values = rng.integers(0, 6, 300).astype(np.float64)  # many ties
    values[rng.random(300) < 0.2] = -np.inf
    for k in (1, 5, 50, 400):
        np.testing.assert_array_equal(_top_k_stable(values, k), np.argsort(-values, kind="stable")[:k])
    clips = rng.integers(0, 90, 300)  # windows of 90 takes, each take's windows anywhere
    takes = SearchedTakes.of(clips, 90)
    bonus = np.where(rng.random(90) < 0.5, rng.integers(0, 4, 90) / 4, 0.0)
    for k in (1, 3, 10, 100):
        best = np.full(90, -np.inf)  # the per-window rule: each take's best window, all takes sorted
        finite = np.isfinite(values)
        np.maximum.at(best, clips[finite], values[finite])
        assert _top_clips(clips, values, k) == {int(c) for c in np.argsort(-best, kind="stable")[:k]
                                                if np.isfinite(best[c])}
        missing = ~np.isfinite(values) & (bonus[clips] > 0)
        named = np.full(90, -np.inf)
        np.maximum.at(named, clips[missing], bonus[clips][missing])
        chosen = [c for c in np.argsort(-named, kind="stable")[:k] if np.isfinite(named[c])]
        expected = np.flatnonzero(missing & np.isin(clips, chosen))
        scored = np.flatnonzero(np.isfinite(values))
        np.testing.assert_array_equal(_rescued_windows(takes, clips[scored], values, bonus, k), expected)


def test_matched_never_comes_back_empty_a_take_lifted_by_a_weak_name_lists_both():
    """A take among the top k by neither MaxSim alone nor a name or label score at MATCH_THRESHOLD got there by
    both together: it says so, instead of an empty `matched` that read as "nothing matched"."""
    from types import SimpleNamespace


    from mofind.index.text_match import MATCH_THRESHOLD, Fusion, annotate

    snapshot = SimpleNamespace(clips=[{"clip_id": c} for c in "abcd"])
    text = np.array([[0.9, 0.0], [0.9, 0.0], [MATCH_THRESHOLD / 2, 0.0], [0.0, 0.0]])
    hits = [SimpleNamespace(clip_id=c, matched=None) for c in "abcd"]
    annotate(hits, Fusion(text, motion_top={0, 3}), snapshot)
    assert [h.matched for h in hits] == [["motion", "name"], ["name"], ["motion", "name"], ["motion"]]
    annotate(hits[:1], None, snapshot)
    assert hits[0].matched == ["motion"]


def test_takes_that_share_a_text_are_scored_once_and_each_gets_its_own_sources():
    """Distinct texts are scored once and gathered to the takes that share them: every take gets the score its
    own text (and vector) earns, a take without a source gets 0 there, and a slice of the takes scores the same."""

    from mofind.index.text_match import SOURCES, LibraryText, encode_vector

    rng = np.random.default_rng(5)
    query = rng.standard_normal(64).astype(np.float32)
    query /= np.linalg.norm(query)
    near = query + rng.standard_normal(64).astype(np.float32) / 8
    far = rng.standard_normal(64).astype(np.float32)
    near, far = near / np.linalg.norm(near), far / np.linalg.norm(far)
    kinds = [("wave left hand", near), ("jump", far), ("wave left hand", far), None]  # the same text, two vectors
    clips = []
    for i in range(40):
        kind = kinds[i % 4]
        clip = {"text": {}, "text_vectors": {}}
        if kind is not None:
            clip["text"][SOURCES[0]], clip["text_vectors"][SOURCES[0]] = kind[0], encode_vector(kind[1])
        if i % 5 == 0:
            clip["text"][SOURCES[1]], clip["text_vectors"][SOURCES[1]] = "waving", encode_vector(near)
        clips.append(clip)
    table = LibraryText.of(clips, 64)
    assert [len(v) for v in table.vectors] == [3, 1]  # (text, vector) pairs, not takes
    scores = table.scores("someone waves the left hand", query)
    for i, clip in enumerate(clips):  # each take alone: what a library of that one take gives it
        assert np.array_equal(scores[i], LibraryText.of([clip], 64).scores("someone waves the left hand", query)[0])
    assert np.all(scores[3::4, 0] == 0) and np.all(scores[[i for i in range(40) if i % 5], 1] == 0)
    assert scores[0, 0] == scores[2, 0] == 1.0 and scores[1, 0] == 0.0  # its words match whatever its vector
    assert 0 < table.scores("someone hops", query)[0, 0] and table.scores("someone hops", query)[2, 0] == 0.0
    assert np.array_equal(LibraryText.of(clips[7:29], 64).scores("someone waves the left hand", query), scores[7:29])
