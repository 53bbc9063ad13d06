"""Evaluation protocols over an embedded evaluation set.

- **all**: the whole gallery; one caption per motion (the dataset's evaluation caption); every item whose caption
  string is identical to the query's counts as correct, in both directions (the MotionColBert test.py rule).
- **batch32**: the gallery in a fixed-seed random order cut into groups of 32 (the last incomplete group is
  dropped); each query is ranked only inside its group, identical-caption ground truth inside the group
  (the TM2T / TMR "guo" protocol). Ranks of all groups are pooled before R@k / MedR.

Captions are encoded one by one (no [SEP] batch quirk), so results never depend on batch order.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import DEFAULT_KS, best_gt_ranks, identical_caption_gt, median_rank, recall_at_k, retrieval_metrics

PROTOCOLS = ("all", "batch32")


@dataclass
class EmbeddedSet:
    """An evaluation set after encoding: one caption and one motion window per item."""

    tokens: list[np.ndarray]  # per item (L_i, D)
    patches: np.ndarray  # (N, P, D)
    patch_valid: np.ndarray  # (N, P) bool
    captions: list[str]
    take_ids: list[str]


def embed_dataset(encoder, dataset, batch_size: int = 64, progress=None) -> EmbeddedSet:
    """Encode every item of a map-style dataset (items: x, valid_len, caption, take_id) with an `Encoder`."""
    captions, take_ids, patches, valid = [], [], [], []
    for start in range(0, len(dataset), batch_size):
        items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
        x = np.stack([item["x"] for item in items])
        lengths = np.asarray([item["valid_len"] for item in items], dtype=np.int64)
        for p, v in encoder.encode_motion_inputs(x, lengths):
            patches.append(p)
            valid.append(v)
        captions.extend(item["caption"] for item in items)
        take_ids.extend(item["take_id"] for item in items)
        if progress is not None:
            progress(len(items))
    tokens = [t for t, _ in encoder.encode_texts(captions)]
    dim = encoder.dim
    return EmbeddedSet(tokens, np.stack(patches) if patches else np.zeros((0, 0, dim), np.float32),
                       np.stack(valid) if valid else np.zeros((0, 0), bool), captions, take_ids)


def pad_tokens(tokens: list[np.ndarray], dim: int) -> tuple[np.ndarray, np.ndarray]:
    """Variable-length token sets -> (N, Lmax, D) zero-padded array + (N, Lmax) mask."""
    length = max([len(t) for t in tokens] + [1])
    out = np.zeros((len(tokens), length, dim), np.float32)
    mask = np.zeros((len(tokens), length), bool)
    for i, t in enumerate(tokens):
        out[i, :len(t)] = t
        mask[i, :len(t)] = True
    return out, mask


def score_matrix(embedded: EmbeddedSet, *, use_patch_mask: bool, scoring: str = "maxsim",
                 text_chunk: int = 64, motion_chunk: int = 256) -> np.ndarray:
    """(N captions, N motions) unscaled scores, computed in chunks with torch (float32)."""
    import torch

    from mofind.model.maxsim import global_similarity, maxsim

    score = {"maxsim": maxsim, "global": global_similarity}[scoring]
    dim = embedded.patches.shape[-1]
    text, text_mask = pad_tokens(embedded.tokens, dim)
    text_t, mask_t = torch.from_numpy(text), torch.from_numpy(text_mask)
    patches_t = torch.from_numpy(np.ascontiguousarray(embedded.patches, dtype=np.float32))
    valid_t = torch.from_numpy(embedded.patch_valid)
    out = np.zeros((len(text), len(patches_t)), np.float64)
    with torch.inference_mode():
        for i in range(0, len(text), text_chunk):
            for j in range(0, len(patches_t), motion_chunk):
                block = score(text_t[i:i + text_chunk], mask_t[i:i + text_chunk], patches_t[j:j + motion_chunk],
                              valid_t[j:j + motion_chunk] if use_patch_mask else None)
                out[i:i + text_chunk, j:j + motion_chunk] = block.double().numpy()
    return out


def protocol_all(scores: np.ndarray, captions: list[str], ks=DEFAULT_KS, ties: str = "pessimistic") -> dict:
    """Whole-gallery metrics with identical-caption ground truth, both directions."""
    return retrieval_metrics(scores, identical_caption_gt(captions), ks, ties)


def protocol_batches(scores: np.ndarray, captions: list[str], batch: int = 32, seed: int = 0, ks=DEFAULT_KS,
                     ties: str = "pessimistic") -> dict:
    """Metrics with each query ranked inside its fixed-seed group of `batch` items."""
    n = len(captions)
    if n < batch:
        raise ValueError(f"the batch-{batch} protocol needs at least {batch} items, got {n}")
    order = np.random.default_rng(seed).permutation(n)
    groups = [order[i:i + batch] for i in range(0, n - batch + 1, batch)]
    captions = np.asarray(captions, dtype=object)
    ranks = {"t2m": [], "m2t": []}
    for idx in groups:
        sub = scores[np.ix_(idx, idx)]
        gt = identical_caption_gt(list(captions[idx]))
        ranks["t2m"].append(best_gt_ranks(sub, gt, ties))
        ranks["m2t"].append(best_gt_ranks(sub.T, gt.T, ties))
    out = {}
    for prefix, parts in ranks.items():
        pooled = np.concatenate(parts)
        out.update({f"{prefix}_r{k}": v for k, v in recall_at_k(pooled, ks).items()})
        out[f"{prefix}_medr"] = median_rank(pooled)
    out["groups"] = len(groups)
    return out


def evaluate_embedded(embedded: EmbeddedSet, *, use_patch_mask: bool, scoring: str = "maxsim",
                      protocols=PROTOCOLS, ties: str = "pessimistic") -> dict:
    """Run the requested protocols on one embedded set; returns {protocol: metrics}."""
    scores = score_matrix(embedded, use_patch_mask=use_patch_mask, scoring=scoring)
    results = {}
    for name in protocols:
        if name == "all":
            results["all"] = protocol_all(scores, embedded.captions, ties=ties)
        elif name == "batch32":
            if len(embedded.captions) >= 32:
                results["batch32"] = protocol_batches(scores, embedded.captions, 32, ties=ties)
        else:
            raise ValueError(f"unknown protocol {name!r}; known: {', '.join(PROTOCOLS)}")
    return results


def markdown_table(rows: dict[str, dict]) -> str:
    """{row label: metrics} -> a markdown table with R@1/2/3/5/10 and MedR for both directions."""
    columns = [f"{d}_{m}" for d in ("t2m", "m2t") for m in ("r1", "r2", "r3", "r5", "r10", "medr")]
    names = {"r1": "R@1", "r2": "R@2", "r3": "R@3", "r5": "R@5", "r10": "R@10", "medr": "MedR"}
    header = "| | " + " | ".join(f"{c[:3].upper()} {names[c[4:]]}" for c in columns) + " |"
    lines = [header, "|" + "---|" * (len(columns) + 1)]
    for label, metrics in rows.items():
        lines.append(f"| {label} | " + " | ".join(f"{metrics[c]:.2f}" for c in columns) + " |")
    return "\n".join(lines)
