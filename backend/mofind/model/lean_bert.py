"""`LeanBert`: the inference forward of a BERT text backbone (the shipped MiniLM) for unpadded queries.

The same arithmetic as Hugging Face's `BertModel` (embeddings + LayerNorm, then per layer self-attention,
residual + LayerNorm, GELU feed-forward, residual + LayerNorm), equal to it within float rounding (~1e-6, see
tests/backend/test_model_inference.py), but about 1.7x faster for one short query on a CPU thread.

Why not the library's forward: a search query is 5-15 tokens, so each of the 36 small products runs in MKL's
small-matrix path, where a (out, in) weight costs up to twice the time of the same weight stored (in, out), and
Hugging Face's eager modules add their per-call overhead (masks, output records, hooks) on top. Here q, k and v are
one product, weights are copied once as (in, out) for `addmm`, and nothing is built for padding or outputs that
an unpadded inference batch does not need. Training, padded batches and other architectures keep Hugging Face's.
The modules run compiled by TorchScript (`_compiled`): for a prompt of 5-15 tokens Python's per-operation
dispatch cost about a quarter of the tower.

Precisions (`PRODUCTS`; query-time encoding runs `auto`, the fastest here, see `text_precision.py`):
  * `int8`: each product's weight stored as int8 per output channel, its input quantised per row (per token) at
    call time, through oneDNN's quantised inner product, the kernel the index's first stage already uses. Why: one
    query reads every weight once, so on a CPU the tower is bound by the bandwidth of its ~42 MB of float32
    weights, which a search in between evicts from the cache; int8 reads a quarter of it. Measured inside a server
    process, a search between queries (Xeon with VNNI + AMX, 2 vCPUs, one thread): 4.8 ms against 9.5 ms. The token
    vectors keep a cosine of 0.998 to float32 on average, and retrieval moved by a few prompts either way, at most
    8 of 720 (docs/architecture.md).
  * `fp16`: the weights stored as float16, the arithmetic float32 (FBGEMM). Why: without VNNI oneDNN's int8 has no
    fast path; on an AMD EPYC (Zen 3, AVX2) a query took 7.3 ms against 10.1 in int8 and 13.6 in float32, side by
    side, with float32's vectors (cosine 1 - 1e-6).
  * `fp32`: what training and the equality tests use.
"""

from __future__ import annotations

import functools
from typing import List, Optional, Union

import torch
import torch.nn.functional as F
from torch import nn

from .config import check_text_precision


class _FloatProduct(nn.Module):
    """x @ W + b in float32, the weight copied once as (in, out) for `addmm`."""

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.weight, self.bias = weight.detach().t().contiguous(), bias.detach()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.addmm(self.bias, x, self.weight)


