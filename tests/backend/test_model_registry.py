"""Registered model variants: `compact-global` is `compact` trained and scored by the global-embedding baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mofind.features.normalize import AngleStats
from mofind.model.config import ModelConfig
from mofind.model.maxsim import global_similarity, maxsim
from mofind.model.registry import build_model, config_names, get_config
from mofind.train.loop import TrainConfig, Trainer
from mofind.train.objectives import positive_matrix, symmetric_info_nce

CAPTIONS = ["a person waves the left hand", "someone raises the right arm", "a man walks and turns left",
            "an elderly woman runs"]


def test_compact_global_is_compact_except_its_scoring():
    assert "compact-global" in config_names()
    variant, base = get_config("compact-global").to_dict(), get_config("compact").to_dict()
    assert (variant.pop("name"), variant.pop("scoring")) == ("compact-global", "global")
    assert (base.pop("name"), base.pop("scoring")) == ("compact", "maxsim")
    assert variant == base
    # the scoring survives the config.json round trip a run folder / shipped model relies on
    assert ModelConfig.from_json(get_config("compact-global").to_json()).scoring == "global"
    assert TrainConfig(model="compact-global").model_config().scoring == "global"


class FixedItems:
    """Four compact-sized windows with different lengths (so padded patches exist) and distinct captions."""

    def __init__(self, frames: int):
        rng = np.random.default_rng(0)
        self.items = []
        for i, (caption, valid) in enumerate(zip(CAPTIONS, (frames, 50, 17, frames))):
            x = rng.standard_normal((frames, 29)).astype(np.float32)
            x[valid:] = 0.0
            self.items.append({"x": x, "valid_len": valid, "caption": caption, "take_id": f"take{i}"})

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        return self.items[index]


@pytest.mark.slow
def test_compact_global_trains_info_nce_on_pooled_cosine_not_maxsim():
    config = TrainConfig.from_dict(dict(model="compact-global", batch_size=4, mlm_weight=0.0, precision="fp32",
                                        device="cpu", seed=0))
    torch.manual_seed(0)
    model = build_model(config.model_config(), load_text_weights=False)
    data = FixedItems(config.model_config().motion.frames)
    trainer = Trainer(config, data, None, AngleStats(np.zeros(41), np.ones(41)), "/nonexistent-unused",
                      progress=False, model=model)
    batch = trainer.collate([data[i] for i in range(4)])
    model.eval()  # no dropout, so the loss is a deterministic function of the embeddings
    with torch.no_grad():
        loss = float(trainer.losses(batch, torch.Generator().manual_seed(0))["contrastive"])
        patches, patch_valid = model.encode_motion(batch["x"], batch["valid_len"])
        tokens, token_valid = model.encode_text(batch["input_ids"], batch["attention_mask"])
        positives = positive_matrix(batch["captions"], batch["take_ids"])
        scale = model.temperature_scale()
        pooled = global_similarity(tokens, token_valid, patches, patch_valid)
        late = maxsim(tokens, token_valid, patches, patch_valid)
        expected = float(symmetric_info_nce((pooled * scale).float(), positives))
        maxsim_loss = float(symmetric_info_nce((late * scale).float(), positives))
        ranking = model.similarity(tokens, token_valid, patches, patch_valid)
    assert not patch_valid.all()  # padded windows exist, so the patch mask matters
    assert loss == pytest.approx(expected, rel=1e-5)
    assert abs(loss - maxsim_loss) > 1e-3
    assert torch.allclose(ranking, pooled, atol=1e-6)
    # pooling over the valid patches only: padded rows must not shift a short clip's global vector
    assert not torch.allclose(pooled, global_similarity(tokens, token_valid, patches, None), atol=1e-4)
