"""The trained vocabulary: which query words a model never learned (mofind.model.vocabulary, vocabulary.json)."""

from __future__ import annotations

import doctest
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import mofind.model.vocabulary as vocabulary_module
from mofind.model.vocabulary import (Vocabulary, build_vocabulary, merge_vocabularies, read_vocabulary,
                                     template_texts, word_forms)
from mofind.train.bandai import TEMPLATES
from mofind.train.captions import CaptionTemplates

REPO = Path(__file__).resolve().parents[2]


def test_doctests():
    assert doctest.testmod(vocabulary_module).failed == 0


def test_build_vocabulary_lists_sorted_lowercase_words_and_counts_captions_per_source():
    built = build_vocabulary({"labels": ["A person WAVES the left hand", "someone runs"],
                              "describer": ["the left knee lifts, then the person's arm swings"]})
    assert built["words"] == sorted(set(built["words"]))
    assert {"waves", "left", "knee", "person's", "swings"} <= set(built["words"])
    assert all(word == word.lower() for word in built["words"])
    assert built["sources"] == {"labels": 2, "describer": 1}
    assert build_vocabulary(["one two"])["sources"] == {"captions": 1}
    merged = merge_vocabularies(built, build_vocabulary({"labels": ["a cartwheel"]}))
    assert "cartwheel" in merged["words"] and merged["sources"]["labels"] == 3
    with pytest.raises(TypeError):
        build_vocabulary({"labels": "a single string is not a list of captions"})


@pytest.mark.parametrize("query, trained", [("waving", "waves"), ("waved", "wave"), ("runs", "running"),
                                            ("stepped", "steps"), ("carried", "carries"), ("turning", "turn")])
def test_inflections_match(query, trained):
    assert Vocabulary.from_dict(build_vocabulary([trained])).knows(query)


def test_suffix_rules_do_not_strip_what_is_part_of_the_word():
    vocabulary = Vocabulary.from_dict(build_vocabulary(["s b ed kick-off"]))
    assert not vocabulary.knows("sing") and not vocabulary.knows("bed") and not vocabulary.knows("cartwheel")
    assert vocabulary.knows("kicks") and vocabulary.knows("kicking")


def test_unknown_words_are_content_words_in_query_order_without_stopwords():
    vocabulary = Vocabulary.from_dict(build_vocabulary(["a person waves the left hand"]))
    assert vocabulary.unknown_words("The person does a CARTWHEEL and then a backflip, a cartwheel") == \
        ["cartwheel", "backflip"]
    assert vocabulary.unknown_words("a person waves the left hand") == []
    assert vocabulary.known_fraction("a person waves the left hand") == 1.0
    assert vocabulary.known_fraction("the a of") == 0.0  # nothing to match on
    assert vocabulary.known_fraction("person cartwheel") == 0.5


def test_read_vocabulary_names_the_file_when_malformed(tmp_path):
    path = tmp_path / "vocabulary.json"
    path.write_text("{not json")
    with pytest.raises(ValueError, match="vocabulary.json"):
        read_vocabulary(path)
    path.write_text(json.dumps({"words": "walk"}))
    with pytest.raises(ValueError, match="'words' list"):
        Vocabulary.load(tmp_path)
    assert Vocabulary.load(tmp_path / "absent") is None


def test_template_texts_cover_every_word_a_sampled_caption_can_hold():
    import random

    templates = CaptionTemplates.load(TEMPLATES)
    vocabulary = Vocabulary.from_dict(build_vocabulary(template_texts(templates)))
    rng = random.Random(3)
    for content in templates.phrases["content"]:
        for style in templates.phrases["style"]:
            caption = templates.sample({"content": content, "style": style}, rng)
            assert not [w for w in vocabulary_module.words_of(caption) if w not in vocabulary.words], caption


def test_shipped_vocabulary_holds_every_template_word():
    shipped = REPO / "model_weights" / "vocabulary.json"
    if not shipped.is_file():
        pytest.skip("model_weights/vocabulary.json is absent")
    words = set(read_vocabulary(shipped)["words"])
    template_words = set(build_vocabulary(template_texts(CaptionTemplates.load(TEMPLATES)))["words"])
    assert template_words <= words


def test_model_vocabulary_command_writes_the_file(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(REPO / "backend")}
    done = subprocess.run([sys.executable, "-m", "mofind.cli", "model", "vocabulary", "--model", str(tmp_path)],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    written = read_vocabulary(tmp_path / "vocabulary.json")
    assert len(written["words"]) > 100 and "waves" in written["words"] and "cartwheel" not in written["words"]
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    done = subprocess.run([sys.executable, "-m", "mofind.cli", "model", "vocabulary", "--model", str(tmp_path),
                           "--templates", str(bad)], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and "bad.json" in done.stderr
