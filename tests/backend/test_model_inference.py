"""The `Encoder` facade on a randomly initialised compact model (no shared data needed)."""

from __future__ import annotations

import numpy as np
import pytest

from mofind.model.inference import Encoder

# A rough SMPL-22 rest pose (metres, Y-up, facing +Z, left = +X), HumanML3D joint order.
REST = np.array([
    [0.0, 0.95, 0.0], [0.09, 0.87, 0.0], [-0.09, 0.87, 0.0], [0.0, 1.05, 0.0], [0.10, 0.48, 0.01],
    [-0.10, 0.48, 0.01], [0.0, 1.18, 0.02], [0.10, 0.07, -0.02], [-0.10, 0.07, -0.02], [0.0, 1.23, 0.03],
    [0.11, 0.02, 0.10], [-0.11, 0.02, 0.10], [0.0, 1.45, 0.0], [0.07, 1.38, 0.0], [-0.07, 1.38, 0.0],
    [0.0, 1.60, 0.03], [0.17, 1.40, -0.01], [-0.17, 1.40, -0.01], [0.43, 1.39, -0.03], [-0.43, 1.39, -0.03],
    [0.68, 1.40, -0.02], [-0.68, 1.40, -0.02],
], dtype=np.float32)


def synthetic_joints(frames: int, seed: int = 0) -> np.ndarray:
    """Rest pose + smooth per-joint wobble + forward walk of the root: plausible, non-degenerate angles."""
    rng = np.random.default_rng(seed)
    t = np.arange(frames, dtype=np.float32)[:, None, None] / 20.0
    phase, amp = rng.uniform(0, 6.28, (1, 22, 3)), rng.uniform(0.005, 0.03, (1, 22, 3))
    joints = REST[None] + amp * np.sin(2.0 * t + phase)
    joints[:, :, 2] += 0.5 * t[:, :, 0]
    return joints.astype(np.float32)


@pytest.fixture(scope="module")
def encoder() -> Encoder:
    return Encoder.random("compact", seed=0, text_precision="int8")


@pytest.fixture(scope="module")
def float_encoder() -> Encoder:
    """The same model with its text tower in float32 (the default on a CPU is measured: `auto`)."""
    return Encoder.random("compact", seed=0, text_precision="fp32")


def test_contract_attributes(encoder):
    assert encoder.window_frames == 96 and encoder.fps == 20.0
    assert encoder.grid == (12, 14) and encoder.frames_per_row == 8
    assert encoder.window_frames == encoder.grid[0] * encoder.frames_per_row
    assert encoder.part_names[0] == "global" and len(encoder.part_names) == 14
    assert encoder.dim == 128 and encoder.uses_patch_mask
    assert len(encoder.model_hash) == 16


def test_part_layout_agrees_with_features():
    from mofind.features.parts import PART_DOFS, PART_NAMES
    from mofind.model.config import OFFICIAL_PARTS

    assert [n for n, _ in OFFICIAL_PARTS] == list(PART_NAMES)
    assert [d for _, d in OFFICIAL_PARTS] == list(PART_DOFS)


def test_encode_motions_shapes_norms_and_padding_rows(encoder):
    out = encoder.encode_motions([synthetic_joints(96), synthetic_joints(50, seed=1)])
    (full, full_valid), (short, short_valid) = out
    assert full.shape == (168, 128) and full.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(short, axis=1), 1.0, atol=1e-5)
    assert full_valid.all()
    rows = short_valid.reshape(12, 14)
    assert rows[:7].all() and not rows[7:].any()  # 50 frames -> rows 0..6 hold real frames


def test_motion_embedding_independent_of_batch(encoder):
    a, b = synthetic_joints(96, seed=2), synthetic_joints(40, seed=3)
    alone = encoder.encode_motions([b])[0][0]
    together = encoder.encode_motions([a, b])[1][0]
    np.testing.assert_allclose(alone, together, atol=1e-5)