class _Int8Product(nn.Module):
    """x @ W + b with W as int8 per output channel (prepacked once) and x quantised per row at call time.

    Each row is scaled by its own absolute maximum to -127..127 and shifted by 128 into oneDNN's u8 operand (zero
    point 128); the float32 output is scaled back per row. Per-row scales matter: BERT's rows differ in range by
    an order of magnitude, and one scale for the whole input cost three times the error (cosine 0.994 vs 0.998).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        weight = weight.detach().float().contiguous()  # (out, in)
        self.scales = (weight.abs().amax(1) / 127).clamp_min(torch.finfo(torch.float32).tiny)
        levels = torch.round(weight / self.scales[:, None]).clamp(-127, 127).to(torch.int8)
        self.packed = torch.ops.onednn.qlinear_prepack(levels, None)
        self.zero_points = torch.zeros(len(self.scales), dtype=torch.int64)
        self.bias = bias.detach().float()
        self.tiny = float(torch.finfo(torch.float32).tiny)

    @staticmethod
    @functools.cache
    def available() -> bool:
        """Whether this torch runs oneDNN's quantised inner product here: tried once on a tiny product, since a
        build can list the operator and still lack a kernel for this CPU (then the tower stays float32)."""
        if not (torch.backends.mkldnn.is_available() and hasattr(torch.ops.onednn, "qlinear_pointwise")):
            return False
        try:
            with torch.inference_mode():
                probe = _Int8Product(torch.eye(16), torch.zeros(16))(torch.arange(32.0).view(2, 16))
            return bool(torch.allclose(probe, torch.arange(32.0).view(2, 16), atol=0.2))
        except (RuntimeError, NotImplementedError):
            return False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        row_scales = (x.abs().amax(1, keepdim=True) / 127).clamp_min(self.tiny)
        shifted = (torch.round(x / row_scales) + 128).to(torch.uint8)
        no_arguments: List[Optional[Union[int, float, complex]]] = []  # the schema's Scalar?[]
        product = torch.ops.onednn.qlinear_pointwise(shifted, 1.0, 128, self.packed, self.scales, self.zero_points,
                                                     None, 1.0, 0, torch.float32, "none", no_arguments, "")
        return torch.addcmul(self.bias, product, row_scales)


class _Fp16Product(nn.Module):
    """x @ W + b with W stored as float16 and the arithmetic in float32, through FBGEMM's fp16 GEMM (torch's
    `quantized::linear_dynamic_fp16`: AVX2 + F16C, AVX-512 where present).

    Why: on a CPU without VNNI, oneDNN's int8 product has no fast path (16-bit pair sums, then widening), and the
    tower is not faster in int8 than with half the float32 weight bytes: on an AMD EPYC (Zen 3, AVX2, 2 vCPUs) a
    query took 7.3 ms here against 10.1 in int8 and 13.6 in float32, side by side (bench/bench_index.py). Only the
    weights are rounded (11 bits of mantissa), never the input, so the token vectors equal float32's to a cosine
    of 1 - 1e-6; a caption gives the same vectors alone or in a batch to float32 rounding (tested).
    """

    def __init__(self, weight: torch.Tensor, bias: torch.Tensor):
        super().__init__()
        self.packed = torch.ops.quantized.linear_prepack_fp16(weight.detach().float().contiguous(),
                                                              bias.detach().float().contiguous())

    @staticmethod
    @functools.cache
    def available() -> bool:
        """Whether this torch runs FBGEMM's fp16 product here: tried once on a tiny product."""
        if "fbgemm" not in torch.backends.quantized.supported_engines:
            return False
        try:
            with torch.inference_mode():
                probe = _Fp16Product(torch.eye(16), torch.zeros(16))(torch.arange(32.0).view(2, 16))
            return bool(torch.equal(probe, torch.arange(32.0).view(2, 16)))
        except (RuntimeError, NotImplementedError, AttributeError):
            return False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.ops.quantized.linear_dynamic_fp16(x, self.packed)


PRODUCTS = {"fp32": _FloatProduct, "int8": _Int8Product, "fp16": _Fp16Product}
"""Precision -> the product class; `available()` on those that need a library kernel (float32 always runs)."""
MORE_EXACT_FIRST = ("fp32", "fp16", "int8")  # fp16 rounds only the weights; int8 the weights and each input row


def available_precisions() -> list[str]:
    return [name for name in MORE_EXACT_FIRST if name == "fp32" or PRODUCTS[name].available()]


class _LayerNorm(nn.Module):
    """A LayerNorm's weights as they are (no copy), for `F.layer_norm`."""

    def __init__(self, norm: nn.LayerNorm):
        super().__init__()
        self.weight, self.bias, self.eps = norm.weight.detach(), norm.bias.detach(), float(norm.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, [x.shape[-1]], self.weight, self.bias, self.eps)


class _Layer(nn.Module):
    """One BERT layer: self-attention with q, k and v in one product, then the GELU feed-forward."""

    def __init__(self, layer: nn.Module, product, heads: int):
        super().__init__()
        attention = layer.attention.self
        parts = (attention.query, attention.key, attention.value)
        self.heads = heads
        self.qkv = product(torch.cat([p.weight.detach() for p in parts]), torch.cat([p.bias.detach() for p in parts]))
        out, up, down = layer.attention.output.dense, layer.intermediate.dense, layer.output.dense
        self.out, self.up, self.down = product(out.weight, out.bias), product(up.weight, up.bias), \
            product(down.weight, down.bias)
        self.norm1, self.norm2 = _LayerNorm(layer.attention.output.LayerNorm), _LayerNorm(layer.output.LayerNorm)

    def forward(self, hidden: torch.Tensor, batch: int, length: int) -> torch.Tensor:
        q, k, v = self.qkv(hidden).view(batch, length, 3, self.heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        attended = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).reshape(batch * length, -1)
        hidden = self.norm1(self.out(attended) + hidden)
        return self.norm2(self.down(F.gelu(self.up(hidden))) + hidden)


