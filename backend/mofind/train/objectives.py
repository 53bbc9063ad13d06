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