def test_padding_rows_do_not_leak_into_valid_patches(encoder):
    # Product models hide padded rows from attention: valid patches of a short clip do not depend on padding
    # content, so they equal the same clip's patches inside a longer window whose tail differs.
    clip = synthetic_joints(96, seed=4)
    x, valid = encoder.motion_inputs([clip[:48]])
    x2 = x.copy()
    x2[0, 48:] = 3.0  # garbage where padding was, still marked invalid
    p1, v1 = encoder.encode_motion_inputs(x, valid)[0]
    p2, _ = encoder.encode_motion_inputs(x2, valid)[0]
    np.testing.assert_allclose(p1[v1], p2[v1], atol=1e-5)


def test_encode_texts_alone_equals_batched(encoder):
    captions = ["a person kicks with the left leg", "waves", "a man walks forward and then turns around", ""]
    batch = encoder.encode_texts(captions)
    for caption, (tokens, words) in zip(captions, batch):
        alone, alone_words = encoder.encode_texts([caption])[0]
        assert words == alone_words
        np.testing.assert_allclose(tokens, alone, atol=1e-6)
    assert batch[0][1] == ["a", "person", "kicks", "with", "the", "left", "leg"]
    assert batch[0][0].shape == (7, 128)
    np.testing.assert_allclose(np.linalg.norm(batch[0][0], axis=1), 1.0, atol=1e-5)
    assert batch[3][0].shape == (0, 128) and batch[3][1] == []


def _hugging_face_tokens(encoder, captions: list[str]) -> list[np.ndarray]:
    """Each caption's kept token embeddings through Hugging Face's own BertModel forward (the reference)."""
    import torch

    out = []
    with torch.inference_mode():
        for caption in captions:
            ids = torch.tensor([encoder.tokenize(caption)])
            tokens, valid = encoder.model.encode_text(ids, torch.ones_like(ids))
            out.append(tokens[0, : valid.shape[1]][valid[0]].numpy())
    return out


