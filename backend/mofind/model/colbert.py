"""The retrieval model: motion encoder + text encoder + projections + temperature.

Attribute names (`logit_scale`, `motion_encoder`, `text_encoder`, `motion_projection`, `text_projection`) and
their order follow the official MotionColBert state dict, so released checkpoints load strictly.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .config import ModelConfig
from .maxsim import global_similarity, maxsim
from .motion_encoder import MotionEncoder
from .text_encoder import TextEncoder


class MotionColBERT(nn.Module):
    """Token-patch late-interaction model (or its global-embedding baseline, see `config.scoring`).

    Args:
        config: the architecture.
        load_text_weights: initialise the text backbone from `config.text.weights` (False = random init,
            e.g. before loading a full checkpoint).
        allow_download: allow hub downloads for configs that name hub weights.
    """

    def __init__(self, config: ModelConfig, *, load_text_weights: bool = True, allow_download: bool = False):
        super().__init__()
        self.config = config
        self.logit_scale = nn.Parameter(torch.tensor(config.logit_scale_init, dtype=torch.float64))
        self.motion_encoder = MotionEncoder(config.motion, allow_download=allow_download)
        self.text_encoder = TextEncoder(config.text, load_weights=load_text_weights, allow_download=allow_download)
        self.motion_projection = nn.Linear(self.motion_encoder.width, config.projection_dim)
        self.text_projection = nn.Linear(self.text_encoder.width, config.projection_dim)
        # not persistent: the ids follow from the config and the tokenizer, checkpoints stay unchanged
        skip_ids, continuation = _skiplist_tables(config)
        self.register_buffer("skip_ids", skip_ids, persistent=False)
        self.register_buffer("continuation", continuation, persistent=False)  # vocab id -> is a "##" piece
        skippable = torch.zeros_like(continuation)
        skippable[skip_ids] = True  # vocab id -> is a skiplist word: a lookup, where `torch.isin` sorted (~0.1 ms)
        self.register_buffer("skippable", skippable, persistent=False)

    # -- motion ------------------------------------------------------------------------------------------
    def row_valid(self, valid_len: torch.Tensor, frames: int) -> torch.Tensor:
        """(B,) real frame counts -> (B, rows) bool: a time row is valid when it holds at least one real frame."""
        step = self.config.motion.patch_size
        starts = torch.arange(0, frames, step, device=valid_len.device)
        return starts[None, :] < valid_len[:, None]

    def encode_motion(self, x: torch.Tensor, valid_len: torch.Tensor | None = None):
        """(B, T, C) normalised angles -> (patches (B, P, D) L2-normed, patch_valid (B, P) bool).

        `patch_valid` marks patches whose time row holds real frames; scoring uses it only in "product" mode.
        """
        batch, frames, _ = x.shape
        if valid_len is None:
            valid_len = torch.full((batch,), frames, dtype=torch.long, device=x.device)
        rows = self.row_valid(valid_len.to(x.device), frames)
        tokens = self.motion_encoder(x, rows)
        patches = F.normalize(self.motion_projection(tokens), dim=-1)
        patch_valid = rows.repeat_interleave(len(self.config.motion.parts), dim=1)
        return patches, patch_valid

    # -- text --------------------------------------------------------------------------------------------
    def encode_text(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, *,
                    official_batch_tokens: bool = False, backbone=None):
        """(B, L) padded ids -> (tokens (B, L-2, D) L2-normed, token_valid (B, L-2) bool).

        Positions 1..L-2 of the padded batch are kept. With `official_batch_tokens` the mask is simply
        attention_mask[:, 1:-1], which reproduces the official quirk (shorter captions keep their [SEP] as a scored
        token, so scores depend on the batch). Otherwise each caption's own [SEP] is masked too, which makes the
        result identical to tokenising every caption alone. A config with a `token_skiplist` also masks its
        function words and punctuation (a caption made only of those keeps them all). `backbone(input_ids)`, when
        given, computes the text encoder's hidden states instead (`lean_bert.LeanBert` for unpadded inference).
        """
        states = backbone(input_ids) if backbone is not None else self.text_encoder(input_ids, attention_mask)
        tokens = F.normalize(self.text_projection(states[:, 1:-1]), dim=-1)
        valid = attention_mask[:, 1:-1].bool()
        if not official_batch_tokens and valid.shape[1] > 0:
            sep = attention_mask.sum(1) - 2  # index of each caption's [SEP] after dropping position 0
            rows = torch.nonzero(sep < valid.shape[1]).squeeze(1)
            valid = valid.clone()
            valid[rows, sep[rows]] = False
        if self.skip_ids.numel() and valid.shape[1] > 0:
            # a skip word only as a whole word: "am" is skipped, the "am" of "am ##bling" is not
            whole = ~self.continuation.to(input_ids.device)[input_ids[:, 2:]]
            skipped = self.skippable.to(input_ids.device)[input_ids[:, 1:-1]] & whole
            kept = valid & ~skipped
            valid = torch.where(kept.any(1, keepdim=True), kept, valid)
        return tokens, valid

    # -- scores ------------------------------------------------------------------------------------------
    def similarity(self, tokens, token_valid, patches, patch_valid):
        """Unscaled (Bt, Bm) text -> motion scores (the ranking score) under the config's scoring and padding."""
        patch_mask = patch_valid if self.config.patch_mask == "product" else None
        score = maxsim if self.config.scoring == "maxsim" else global_similarity
        return score(tokens, token_valid, patches, patch_mask)

    def temperature_scale(self) -> torch.Tensor:
        """exp(logit_scale), logit_scale clamped to at most `config.logit_scale_max` (ln 100)."""
        return self.logit_scale.clamp(max=self.config.logit_scale_max).exp()

    def forward(self, x, valid_len, input_ids, attention_mask, *, official_batch_tokens: bool = False):
        """Scaled (Bt, Bm) logits for a batch: MaxSim x exp(logit_scale)."""
        patches, patch_valid = self.encode_motion(x, valid_len)
        tokens, token_valid = self.encode_text(input_ids, attention_mask, official_batch_tokens=official_batch_tokens)
        return self.similarity(tokens, token_valid, patches, patch_valid) * self.temperature_scale()


def _skiplist_tables(config: ModelConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """(ids of the skiplist's words, per vocabulary id whether it continues a word); empty without a skiplist."""
    if config.token_skiplist is None:
        return torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.bool)
    from .skiplist import skip_token_ids
    from .text_encoder import load_tokenizer

    tokenizer = load_tokenizer(config.text.tokenizer)
    vocab = tokenizer.get_vocab()
    continuation = torch.zeros(max(vocab.values()) + 1, dtype=torch.bool)
    continuation[[i for token, i in vocab.items() if token.startswith("##")]] = True
    return torch.tensor(skip_token_ids(tokenizer, config.token_skiplist), dtype=torch.long), continuation
