"""Reproduce the official pipeline's outputs on the tiny reference model (shared/reference/motioncolbert)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mofind.model.checkpoint import load_official
from mofind.model.maxsim import token_patch_similarities

pytestmark = pytest.mark.needs_shared
MOTIONS = ["012314", "012314_first60", "012314_fwdrev", "M012314"]


@pytest.fixture(scope="module")
def bundle(reference_dir):
    return load_official(reference_dir / "tiny_model" / "motioncolbert_tiny.pt", reference_dir / "stats",
                         config="official-tiny", tokenizer=str(reference_dir / "tokenizer"))


@pytest.fixture(scope="module")
def outputs(reference_dir):
    out = reference_dir / "outputs"
    data = {name: dict(np.load(out / f"{name}.npz")) for name in
            ["text_batch", "scores", "pair", "mlm_check"] + [f"motion_{m}" for m in MOTIONS]}
    data["meta"] = json.loads((out / "meta.json").read_text())
    return data


@pytest.fixture(scope="module")
def motion_batch(outputs):
    x = torch.from_numpy(np.stack([outputs[f"motion_{m}"]["x"] for m in MOTIONS]))
    lengths = torch.tensor([int(outputs[f"motion_{m}"]["m_length"]) for m in MOTIONS])
    return x, lengths


def test_logit_scale_is_float64_and_untouched(bundle):
    assert bundle.model.logit_scale.dtype == torch.float64
    assert bundle.model.logit_scale.item() == pytest.approx(np.log(1 / 0.07), abs=1e-12)


def test_motion_image_vit_tokens_and_patches(bundle, outputs, motion_batch):
    model = bundle.model
    x, lengths = motion_batch
    with torch.no_grad():
        image = model.motion_encoder.image(x)
        tokens = model.motion_encoder(x)
        patches, valid = model.encode_motion(x, lengths)
    assert torch.equal(image[:, 0], image[:, 2])
    for i, name in enumerate(MOTIONS):
        ref = outputs[f"motion_{name}"]
        np.testing.assert_allclose(image[i, 0].numpy(), ref["image"], atol=1e-5, err_msg=name)
        np.testing.assert_allclose(tokens[i].numpy(), ref["vit_tokens"], atol=1e-5, err_msg=name)
        np.testing.assert_allclose(patches[i].numpy(), ref["patch_emb"], atol=1e-6, err_msg=name)
    # the 60-frame clip: rows 0..3 (frames 0..63) hold real frames, the rest is padding
    assert valid[1].reshape(14, 14)[:4].all() and not valid[1].reshape(14, 14)[4:].any()


def test_text_tokens_and_batched_sep_quirk(bundle, outputs):
    ref = outputs["text_batch"]
    enc = bundle.tokenizer(outputs["meta"]["captions"], padding=True, truncation=True, return_tensors="pt")
    assert enc["input_ids"].numpy().tolist() == ref["input_ids"].tolist()
    assert enc["attention_mask"].numpy().tolist() == ref["attention_mask"].tolist()
    with torch.no_grad():
        states = bundle.model.text_encoder(enc["input_ids"], enc["attention_mask"])
        tokens, valid = bundle.model.encode_text(enc["input_ids"], enc["attention_mask"], official_batch_tokens=True)
        _, product_valid = bundle.model.encode_text(enc["input_ids"], enc["attention_mask"])
    real = ref["attention_mask"].astype(bool)
    np.testing.assert_allclose(states.numpy()[real], ref["last_hidden_state"][real], atol=1e-5)
    np.testing.assert_allclose(tokens.numpy(), ref["token_emb"], atol=1e-6)
    assert valid.numpy().tolist() == ref["token_valid_mask"].tolist()
    # product mode never scores [SEP]: exactly one token fewer per caption than the official mask
    assert (valid.sum(1) - product_valid.sum(1)).tolist() == [1, 0, 1, 1, 1]


def test_scores_batched_single_and_scaled(bundle, outputs, motion_batch):
    model = bundle.model
    x, lengths = motion_batch
    captions = outputs["meta"]["captions"]
    enc = bundle.tokenizer(captions, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        patches, patch_valid = model.encode_motion(x, lengths)
        tokens, valid = model.encode_text(enc["input_ids"], enc["attention_mask"], official_batch_tokens=True)
        unscaled = model.similarity(tokens, valid, patches, patch_valid)
        scaled = model(x, lengths, enc["input_ids"], enc["attention_mask"], official_batch_tokens=True)
        single = []
        for caption in captions:
            one = bundle.tokenizer([caption], padding=True, truncation=True, return_tensors="pt")
            t, v = model.encode_text(one["input_ids"], one["attention_mask"])
            single.append(model.similarity(t, v, patches, patch_valid)[0])
    scores = outputs["scores"]
    np.testing.assert_allclose(unscaled.numpy(), scores["scores_unscaled_eval"], atol=1e-6)
    np.testing.assert_allclose(scaled.numpy(), scores["scores_scaled"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(torch.stack(single).numpy(), scores["scores_unscaled_single_caption"], atol=1e-6)
    assert float(model.temperature_scale().detach()) == pytest.approx(float(scores["logit_scale_exp"]), rel=1e-12)


def test_pair_cosine_matrix(bundle, outputs):
    pair = outputs["pair"]
    model = bundle.model
    enc = bundle.tokenizer(outputs["meta"]["captions"], padding=True, truncation=True, return_tensors="pt")
    x = torch.from_numpy(outputs["motion_012314"]["x"][None])
    with torch.no_grad():
        tokens, _ = model.encode_text(enc["input_ids"], enc["attention_mask"], official_batch_tokens=True)
        patches, _ = model.encode_motion(x)
    cos = token_patch_similarities(tokens[0].numpy(), patches[0].numpy())
    assert enc["input_ids"][0, 1:9].tolist() == pair["token_ids"].tolist()
    np.testing.assert_allclose(cos, pair["cos"], atol=1e-6)
    assert cos.argmax(1).tolist() == pair["token_argmax_patch"].tolist()
    assert cos.max(1).mean() == pytest.approx(float(pair["score_unscaled"]), abs=1e-6)


def test_mlm_loss(bundle, outputs):
    mlm = outputs["mlm_check"]
    ids = torch.from_numpy(mlm["masked_input_ids"])
    mask = torch.from_numpy(mlm["attention_mask"])
    with torch.no_grad():
        loss = bundle.model.text_encoder.mlm_loss(ids, mask, torch.from_numpy(mlm["labels"]))
        logits = bundle.model.text_encoder.text_model(input_ids=ids, attention_mask=mask).logits
    assert float(loss) == pytest.approx(float(mlm["loss"]), abs=1e-5)
    np.testing.assert_allclose(logits[0, 4].numpy(), mlm["logits_at_mask"], atol=1e-4)


def test_joints_to_patches_end_to_end(bundle, reference_dir, outputs):
    """Joints -> features (engineer B's angles) -> model, through the Encoder facade."""
    from mofind.model.inference import Encoder

    encoder = Encoder.from_model(bundle.model, bundle.tokenizer, bundle.stats, bundle.config)
    joints = np.load(reference_dir / "inputs" / "joints_012314_first60.npy")
    x, valid_len = encoder.motion_inputs([joints])
    ref = outputs["motion_012314_first60"]
    assert valid_len.tolist() == [60]
    np.testing.assert_allclose(x[0], ref["x"], atol=2e-3)  # angle tolerances (scipy/numpy) only
    (patches, _), = encoder.encode_motions([joints])
    np.testing.assert_allclose(patches, ref["patch_emb"], atol=2e-3)