class _Tower(nn.Module):
    """Embeddings and layers: the forward that `LeanBert` compiles with TorchScript."""

    def __init__(self, bert: nn.Module, product):
        super().__init__()
        embeddings = bert.embeddings
        self.words = embeddings.word_embeddings.weight.detach()
        self.positions = embeddings.position_embeddings.weight.detach()
        self.segment = embeddings.token_type_embeddings.weight.detach()[0]  # every query token is segment 0
        self.norm = _LayerNorm(embeddings.LayerNorm)
        heads = int(bert.config.num_attention_heads)
        self.layers = nn.ModuleList([_Layer(layer, product, heads) for layer in bert.encoder.layer])

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        batch, length = input_ids.shape[0], input_ids.shape[1]
        hidden = self.norm(self.words[input_ids] + self.positions[:length] + self.segment)
        hidden = hidden.reshape(batch * length, -1)
        for layer in self.layers:
            hidden = layer(hidden, batch, length)
        return hidden.view(batch, length, -1)


def _compiled(tower: _Tower) -> tuple[nn.Module, str]:
    """The tower compiled by TorchScript, or as it is when this torch cannot (then the reason).

    Why: for one short prompt each of the tower's ~100 small operations costs more in Python's dispatch than in
    arithmetic; TorchScript's interpreter runs the same kernels on the same tensors (bit-equal results, tested)
    about 2 ms a query faster on an AMD EPYC (7.7-8.0 against 5.7-5.9 ms, fp16, side by side). torch 2.14
    deprecates `torch.jit.script` in favour of `torch.compile`, which needs a C++ compiler at run time and
    tens of seconds to start; the eager tower stays the fallback if scripting goes away.
    """
    import warnings

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # the deprecation notice, once per model load
            return torch.jit.script(tower), ""
    except Exception as exc:  # noqa: BLE001 - any compiler failure leaves the eager forward, which is equal
        first = next((line.strip() for line in str(exc).splitlines() if line.strip()), "")
        return tower, f"eager ({type(exc).__name__}: {first[:160]})"


class LeanBert:
    """A snapshot of a BERT backbone's weights, laid out for `__call__`; `current()` says whether it still is one."""

    def __init__(self, bert: nn.Module, precision: str = "fp32"):
        if check_text_precision(precision) not in PRODUCTS:
            raise ValueError(f"LeanBert needs a resolved precision ({', '.join(PRODUCTS)}), not {precision!r}")
        self.precision = precision
        self.reason = "asked for"
        self.bert = bert
        self.tower, self.compile_note = _compiled(_Tower(bert, PRODUCTS[precision]))
        self._parameters = list(bert.parameters())
        self._versions = self._parameter_versions()

    @classmethod
    def of(cls, text_model: nn.Module, precision: str = "fp32") -> "LeanBert | None":
        """A LeanBert of a `*ForMaskedLM`'s backbone, or None when it is not a plain BERT (other architectures,
        relative positions, another activation): those keep the Hugging Face forward. `auto` is measured here
        (`text_precision.choose_precision`); `int8` or `fp16` where this torch has no kernel for it is float32
        (`precision` says which it is, `reason` why)."""
        bert = getattr(text_model, "base_model", None)
        config = getattr(bert, "config", None)
        if config is None or config.model_type != "bert" or getattr(config, "is_decoder", False):
            return None
        if getattr(config, "position_embedding_type", "absolute") != "absolute" or config.hidden_act != "gelu":
            return None
        if config.hidden_size % config.num_attention_heads:
            return None
        reason = "asked for"
        if precision == "auto":
            from .text_precision import choose_precision

            choice = choose_precision(bert)
            precision, reason = choice.precision, choice.reason
        elif precision != "fp32" and not PRODUCTS[check_text_precision(precision)].available():
            precision, reason = "fp32", f"{precision} was asked for; this torch has no kernel for it on this CPU"
        lean = cls(bert, precision)
        lean.reason = reason
        return lean

    def current(self) -> bool:
        """False once any backbone weight changed in place (an optimiser step): the snapshot is stale then."""
        return self._parameter_versions() == self._versions

    def _parameter_versions(self) -> tuple[int, ...]:
        return tuple(p._version for p in self._parameters)

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L) token ids, no padding -> (B, L, width) last hidden states (Hugging Face's `last_hidden_state`)."""
        return self.tower(input_ids)
