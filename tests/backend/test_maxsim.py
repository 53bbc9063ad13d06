"""MaxSim and the global baseline: doctests, a brute-force oracle, numpy/torch parity, padding rules."""

from __future__ import annotations

import doctest

import numpy as np
import pytest
import torch

from mofind.model import maxsim as maxsim_module
from mofind.model.maxsim import global_similarity, maxsim


def test_doctests():
    result = doctest.testmod(maxsim_module)
    assert result.attempted >= 5 and result.failed == 0


def _unit(rng, *shape):
    x = rng.standard_normal(shape)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _brute_force(text, text_mask, patches, patch_mask):
    scores = np.zeros((len(text), len(patches)))
    for i in range(len(text)):
        for j in range(len(patches)):
            tokens = [t for t, keep in zip(text[i], text_mask[i]) if keep]
            allowed = [p for p, keep in zip(patches[j], patch_mask[j]) if keep]
            scores[i, j] = np.mean([max(float(t @ p) for p in allowed) for t in tokens])
    return scores


def test_matches_brute_force_with_masks():
    rng = np.random.default_rng(0)
    text, patches = _unit(rng, 3, 5, 8), _unit(rng, 4, 6, 8)
    text_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)
    patch_mask = rng.random((4, 6)) < 0.6
    patch_mask[:, 0] = True
    expected = _brute_force(text, text_mask, patches, patch_mask)
    np.testing.assert_allclose(maxsim(text, text_mask, patches, patch_mask), expected, atol=1e-12)
    np.testing.assert_allclose(maxsim(text, text_mask, patches, None),
                               _brute_force(text, text_mask, patches, np.ones((4, 6), bool)), atol=1e-12)


def test_torch_and_numpy_agree_and_torch_has_gradients():
    rng = np.random.default_rng(1)
    text, patches = _unit(rng, 2, 4, 6), _unit(rng, 3, 5, 6)
    text_mask = np.array([[1, 1, 0, 0], [1, 1, 1, 1]], bool)
    patch_mask = np.array([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]], bool)
    tt = torch.tensor(text, requires_grad=True)
    out = maxsim(tt, torch.tensor(text_mask), torch.tensor(patches), torch.tensor(patch_mask))
    assert isinstance(out, torch.Tensor)
    np.testing.assert_allclose(out.detach().numpy(), maxsim(text, text_mask, patches, patch_mask), atol=1e-12)
    out.sum().backward()
    assert torch.all(tt.grad[0, 2:] == 0), "masked tokens must not receive gradient"
    assert torch.any(tt.grad[0, :2] != 0)


def test_masked_tokens_and_patches_do_not_change_scores():
    rng = np.random.default_rng(2)
    text, patches = _unit(rng, 1, 3, 4), _unit(rng, 1, 4, 4)
    base = maxsim(text, np.array([[1, 1, 0]], bool), patches, np.array([[1, 1, 0, 0]], bool))
    text2, patches2 = text.copy(), patches.copy()
    text2[0, 2] = patches[0, 3]  # a masked token identical to a masked patch
    patches2[0, 2:] = text[0, 0]  # masked patches that would be perfect matches
    again = maxsim(text2, np.array([[1, 1, 0]], bool), patches2, np.array([[1, 1, 0, 0]], bool))
    np.testing.assert_allclose(again, base)


def test_degenerate_masks():
    text = np.array([[[1.0, 0.0]]])
    patches = np.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    assert maxsim(text, np.array([[False]]), patches).tolist() == [[0.0, 0.0]]
    scores = maxsim(text, np.array([[True]]), patches, np.array([[False], [True]]))
    assert scores[0, 0] == -np.inf and scores[0, 1] == 0.0


def test_global_baseline_is_cosine_of_means():
    rng = np.random.default_rng(3)
    text, patches = _unit(rng, 2, 3, 5), _unit(rng, 2, 4, 5)
    text_mask = np.array([[1, 1, 0], [1, 1, 1]], bool)
    patch_mask = np.array([[1, 1, 1, 1], [1, 0, 0, 0]], bool)
    got = global_similarity(text, text_mask, patches, patch_mask)
    t0 = text[0, :2].mean(0)
    p1 = patches[1, 0]
    assert got[0, 1] == pytest.approx(t0 @ p1 / np.linalg.norm(t0) / np.linalg.norm(p1))
    assert got.shape == (2, 2)
