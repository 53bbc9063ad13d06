"""Checkpoint formats: official layout, refusal of bad files, shipped fp16 round trip with pinned text base."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest
import torch

from mofind.features.normalize import AngleStats
from mofind.model.checkpoint import (CheckpointError, fold_official_aliases, load_shipped, load_state_strict,
                                     read_torch_state_dict, save_shipped, stored_keys)
from mofind.model.registry import build_model, get_config
from mofind.model.text_encoder import verify_files


def _official_layout(reference_dir, variant):
    layout = json.loads((reference_dir / "official_state_dict_layout.json").read_text())[variant]
    return {key: (tuple(shape), dtype) for key, shape, dtype in layout["keys"]}


@pytest.mark.needs_shared
def test_official_config_matches_released_layout(reference_dir):
    """The `official` config builds exactly the released base key set and shapes (aliases folded)."""
    expected = _official_layout(reference_dir, "base")
    with torch.device("meta"):
        model = build_model("official", load_text_weights=False)
    ours = {key: (tuple(t.shape), str(t.dtype).replace("torch.", "")) for key, t in model.state_dict().items()}
    official = {k: v for k, v in expected.items() if not k.startswith("text_encoder.base_model.")}
    assert ours == official
    aliases = [k for k in expected if k.startswith("text_encoder.base_model.")]
    assert len(aliases) + len(official) == 389


def _tiny_state():
    torch.manual_seed(0)
    model = build_model("official-tiny", load_text_weights=False)
    return model, {k: v.clone() for k, v in model.state_dict().items()}


def test_aliases_are_folded_and_checked():
    model, state = _tiny_state()
    prefix = "text_encoder.text_model.distilbert."
    aliased = dict(state)
    for key in [k for k in state if k.startswith(prefix)]:
        aliased["text_encoder.base_model." + key[len(prefix):]] = state[key]
    load_state_strict(model, fold_official_aliases(aliased, "distilbert"), "test")
    only_alias = {("text_encoder.base_model." + k[len(prefix):] if k.startswith(prefix) else k): v
                  for k, v in state.items()}
    load_state_strict(model, fold_official_aliases(only_alias, "distilbert"), "test")
    key = "text_encoder.base_model.embeddings.LayerNorm.bias"
    aliased[key] = aliased[key] + 1
    with pytest.raises(CheckpointError, match="differs from its twin"):
        fold_official_aliases(aliased, "distilbert", "x.pt")


def test_shape_mismatch_and_missing_keys_name_the_key(tmp_path):
    model, state = _tiny_state()
    state["motion_projection.weight"] = torch.zeros(3, 3)
    with pytest.raises(CheckpointError, match=r"x\.pt: motion_projection\.weight has shape \(3, 3\)"):
        load_state_strict(model, state, "x.pt")
    del state["motion_projection.weight"]
    with pytest.raises(CheckpointError, match="motion_projection.weight"):
        load_state_strict(model, state, "x.pt")


class _Evil:
    def __reduce__(self):
        return (print, ("pwned",))


def test_non_tensor_pickles_are_refused(tmp_path):
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as handle:
        pickle.dump({"logit_scale": _Evil()}, handle, protocol=2)
    with pytest.raises(CheckpointError, match="evil.pt"):
        read_torch_state_dict(evil)
    plain = tmp_path / "plain.pt"
    torch.save({"a": torch.zeros(1), "b": 3}, plain)
    with pytest.raises(CheckpointError, match="'b' is not a tensor"):
        read_torch_state_dict(plain)
    with pytest.raises(FileNotFoundError):
        read_torch_state_dict(tmp_path / "absent.pt")


@pytest.fixture(scope="module")
def compact_model():
    torch.manual_seed(0)
    return build_model("compact")  # MiniLM weights from the pinned pip package


def test_compact_freezes_all_but_top_two_text_layers(compact_model):
    text = compact_model.text_encoder.text_model
    trainable = {n for n, p in text.named_parameters() if p.requires_grad}
    assert any(n.startswith("bert.encoder.layer.5.") for n in trainable)
    assert any(n.startswith("bert.encoder.layer.4.") for n in trainable)
    assert not any(n.startswith(("bert.encoder.layer.3.", "bert.embeddings.")) for n in trainable)
    assert any(n.startswith("cls.predictions.transform") for n in trainable)
    assert text.cls.predictions.decoder.weight is text.bert.embeddings.word_embeddings.weight


def test_shipped_round_trip_stores_only_what_differs(compact_model, tmp_path):
    stats = AngleStats(np.linspace(-1, 1, 41), np.linspace(1, 2, 41))
    with torch.no_grad():
        compact_model.motion_projection.bias.add_(0.5)  # a change the reload must carry
    save_shipped(compact_model, stats, tmp_path)
    keys = stored_keys(compact_model)
    assert not any(k.startswith("text_encoder.text_model.bert.encoder.layer.0.") for k in keys)
    assert any(k.startswith("text_encoder.text_model.bert.encoder.layer.5.") for k in keys)
    assert (tmp_path / "weights.safetensors").stat().st_size < 12e6  # MiniLM alone is 90 MB in fp32

    bundle = load_shipped(tmp_path)
    assert bundle.config == compact_model.config
    np.testing.assert_array_equal(bundle.stats.mean, stats.mean)
    reloaded, original = bundle.model.state_dict(), compact_model.state_dict()
    assert reloaded.keys() == original.keys()
    for key, value in original.items():
        tol = 2e-3 * max(1.0, float(value.abs().max()))  # fp16 storage
        assert torch.allclose(reloaded[key].float(), value.float(), atol=tol), key
    assert reloaded["logit_scale"].dtype == torch.float64
    assert load_shipped(tmp_path).model_hash == bundle.model_hash


def test_shipped_errors(compact_model, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a MoFind model folder"):
        load_shipped(tmp_path)
    save_shipped(compact_model, AngleStats(np.zeros(41), np.ones(41)), tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    config["projection_dim"] = 64
    (tmp_path / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=r"motion_projection\.(weight|bias) has shape"):
        load_shipped(tmp_path)


def test_pinned_file_hash_mismatch_is_detected(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"not the pinned weights")
    with pytest.raises(ValueError, match="does not match the pinned"):
        verify_files(tmp_path, {"model.safetensors": "0" * 64})
    with pytest.raises(FileNotFoundError):
        verify_files(tmp_path, {"vocab.txt": "0" * 64})


def test_config_json_round_trip():
    for name in ("official", "official-tiny", "compact"):
        config = get_config(name)
        assert type(config).from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="unknown ModelConfig field"):
        type(config).from_dict({"name": "x", "bogus": 1})


def test_vit_pretrained_only_from_a_local_file_unless_download_is_allowed(tmp_path):
    import dataclasses

    from mofind.model.motion_encoder import MotionEncoder

    small = dataclasses.replace(get_config("compact").motion, timm_kwargs={"embed_dim": 32, "depth": 1,
                                                                           "num_heads": 2})
    torch.manual_seed(1)
    source = MotionEncoder(small)
    path = tmp_path / "vit.pth"
    torch.save(source.model.state_dict(), path)
    torch.manual_seed(2)
    loaded = MotionEncoder(dataclasses.replace(small, pretrained_file=str(path)))
    assert torch.equal(loaded.model.blocks[0].attn.qkv.weight, source.model.blocks[0].attn.qkv.weight)
    with pytest.raises(FileNotFoundError, match="absent.pth"):
        MotionEncoder(dataclasses.replace(small, pretrained_file=str(tmp_path / "absent.pth")))
    with pytest.raises(RuntimeError, match="allow_download"):
        MotionEncoder(dataclasses.replace(small, pretrained_from_hub=True))


def test_text_hub_names_are_never_fetched_without_permission():
    from mofind.model.config import TextEncoderConfig
    from mofind.model.text_encoder import TextEncoder

    config = TextEncoderConfig(hf_config={"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1,
                                          "num_attention_heads": 2, "intermediate_size": 64},
                               weights="no-such-org/no-such-model-mofind")
    with pytest.raises(OSError):
        TextEncoder(config)


@pytest.mark.needs_shared
def test_packaged_vocab_tokenizer_equals_reference_tokenizer(reference_dir):
    from mofind.model.text_encoder import load_tokenizer

    ours, ref = load_tokenizer("bert-base-uncased-vocab"), load_tokenizer(str(reference_dir / "tokenizer"))
    texts = json.loads((reference_dir / "outputs" / "meta.json").read_text())["captions"] + [
        "Café, naïve résumé — \"quoted\" (x2)!"]
    assert ours(texts, padding=True)["input_ids"] == ref(texts, padding=True)["input_ids"]
