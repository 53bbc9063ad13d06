"""The shipped model's corpus: mixing sources, the CMU split, the vocabulary file."""

from __future__ import annotations

import json

import pytest

from mofind.model.vocabulary import build_vocabulary, merge_vocabularies, read_vocabulary, words_of
from pathlib import Path

import torch

from mofind.train.data import Segment
from mofind.train.mix import MixedDataset, content_family, content_keys, grouped_order, phrase_spans


class Counting:
    """A source that records which epoch each item was read in."""

    def __init__(self, n, name):
        self.n, self.name, self.epoch = n, name, 0

    def set_epoch(self, epoch):
        self.epoch = epoch

    def __len__(self):
        return self.n

    def __getitem__(self, index):
        return (self.name, index, self.epoch)


def test_mixed_dataset_repeats_small_sources_with_new_draws_and_rotates_large_ones():
    small, large = Counting(2, "small"), Counting(10, "large")
    mixed = MixedDataset([(small, 5), (large, 3)])
    assert len(mixed) == 8
    items = [mixed[i] for i in range(len(mixed))]
    assert [i[:2] for i in items[:5]] == [("small", 0), ("small", 1), ("small", 0), ("small", 1), ("small", 0)]
    assert len({i[2] for i in items[:5]}) == 3  # three passes over the small source, each its own draw
    assert [i[1] for i in items[5:]] == [0, 1, 2]
    mixed.set_epoch(1)
    assert [mixed[i][1] for i in range(5, 8)] == [3, 4, 5]  # the large source moves on
    assert mixed[0] != items[0]
    with pytest.raises(ValueError):
        MixedDataset([(Counting(0, "empty"), 3)])


class Labelled:
    """A labelled source: only its segments are read by `content_keys`."""

    def __init__(self, contents):
        self.segments = [Segment(f"t{i}", Path(f"t{i}.bvh"), labels=(("content", c), ("style", "s")))
                         for i, c in enumerate(contents)]

    def __len__(self):
        return len(self.segments)


def test_content_family_drops_the_side():
    assert content_family("wave-left-hand") == content_family("wave-both-hands") == "wave-hand"
    assert content_family("walk-turn-right") == "walk-turn"
    assert content_family("run") == "run"


def test_grouped_batches_keep_every_item_and_put_one_content_together():
    contents = ["wave-left-hand", "walk", "run", "raise-up-right-hand", "walk-turn-left", "kick"] * 20
    labelled, free = Labelled(contents), Counting(40, "free")
    mixed = MixedDataset([(labelled, 120), (free, 40)])
    keys = content_keys(mixed, epoch=0)
    assert keys[:120] == [content_family(c) for c in contents] and keys[120:] == [None] * 40
    assert content_keys(mixed, epoch=1)[:3] == keys[:3]  # 120 of 120: the rotation comes back to the start

    order = torch.randperm(len(mixed), generator=torch.Generator().manual_seed(0)).tolist()
    grouped = grouped_order(order, keys, batch_size=16, block=5, generator=torch.Generator().manual_seed(1))
    for start in range(0, len(order), 80):  # each run of 5 batches holds the same items as before
        assert sorted(grouped[start:start + 80]) == sorted(order[start:start + 80])

    def families_per_batch(sequence):
        return [len({keys[i] for i in sequence[b:b + 16] if keys[i]}) for b in range(0, len(sequence), 16)]

    assert max(families_per_batch(grouped)) <= 3 < min(families_per_batch(order))
    free_share = [sum(keys[i] is None for i in grouped[b:b + 16]) for b in range(0, len(grouped), 16)]
    assert max(free_share) - min(free_share) <= 2  # unlabelled items are spread, not left at the end


def test_phrase_spans_find_each_phrase_after_the_previous_one():
    class Phrase:
        def __init__(self, text, parts):
            self.text, self.parts = text, parts

    sentence = "a person raises the left arm, then raises the left arm again"
    spans = phrase_spans(sentence, [Phrase("raises the left arm", ("l_shoulder",)),
                                    Phrase("raises the left arm", ("l_elbow",)), Phrase("absent", ("neck",))])
    assert [(sentence[a:b], p) for a, b, p in spans] == [("raises the left arm", ("l_shoulder",)),
                                                         ("raises the left arm", ("l_elbow",))]
    assert spans[1][0] > spans[0][0]


def test_vocabulary_lists_words_and_counts_sources(tmp_path):
    vocabulary = build_vocabulary({"templates": ["A person waves the left-hand", "someone's jog"],
                                   "humanml3d": ["a man jogs"]})
    assert vocabulary["words"] == sorted(vocabulary["words"])
    assert {"left", "hand", "someone's", "jogs"} <= set(vocabulary["words"]) and "A" not in vocabulary["words"]
    assert vocabulary["sources"] == {"templates": 2, "humanml3d": 1}
    merged = merge_vocabularies(vocabulary, build_vocabulary({"humanml3d": ["a cartwheel"]}))
    assert "cartwheel" in merged["words"] and merged["sources"]["humanml3d"] == 2
    path = tmp_path / "vocabulary.json"
    path.write_text(json.dumps(merged))
    assert read_vocabulary(path) == merged
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="vocabulary.json"):
        read_vocabulary(path)
    assert words_of("Kicks, then turns LEFT!") == ["kicks", "then", "turns", "left"]


@pytest.mark.usefixtures("shared")
def test_cmu_split_is_deterministic_by_take_and_holds_out_a_third_of_the_captioned_takes():
    from mofind.train.cmu import load_takes
    from mofind.train.corpus import cmu_group, cmu_split

    takes = load_takes()
    train, val = cmu_split(takes)
    assert (train, val) == cmu_split(list(reversed(takes)))
    assert not {t.take_id for t in train} & {t.take_id for t in val}
    assert len(train) + len(val) == len(takes)
    captioned = [t for t in takes if t.segments]
    held = [t for t in val if t.segments]
    assert abs(len(held) - len(captioned) / 3) <= 1
    assert any(not t.segments for t in val)  # some uncaptioned takes too
    train_groups = {cmu_group(t) for t in train}
    assert not any(cmu_group(t) in train_groups for t in val)  # repeated takes stay on one side
    from mofind.train.corpus import heldout_texts, humanml3d_segments, normalise_text

    held_texts = heldout_texts(val)
    trained = {normalise_text(c) for s in humanml3d_segments(train, exclude=held_texts) for c in s.captions}
    assert trained and not trained & held_texts  # a generic caption shared by two takes is not trained on