def test_lean_text_forward_equals_hugging_face(float_encoder):
    """The lean forward `encode_texts` runs in float32 gives Hugging Face's hidden states, one caption or a batch."""
    import torch

    from mofind.model.lean_bert import LeanBert

    encoder = float_encoder
    assert encoder.text_precision == "fp32"
    lean = LeanBert.of(encoder.model.text_encoder.text_model)
    assert lean is not None
    ids = torch.randint(1000, 30000, (3, 11), generator=torch.Generator().manual_seed(0))
    ids[:, 0], ids[:, -1] = 101, 102  # [CLS] ... [SEP]
    with torch.inference_mode():
        expected = encoder.model.text_encoder(ids, torch.ones_like(ids))
        got = lean(ids)
        alone = lean(ids[1:2])
    torch.testing.assert_close(got, expected, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(alone, expected[1:2], atol=1e-5, rtol=1e-4)
    captions = ["a person kicks with the left leg", "waves", "someone sits down, then stands up and walks away"]
    for (tokens, _), reference in zip(encoder.encode_texts(captions), _hugging_face_tokens(encoder, captions)):
        np.testing.assert_allclose(tokens, reference, atol=1e-5)


@pytest.mark.parametrize("precision", ["fp32", "int8", "fp16"])
def test_lean_text_forward_follows_weight_updates(precision):
    """An in-place weight change (an optimiser step) rebuilds the lean forward's copy of the weights."""
    import torch

    encoder = Encoder.random("compact", seed=2, text_precision=precision)
    caption = ["a person waves the right hand"]
    before = encoder.encode_texts(caption)[0][0]
    with torch.no_grad():
        encoder.model.text_encoder.text_model.base_model.encoder.layer[0].intermediate.dense.weight.mul_(1.5)
    after = encoder.encode_texts(caption)[0][0]
    assert np.abs(after - before).max() > 1e-3
    reference = _hugging_face_tokens(encoder, caption)[0]
    assert encoder.text_precision == precision
    if precision == "fp32":
        np.testing.assert_allclose(after, reference, atol=1e-5)
    else:
        assert (after * reference).sum(1).min() > 0.99  # the updated weights, rounded


@pytest.mark.parametrize("precision", ["fp32", "int8", "fp16"])
def test_compiled_text_tower_gives_the_eager_towers_numbers(precision):
    """The tower runs compiled by TorchScript (the pinned torch compiles every precision); it must give exactly
    what the same modules give in eager Python, for prompts of several lengths and a batch."""
    import torch

    from mofind.model.lean_bert import PRODUCTS, LeanBert, _Tower

    encoder = Encoder.random("compact", seed=3, text_precision=precision)
    lean = encoder._text_backbone()
    assert lean.precision == precision
    assert isinstance(lean.tower, torch.jit.ScriptModule) and lean.compile_note == ""
    eager = _Tower(lean.bert, PRODUCTS[precision])
    generator = torch.Generator().manual_seed(1)
    with torch.inference_mode():
        for shape in [(1, 3), (1, 9), (1, 14), (4, 9), (1, 9)]:  # the last again: after the compiler specialised
            ids = torch.randint(1000, 30000, shape, generator=generator)
            assert torch.equal(lean(ids), eager(ids)), shape
    assert isinstance(LeanBert(lean.bert, precision).tower, torch.jit.ScriptModule)


# Captions written for this check (no template, no training caption): words the shipped model knows and does not.
FREE_CAPTIONS = ["a person kicks with the left leg", "waves", "someone sits down, then stands up and walks away",
                 "an old man shuffles forward leaning on a cane", "a dancer spins twice and bows to the audience",
                 "the man raises his right arm above his head and waves it slowly",
                 "a child hops on one foot, then jumps with both feet", "walking backwards while clapping",
                 "a woman picks something up from the floor with both hands", "jogging in place, then a sprint"]


@pytest.mark.parametrize("precision, worst, mean", [("int8", 0.98, 0.995), ("fp16", 0.9999, 0.99999)])
def test_low_precision_text_towers_stay_close_to_float32(precision, worst, mean):
    """The shipped model's int8 and fp16 token vectors point where float32's do, same tokens kept. int8: cosine
    >= 0.98 for every token and >= 0.995 on average (measured: 0.998 on 300 HumanML3D captions); fp16 rounds only
    the weights: >= 0.9999 and >= 0.99999 (measured: 1 - 1e-6)."""
    from mofind.index.encoders import load_encoder, weights_present
    from mofind.model.lean_bert import PRODUCTS

    if not weights_present():
        pytest.skip("no shipped model weights in this checkout")
    if not PRODUCTS[precision].available():
        pytest.skip(f"this torch has no {precision} product on this CPU")
    low, floating = load_encoder(text_precision=precision), load_encoder(text_precision="fp32")
    assert (low.text_precision, floating.text_precision) == (precision, "fp32")
    cosines = []
    for (q, q_words), (f, f_words) in zip(low.encode_texts(FREE_CAPTIONS), floating.encode_texts(FREE_CAPTIONS)):
        assert q_words == f_words and q.shape == f.shape
        np.testing.assert_allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
        cosines.append((q * f).sum(1))
    cosines = np.concatenate(cosines)
    assert cosines.min() >= worst and cosines.mean() >= mean, (cosines.min(), cosines.mean())
    assert not np.array_equal(cosines, np.ones_like(cosines))  # really rounded


@pytest.mark.parametrize("precision", ["fp32", "int8", "fp16"])
def test_text_towers_encode_each_caption_as_if_alone(precision):
    """Batching captions changes nothing beyond float32 rounding: int8 quantises rows one by one and fp16 rounds
    only the weights. (Bit for bit on a Xeon with AVX-512; an AVX2 EPYC's GEMMs sum a 7-row and a 14-row product
    in another order, ~1e-7.)"""
    encoder = Encoder.random("compact", seed=0, text_precision=precision)
    assert encoder.text_precision == precision
    batch = encoder.encode_texts(FREE_CAPTIONS)
    for caption, (tokens, words) in zip(FREE_CAPTIONS, batch):
        alone, alone_words = encoder.encode_texts([caption])[0]
        assert words == alone_words
        np.testing.assert_allclose(tokens, alone, rtol=0, atol=1e-6)


def test_unknown_text_precision_is_refused():
    with pytest.raises(ValueError, match="auto, int8, fp16, fp32"):
        Encoder.random("compact", text_precision="bf16")


def test_auto_text_precision_is_measured_once_per_machine_and_cached(monkeypatch, tmp_path):
    """`auto` times every precision this torch runs here, picks by `pick`, says why, and keeps the choice in the
    cache folder: a second encoder reads it instead of measuring again (one choice per machine)."""
    import json

    from mofind.model import text_precision
    from mofind.model.lean_bert import available_precisions

    monkeypatch.setenv("MOFIND_CACHE", str(tmp_path))
    first = Encoder.random("compact", seed=0)
    assert first.text_precision in available_precisions()
    assert "measured on this machine" in first.text_precision_reason
    stored = json.loads((tmp_path / "text-precision.json").read_text())
    (entry,) = stored.values()
    assert entry["precision"] == first.text_precision
    assert set(entry["timings_ms"]) == set(available_precisions())
    assert text_precision.pick(entry["timings_ms"]) == first.text_precision
    monkeypatch.setattr(text_precision, "measure", lambda *args, **kwargs: pytest.fail("measured again"))
    second = Encoder.random("compact", seed=1)
    assert second.text_precision == first.text_precision
    # another machine's entry (here: another thread count) is measured anew, and the first stays
    import torch

    threads = torch.get_num_threads()
    monkeypatch.undo()
    monkeypatch.setenv("MOFIND_CACHE", str(tmp_path))
    torch.set_num_threads(threads + 1)
    try:
        Encoder.random("compact", seed=0).text_precision
    finally:
        torch.set_num_threads(threads)
    assert len(json.loads((tmp_path / "text-precision.json").read_text())) == 2


@pytest.mark.parametrize("timings, chosen", [
    ({"fp32": 10.0, "fp16": 5.3, "int8": 5.0}, "fp16"),  # fp16 within 10 % of int8: the more exact wins
    ({"fp32": 10.0, "fp16": 8.0, "int8": 4.0}, "int8"),
    ({"fp32": 5.4, "fp16": 5.0, "int8": 5.2}, "fp32"),
    ({"fp32": 9.0, "int8": 5.0}, "int8"),  # no fp16 kernel on this CPU
])
def test_text_precision_pick_prefers_the_more_exact_within_tolerance(timings, chosen):
    from mofind.model.text_precision import pick

    assert pick(timings) == chosen


def test_other_text_architectures_keep_the_hugging_face_forward():
    from mofind.model.lean_bert import LeanBert

    tiny = Encoder.random("official-tiny")  # DistilBERT
    assert LeanBert.of(tiny.model.text_encoder.text_model) is None
    assert tiny.encode_texts(["a person waves"])[0][0].shape == (3, tiny.dim)
    assert tiny.text_precision == "fp32"  # said as it is: no int8 forward for DistilBERT
    assert "Hugging Face" in tiny.text_precision_reason


def test_tokenize_gives_the_hugging_face_tokenizers_ids(encoder):
    """`tokenize` runs a copy of the fast tokenizer's Rust core; it must cut and mark captions exactly as the
    Hugging Face wrapper does: special tokens, case, accents, punctuation, word pieces and truncation."""
    from mofind.quality.null import load_null_texts

    assert encoder._fast_tokenizer is not None  # the shipped MiniLM tokenizer is a fast one
    limit = encoder.config.text.max_length
    captions = [*load_null_texts(), "", "   ", "A PERSON Waves, then... jumps!!", "naïve café pirouette -- 90°",
                "someone's left-hand swings", "unbelievably acrobatic somersaulting", "x " * (2 * limit),
                "walk " * limit + "then sits"]
    for caption in captions:
        expected = list(encoder.tokenizer(caption, truncation=True, max_length=limit)["input_ids"])
        assert encoder.tokenize(caption) == expected, caption
    assert len(encoder.tokenize("x " * (2 * limit))) == limit


def test_bad_inputs_raise_clear_errors(encoder):
    with pytest.raises(ValueError, match="96 frames"):
        encoder.encode_motions([synthetic_joints(97)])
    with pytest.raises(ValueError, match=r"\(T, 22, 3\)"):
        encoder.encode_motions([np.zeros((10, 21, 3), np.float32)])
    with pytest.raises(TypeError):
        encoder.encode_texts("not a list")


def test_random_is_deterministic_per_seed(encoder):
    again = Encoder.random("compact", seed=0)
    other = Encoder.random("compact", seed=1)
    assert again.model_hash == encoder.model_hash != other.model_hash
