"""Scoring functions: token-patch late interaction (MaxSim) and the global-embedding baseline.

All functions accept numpy arrays or torch tensors (same type in, same type out) so the index can score
float16/float32 numpy chunks without importing torch, and training can backpropagate through the same formula.
Motion-to-text retrieval uses the transpose of the text-to-motion matrix, exactly as the paper does.
"""

from __future__ import annotations

import numpy as np


def maxsim(text, text_mask, patches, patch_mask=None):
    """MaxSim text -> motion: for each caption token take its best patch, then average over the tokens.

    Args:
        text: (Bt, L, D) L2-normalised token embeddings.
        text_mask: (Bt, L) bool, True for tokens that count (padding and dropped positions False).
        patches: (Bm, P, D) L2-normalised patch embeddings.
        patch_mask: (Bm, P) bool, True for patches a token may match, or None = every patch counts.

    Returns:
        (Bt, Bm) scores in [-1, 1]; the motion-to-text matrix is its transpose.

    Padding. The official model ("official" mode) passes `patch_mask=None`: zero-padded frames still form
    patches and take part in the max, which is what the released checkpoints were evaluated with. MoFind's own
    models ("product" mode) mask out the patches of padded time rows. Why: every padded row is the same constant
    image (the part biases), so without the mask a short clip could win a token with a patch that shows no motion
    at all, and a clip's score would change with how much padding its window happens to have. A motion with no
    valid patch scores -inf (ranked last); a caption with no valid token scores 0.

    >>> text = np.array([[[1.0, 0.0], [0.0, 1.0]]])            # one caption, two tokens
    >>> patches = np.array([[[1.0, 0.0], [0.6, 0.8]],           # motion 0: matches token 0 exactly
    ...                     [[0.0, 1.0], [0.0, -1.0]]])         # motion 1: matches token 1 exactly
    >>> maxsim(text, np.array([[True, True]]), patches)         # (1 + 0.8) / 2 and (0 + 1) / 2
    array([[0.9, 0.5]])
    >>> maxsim(text, np.array([[True, False]]), patches)        # only token 0 counts
    array([[1., 0.]])
    >>> maxsim(text, np.array([[True, True]]), patches,         # motion 0's second patch is padding
    ...        np.array([[True, False], [True, True]]))
    array([[0.5, 0.5]])
    >>> maxsim(text, np.array([[True, True]]), patches).T       # motion -> text
    array([[0.9],
           [0.5]])
    """
    xp = _backend(text)
    bt, length, dim = text.shape
    bm, n_patches, _ = patches.shape
    flat = text.reshape(bt * length, dim) @ patches.reshape(bm * n_patches, dim).T
    sims = flat.reshape(bt, length, bm, n_patches)
    if patch_mask is not None:
        sims = xp.where(patch_mask[None, None, :, :], sims, -xp.inf)
    best = _amax(sims, -1)  # (Bt, L, Bm)
    weights = _as_float(text_mask, best)[:, :, None]
    best = xp.where(weights > 0, best, 0.0)  # a masked token must not carry -inf into the sum
    total = (best * weights).sum(1)
    count = _clip_min(weights.sum(1), 1.0)
    return total / count


def token_patch_similarities(tokens, patches):
    """(L, D) x (P, D) -> (L, P) cosine matrix: the explanation heat map for one caption and one motion.

    >>> token_patch_similarities(np.array([[1.0, 0.0]]), np.array([[0.0, 1.0], [1.0, 0.0]]))
    array([[0., 1.]])
    """
    return tokens @ patches.T


def global_similarity(text, text_mask, patches, patch_mask=None):
    """Global-embedding baseline (TMR / MoPatch style): cosine of mean-pooled tokens vs mean-pooled patches.

    Same arguments and output as `maxsim`, so the ablation swaps one function for the other.

    >>> text = np.array([[[1.0, 0.0], [0.0, 1.0]]])
    >>> patches = np.array([[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [1.0, 0.0]]])
    >>> np.round(global_similarity(text, np.array([[True, True]]), patches), 4)
    array([[1.    , 0.7071]])
    """
    text_mean = _masked_mean(text, text_mask)
    patch_mean = _masked_mean(patches, patch_mask)
    return _l2_normalise(text_mean) @ _l2_normalise(patch_mean).T


def _masked_mean(x, mask):
    if mask is None:
        return x.mean(1)
    weights = _as_float(mask, x)[:, :, None]
    return (x * weights).sum(1) / _clip_min(weights.sum(1), 1.0)


def _l2_normalise(x):
    xp = _backend(x)
    norm = xp.sqrt((x * x).sum(-1, keepdims=True)) if xp is np else x.norm(dim=-1, keepdim=True)
    return x / _clip_min(norm, 1e-12)


def _backend(x):
    if type(x).__module__.startswith("torch"):
        import torch

        return torch
    return np


def _amax(x, axis):
    return x.max(axis) if _backend(x) is np else x.amax(dim=axis)


def _as_float(mask, like):
    if _backend(like) is np:
        return np.asarray(mask).astype(like.dtype)
    return mask.to(like.dtype)


def _clip_min(x, value):
    return np.maximum(x, value) if _backend(x) is np else x.clamp_min(value)
