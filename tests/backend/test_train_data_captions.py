"""Caption templates: labels from file names, varied captions, left/right mirroring of labels."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from mofind.features.mirror import mirror_caption
from mofind.train.captions import CaptionTemplateError, CaptionTemplates, tidy

BANDAI = Path(__file__).resolve().parents[2] / "backend" / "mofind" / "train" / "templates" / "bandai.json"
CONTENTS = ["walk", "walk-turn-left", "walk-turn-right", "run", "wave-both-hands", "wave-left-hand",
            "wave-right-hand", "raise-up-both-hands", "raise-up-left-hand", "raise-up-right-hand"]
STYLES = ["active", "elderly", "exhausted", "feminine", "masculine", "normal", "youthful"]


@pytest.fixture(scope="module")
def bandai() -> CaptionTemplates:
    return CaptionTemplates.load(BANDAI)


def tiny(**overrides) -> dict:
    raw = {
        "pattern": r"take_(?P<action>[a-z-]+)_\d+",
        "shared": {"who": ["a person", "someone"]},
        "phrases": {"action": {
            "wave-left": {"verb": ["waves the left hand", "waves with {action_side} hand"], "side": ["the left"]},
            "wave-right": {"verb": ["waves the right hand", "waves with {action_side} hand"], "side": ["the right"]},
            "jump": {"verb": ["jumps"], "side": [""]},
        }},
        "templates": ["{who} {action_verb}"],
    }
    raw.update(overrides)
    return raw


def test_labels_come_from_the_file_name(bandai):
    assert bandai.labels_for("dataset-2_wave-left-hand_elderly_012.bvh") == {"content": "wave-left-hand", "style": "elderly"}
    assert bandai.labels_for(Path("x/dataset-2_walk-turn-right_normal_001.bvh")) == {"content": "walk-turn-right", "style": "normal"}
    assert bandai.labels_for("dataset-2_swim_normal_001") is None  # unknown content
    assert bandai.labels_for("my_take_001") is None


def test_bandai_template_covers_every_content_and_style_richly(bandai):
    assert sorted(bandai.phrases["content"]) == sorted(CONTENTS)
    assert sorted(bandai.phrases["style"]) == sorted(STYLES)
    rng = random.Random(0)
    for content in CONTENTS:
        for style in STYLES:
            labels = {"content": content, "style": style}
            captions = {bandai.sample(labels, rng) for _ in range(200)}
            assert len(captions) >= 60, (labels, len(captions))
            assert not any(re.search(r"[{}]|\s{2}|^,|,$| ,", c) for c in captions), captions
    # varied wording, not one verb: synonyms the queries may use
    verbs = " ".join(bandai.phrases["content"]["raise-up-left-hand"]["verb"])
    assert "lifts" in verbs and "raises" in verbs and "arm" in verbs and "hand" in verbs
    turns = " ".join(bandai.phrases["content"]["walk-turn-left"]["verb"])
    assert "veers left" in turns and "turns left" in turns


def test_side_words_always_match_the_label(bandai):
    rng = random.Random(1)
    for content in CONTENTS:
        for _ in range(100):
            caption = bandai.sample({"content": content, "style": "normal"}, rng)
            words = {re.sub(r"ward$", "", w) for w in re.findall(r"[a-z]+", caption)}  # leftward -> left
            if "left" in content:
                assert "left" in words and "right" not in words, caption
            elif "right" in content:
                assert "right" in words and "left" not in words, caption
            else:
                assert not {"left", "right"} & words, caption


def test_mirrored_labels_mirror_caption(bandai):
    assert bandai.mirror_labels({"content": "wave-left-hand", "style": "elderly"}) == {"content": "wave-right-hand", "style": "elderly"}
    assert bandai.mirror_labels({"content": "walk-turn-right", "style": "active"}) == {"content": "walk-turn-left", "style": "active"}
    assert bandai.mirror_labels({"content": "run", "style": "active"}) == {"content": "run", "style": "active"}
    one_sided = CaptionTemplates.from_dict(tiny(phrases={"action": {"wave-left": {"verb": ["waves left"]}}}))
    assert one_sided.mirror_labels({"action": "wave-left"}) is None


def test_left_and_right_phrasings_are_symmetric(bandai):
    """The model must not learn a side from wording differences: right phrasings are the left ones mirrored."""
    for left in ["walk-turn-left", "wave-left-hand", "raise-up-left-hand"]:
        left_slots, right_slots = bandai.phrases["content"][left], bandai.phrases["content"][mirror_caption(left)]
        assert {s: [mirror_caption(p) for p in ps] for s, ps in left_slots.items()} == {s: list(ps) for s, ps in right_slots.items()}


def test_canonical_caption_is_deterministic_and_nested_placeholders_resolve(bandai):
    assert bandai.canonical({"content": "wave-left-hand", "style": "elderly"}) == "an elderly person waves their left hand"
    t = CaptionTemplates.from_dict(tiny())
    rng = random.Random(3)
    assert {t.sample({"action": "wave-right"}, rng) for _ in range(50)} == {
        "a person waves the right hand", "someone waves the right hand",
        "a person waves with the right hand", "someone waves with the right hand"}


def test_tidy_removes_what_empty_phrasings_leave():
    assert tidy("  , a person  walks ,  ") == "a person walks"
    assert tidy("slowly, , a person walks") == "slowly, a person walks"


@pytest.mark.parametrize("change, message", [
    ({"pattern": "take_(?P<action>[a-z-]+"}, "not a valid regular expression"),
    ({"pattern": r"take_(?P<verb>[a-z-]+)_\d+"}, "no such named group"),
    ({"templates": ["{who} {action_nope}"]}, "{action_nope}"),
    ({"templates": ["{who} {mystery}"]}, "{mystery}"),
    ({"templates": []}, "non-empty list"),
    ({"shared": {"who": "x", "loop": ["{loop}"]}, "templates": ["{loop}"]}, "nested too deeply"),
])
def test_bad_template_files_are_reported_with_the_file_name(tmp_path, change, message):
    path = tmp_path / "studio.json"
    path.write_text(json.dumps(tiny(**change)))
    with pytest.raises(CaptionTemplateError, match=re.escape(message)) as info:
        CaptionTemplates.load(path)
    assert str(path) in str(info.value)


def test_unreadable_template_file_names_the_file(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(CaptionTemplateError, match="broken.json: not valid JSON"):
        CaptionTemplates.load(path)
    with pytest.raises(CaptionTemplateError, match="not found"):
        CaptionTemplates.load(tmp_path / "missing.json")
