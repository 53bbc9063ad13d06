"""`LeanBert`: the inference forward of a BERT text backbone (the shipped MiniLM) for unpadded queries.

The same arithmetic as Hugging Face's `BertModel` (embeddings + LayerNorm, then per layer self-attention,
residual + LayerNorm, GELU feed-forward, residual + LayerNorm), equal to it within float rounding (~1e-6, see
tests/backend/test_model_inference.py), but about 1.7x faster for one short query on a CPU thread.

Why not the library's forward: a search query is 5-15 tokens, so each of the 36 small products runs in MKL's
small-matrix path, where a (out, in) weight costs up to twice the time of the same weight stored (in, out), and
Hugging Face's eager modules add their per-call overhead (masks, output records, hooks) on top. Here q, k and v are
one product, weights are copied once as (in, out) for `addmm`, and nothing is built for padding or outputs that
an unpadded inference batch does not need. Training, padded batches and other architectures keep Hugging Face's.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass(frozen=True)
class _Layer:
    qkv: tuple[torch.Tensor, torch.Tensor]  # (in, 3*out) weight, bias: query, key and value in one product
    out: tuple[torch.Tensor, torch.Tensor]
    norm1: tuple[torch.Tensor, torch.Tensor, float]
    up: tuple[torch.Tensor, torch.Tensor]
    down: tuple[torch.Tensor, torch.Tensor]
    norm2: tuple[torch.Tensor, torch.Tensor, float]


def _weight(linear: nn.Linear) -> tuple[torch.Tensor, torch.Tensor]:
    return linear.weight.detach().t().contiguous(), linear.bias.detach()


def _norm(norm: nn.LayerNorm) -> tuple[torch.Tensor, torch.Tensor, float]:
    return norm.weight.detach(), norm.bias.detach(), float(norm.eps)


class LeanBert:
    """A snapshot of a BERT backbone's weights, laid out for `__call__`; `current()` says whether it still is one."""

    def __init__(self, bert: nn.Module):
        config = bert.config
        self.bert = bert
        self.width = int(config.hidden_size)
        self.heads = int(config.num_attention_heads)
        embeddings = bert.embeddings
        self.words = embeddings.word_embeddings.weight.detach()
        self.positions = embeddings.position_embeddings.weight.detach()
        self.segment = embeddings.token_type_embeddings.weight.detach()[0]  # every query token is segment 0
        self.norm = _norm(embeddings.LayerNorm)
        self.layers = []
        for layer in bert.encoder.layer:
            attention = layer.attention.self
            parts = (attention.query, attention.key, attention.value)
            qkv = (torch.cat([p.weight.detach() for p in parts]).t().contiguous(),
                   torch.cat([p.bias.detach() for p in parts]))
            self.layers.append(_Layer(qkv, _weight(layer.attention.output.dense),
                                      _norm(layer.attention.output.LayerNorm), _weight(layer.intermediate.dense),
                                      _weight(layer.output.dense), _norm(layer.output.LayerNorm)))
        self._parameters = list(bert.parameters())
        self._versions = self._parameter_versions()

    @classmethod
    def of(cls, text_model: nn.Module) -> "LeanBert | None":
        """A LeanBert of a `*ForMaskedLM`'s backbone, or None when it is not a plain BERT (other architectures,
        relative positions, another activation): those keep the Hugging Face forward."""
        bert = getattr(text_model, "base_model", None)
        config = getattr(bert, "config", None)
        if config is None or config.model_type != "bert" or getattr(config, "is_decoder", False):
            return None
        if getattr(config, "position_embedding_type", "absolute") != "absolute" or config.hidden_act != "gelu":
            return None
        if config.hidden_size % config.num_attention_heads:
            return None
        return cls(bert)

    def current(self) -> bool:
        """False once any backbone weight changed in place (an optimiser step): the snapshot is stale then."""
        return self._parameter_versions() == self._versions

    def _parameter_versions(self) -> tuple[int, ...]:
        return tuple(p._version for p in self._parameters)

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids, no padding -> (B, L, width) last hidden states (Hugging Face's `last_hidden_state`)."""
        batch, length = input_ids.shape
        hidden = self.words[input_ids] + self.positions[:length] + self.segment
        hidden = F.layer_norm(hidden, (self.width,), *self.norm[:2], self.norm[2]).reshape(batch * length, -1)
        for layer in self.layers:
            qkv = torch.addmm(layer.qkv[1], hidden, layer.qkv[0])
            q, k, v = qkv.view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4)
            attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch * length, -1)
            hidden = F.layer_norm(torch.addmm(layer.out[1], attended, layer.out[0]) + hidden, (self.width,),
                                  *layer.norm1[:2], layer.norm1[2])
            inner = F.gelu(torch.addmm(layer.up[1], hidden, layer.up[0]))
            hidden = F.layer_norm(torch.addmm(layer.down[1], inner, layer.down[0]) + hidden, (self.width,),
                                  *layer.norm2[:2], layer.norm2[2])
        return hidden.view(batch, length, -1)
