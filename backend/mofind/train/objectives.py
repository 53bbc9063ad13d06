"""Training objectives: symmetric InfoNCE over MaxSim logits and BERT-style masked-token corruption for MLM."""

from __future__ import annotations

import torch
from torch.nn import functional as F


def positive_matrix(captions: list[str], take_ids: list[str], groups: list[str | None] | None = None,
                    device=None) -> torch.Tensor:
    """(B, B) bool: pairs that must not be pushed apart — identical captions, the same take, or the same group.

    Template captions repeat a lot (a studio has many "walk, elderly" takes), so treating the other copies as
    negatives would train the model to separate motions the text cannot tell apart. `groups` (e.g. the label
    combination of a labelled take) extends that to differently worded captions of the same labels; None or ""
    means "no group".
    """
    n = len(captions)
    groups = groups or [None] * n

    def same(i: int, j: int) -> bool:
        return (captions[i] == captions[j] or take_ids[i] == take_ids[j]
                or (bool(groups[i]) and groups[i] == groups[j]))

    return torch.tensor([[same(i, j) for j in range(n)] for i in range(n)], dtype=torch.bool, device=device)


def symmetric_info_nce(logits: torch.Tensor, positives: torch.Tensor | None = None) -> torch.Tensor:
    """Mean of text->motion and motion->text cross-entropy; logits (B, B) = scaled text x motion scores.

    With `positives`, each row's target is uniform over its positives (the diagonal alone when None).

    >>> logits = torch.tensor([[10.0, 0.0], [0.0, 10.0]])
    >>> round(float(symmetric_info_nce(logits)), 5)
    5e-05
    """
    n = logits.shape[0]
    if logits.shape != (n, n):
        raise ValueError(f"InfoNCE needs a square logits matrix, got {tuple(logits.shape)}")
    if positives is None:
        positives = torch.eye(n, dtype=torch.bool, device=logits.device)
    target = positives.to(logits.dtype)
    t2m = -(target / target.sum(1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(1).mean()
    target_t = target.T
    m2t = -(target_t / target_t.sum(1, keepdim=True) * F.log_softmax(logits.T, dim=1)).sum(1).mean()
    return (t2m + m2t) / 2


def mask_tokens(input_ids: torch.Tensor, attention_mask: torch.Tensor, *, special_ids: list[int], mask_id: int,
                vocab_size: int, probability: float = 0.15, generator: torch.Generator | None = None
                ) -> tuple[torch.Tensor, torch.Tensor]:
    """BERT corruption for the MLM loss: returns (corrupted ids, labels with -100 where no loss is taken).

    Only real, non-special tokens are candidates (padding, [CLS], [SEP] are never masked). Of the chosen
    positions 80 % become [MASK], 10 % a random token, 10 % stay. Every row with a candidate gets at least one
    masked position, so short captions still contribute and the loss is never NaN.
    """
    candidates = attention_mask.bool() & ~torch.isin(input_ids, torch.tensor(special_ids, device=input_ids.device))
    draw = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    chosen = candidates & (draw < probability)
    # rows with candidates but no pick: take their best-drawn candidate
    empty = candidates.any(1) & ~chosen.any(1)
    if empty.any():
        forced = torch.where(candidates, draw, torch.full_like(draw, 2.0)).argmin(1)
        chosen[empty, forced[empty]] = True
    labels = torch.where(chosen, input_ids, torch.full_like(input_ids, -100))
    action = torch.rand(input_ids.shape, generator=generator, device=input_ids.device)
    corrupted = input_ids.clone()
    corrupted[chosen & (action < 0.8)] = mask_id
    random_pos = chosen & (action >= 0.8) & (action < 0.9)
    random_tokens = torch.randint(vocab_size, input_ids.shape, generator=generator, device=input_ids.device)
    corrupted[random_pos] = random_tokens[random_pos]
    return corrupted, labels


def token_part_loss(tokens: torch.Tensor, token_valid: torch.Tensor, patches: torch.Tensor,
                    patch_valid: torch.Tensor, targets: torch.Tensor, grid: tuple[int, int],
                    scale: float | torch.Tensor, margin: float | None = None) -> torch.Tensor | None:
    """Teach supervised caption tokens to match the body parts their phrase is about (the explanation target).

    For each caption b and its own motion b, a token's similarity to body part c is its best patch in column c
    (over the valid time rows): the column maxima that MaxSim takes the max of. Cross-entropy over the part
    columns with every target part a positive (-log of the softmax mass on the target parts) pushes the token's
    overall best patch, the one `explain` shows, onto one of its phrase's parts.

    Args:
        tokens (B, L, D), token_valid (B, L): caption tokens as `MotionColBERT.encode_text` gives them.
        patches (B, P, D), patch_valid (B, P): the paired motions, P = rows * cols, patch p = cols * row + col.
        targets (B, L, cols) bool: the body parts each token should match (all False = unsupervised token).
        scale: the logit scale (the contrastive temperature's inverse).
        margin: None = the cross-entropy above; a cosine margin m = a hinge, max(0, m + best other part - best
            target part): zero once the token's best patch is on a target part by m. Why both: the cross-entropy
            keeps pulling after the explanation is already right and measurably cost retrieval (docs/model
            card); the hinge asks for exactly what `explain` shows and nothing more.

    Returns the mean over supervised tokens, or None when the batch supervises none.
    """
    rows, cols = grid
    supervised = token_valid & targets.any(-1)
    if not bool(supervised.any()):
        return None
    sims = torch.einsum("bld,bpd->blp", tokens, patches)
    sims = sims.masked_fill(~patch_valid[:, None, :], float("-inf"))
    part_sims = sims.reshape(*sims.shape[:2], rows, cols).amax(2)  # (B, L, cols)
    target = targets[supervised]
    if margin is not None:
        chosen = part_sims[supervised].float()
        best_target = chosen.masked_fill(~target, float("-inf")).amax(-1)
        best_other = chosen.masked_fill(target, float("-inf")).amax(-1)
        best_other = torch.where(torch.isfinite(best_other), best_other, best_target - margin)
        return torch.relu(margin + best_other - best_target).mean()
    logits = (part_sims * scale)[supervised].float()
    positive = torch.logsumexp(logits.masked_fill(~target, float("-inf")), dim=-1)
    return (torch.logsumexp(logits, dim=-1) - positive).mean()


def token_part_targets(offsets: torch.Tensor, spans: list[list[tuple[int, int, tuple[str, ...]]]],
                       part_names: list[str]) -> torch.Tensor:
    """(B, L) character offsets of each token (from a fast tokenizer, (0, 0) for special tokens) and per caption
    its phrase spans `(start, end, parts)` -> (B, L, parts) bool: a token inside a span targets the span's parts."""
    batch, length = offsets.shape[:2]
    column = {name: index for index, name in enumerate(part_names)}
    out = torch.zeros(batch, length, len(part_names), dtype=torch.bool)
    for b, caption_spans in enumerate(spans):
        for start, end, parts in caption_spans or ():
            cols = [column[p] for p in parts if p in column]
            if not cols:
                continue
            inside = (offsets[b, :, 1] > offsets[b, :, 0]) & (offsets[b, :, 0] >= start) & (offsets[b, :, 1] <= end)
            rows = torch.nonzero(inside).squeeze(1)
            for c in cols:
                out[b, rows, c] = True
    return out
