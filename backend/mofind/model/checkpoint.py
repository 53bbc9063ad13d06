"""Reading and writing model weights.

Two formats:

- **Official MotionColBert `.pt`** (read only): a plain `torch.save(state_dict)`, loaded with
  `torch.load(weights_only=True)` (so arbitrary pickles are refused) and a strict load. The official model
  assigns its text backbone to a second attribute, so every `text_encoder.text_model.<backbone>.*` tensor also
  appears as `text_encoder.base_model.*`; those aliases are checked to be identical and then folded away.
- **Shipped MoFind model** (a folder): `config.json`, `Mean_angle.npy`/`Std_angle.npy`, and `weights.safetensors`
  in fp16. When the text encoder is a frozen pinned pip model (MiniLM) with only its top layers trained, only the
  trained tensors are stored; the frozen ones are re-read from the pinned package after its sha256 check.
  `import_official` turns an official `.pt` into such a folder (plus its tokenizer and a provenance file).
"""

from __future__ import annotations

import hashlib
import json
import pickle
from dataclasses import dataclass
from pathlib import Path

import torch

from mofind.features.normalize import AngleStats

from .config import ModelConfig
from .registry import build_model, get_config
from .text_encoder import MINILM_PACKAGE, MINILM_SHA256, load_tokenizer, sha256_file

WEIGHTS_FILE = "weights.safetensors"
CONFIG_FILE = "config.json"
PROVENANCE_FILE = "provenance.json"
FORMAT_NAME = "mofind-weights"
FORMAT_VERSION = "1"
OFFICIAL_ALIAS_PREFIX = "text_encoder.base_model."


class CheckpointError(ValueError):
    """A weights file that cannot be used; the message names the file (and the key when there is one)."""


@dataclass
class ModelBundle:
    """Everything an `Encoder` needs."""

    model: torch.nn.Module
    tokenizer: object
    stats: AngleStats
    config: ModelConfig
    model_hash: str


# -- official checkpoints ------------------------------------------------------------------------------------
def read_torch_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """`torch.load(weights_only=True)` of a plain state dict; anything else is a `CheckpointError`."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a tensors-only state dict (refused by weights_only load): "
                              f"{str(exc).splitlines()[0]}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a state dict, found {type(state).__name__}")
    bad = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if bad:
        raise CheckpointError(f"{path}: entry {bad[0]!r} is not a tensor")
    return dict(state)


def fold_official_aliases(state: dict[str, torch.Tensor], backbone_prefix: str, source: str = "checkpoint"
                          ) -> dict[str, torch.Tensor]:
    """Drop `text_encoder.base_model.*` after checking each equals its `text_encoder.text_model.<backbone>.*` twin.

    An alias without a twin is renamed to the twin, so a checkpoint holding only one spelling still loads.
    """
    out = {key: value for key, value in state.items() if not key.startswith(OFFICIAL_ALIAS_PREFIX)}
    for key, value in state.items():
        if not key.startswith(OFFICIAL_ALIAS_PREFIX):
            continue
        twin = f"text_encoder.text_model.{backbone_prefix}." + key[len(OFFICIAL_ALIAS_PREFIX):]
        if twin not in out:
            out[twin] = value
        elif out[twin].shape != value.shape or not torch.equal(out[twin], value):
            raise CheckpointError(f"{source}: {key} differs from its twin {twin}")
    return out


def load_state_strict(model: torch.nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load with errors that name the file and the offending key."""
    expected = model.state_dict()
    missing = [key for key in expected if key not in state]
    unexpected = [key for key in state if key not in expected]
    if missing or unexpected:
        raise CheckpointError(f"{source}: keys do not match the model config "
                              f"({len(missing)} missing, e.g. {missing[:3]}; "
                              f"{len(unexpected)} unexpected, e.g. {unexpected[:3]})")
    _check_shapes(expected, state, source)
    model.load_state_dict(state, strict=True)


def load_official(path: str | Path, stats_dir: str | Path, config: ModelConfig | str = "official",
                  tokenizer: str | None = None) -> ModelBundle:
    """A released MotionColBert `.pt` (+ its Mean/Std files) as a ready `ModelBundle` (no download)."""
    path = Path(path)
    config = get_config(config) if isinstance(config, str) else config
    model = build_model(config, load_text_weights=False)
    state = read_torch_state_dict(path)
    prefix = model.text_encoder.text_model.base_model_prefix
    load_state_strict(model, fold_official_aliases(state, prefix, str(path)), str(path))
    stats = AngleStats.load(stats_dir)
    digest = hashlib.sha256()
    digest.update(sha256_file(path).encode())
    digest.update(stats.mean.tobytes() + stats.std.tobytes())
    return ModelBundle(model.eval(), load_tokenizer(tokenizer or config.text.tokenizer), stats, config,
                       digest.hexdigest()[:16])


def import_official(path: str | Path, stats_dir: str | Path, out_dir: str | Path, *,
                    config: ModelConfig | str = "official", tokenizer: str | None = None,
                    dtype: torch.dtype = torch.float16) -> Path:
    """Write a released MotionColBert checkpoint as a MoFind model folder that `Encoder.load` reads.

    Why a conversion rather than loading the `.pt` at every start: the folder is self-describing (config, stats,
    tokenizer, provenance), loads without pickle, and is what `mofind index/query/serve --model DIR` expect, so
    the paper's open-vocabulary weights work in the product exactly like the shipped model.
    """
    bundle = load_official(path, stats_dir, config=config, tokenizer=tokenizer)
    out_dir = Path(out_dir)
    save_shipped(bundle.model, bundle.stats, out_dir, dtype=dtype)
    bundle.tokenizer.save_pretrained(str(out_dir / "tokenizer"))
    provenance = {
        "source": "MotionColBert official checkpoint (Zhang et al., Fine-grained Motion Retrieval via Joint-Angle "
                  "Motion Images and Token-Patch Late Interaction)",
        "checkpoint": Path(path).name, "checkpoint_sha256": sha256_file(Path(path)),
        "config": bundle.config.name, "dtype": str(dtype).removeprefix("torch."),
        "licence": "CC BY-NC 4.0 (the official code and weights); non-commercial use only",
    }
    (out_dir / PROVENANCE_FILE).write_text(json.dumps(provenance, indent=2) + "\n", encoding="utf-8")
    return out_dir


# -- shipped MoFind models -----------------------------------------------------------------------------------
def uses_pinned_text_base(config: ModelConfig) -> bool:
    """True when frozen text tensors come from the pinned pip package instead of the weights file."""
    return config.text.weights == MINILM_PACKAGE and config.text.trainable_layers is not None


def stored_keys(model: torch.nn.Module) -> list[str]:
    """State-dict keys a shipped model stores: all but frozen pinned text tensors; tied duplicates once."""
    config: ModelConfig = model.config
    frozen = set()  # storage pointers, so tied names (MLM decoder = word embeddings) are caught too
    if uses_pinned_text_base(config):
        frozen = {p.data_ptr() for p in model.text_encoder.parameters() if not p.requires_grad}
    keys, seen = [], set()
    for key, tensor in model.state_dict(keep_vars=True).items():
        if tensor.data_ptr() in frozen or tensor.data_ptr() in seen:
            continue
        seen.add(tensor.data_ptr())
        keys.append(key)
    return keys


def save_shipped(model: torch.nn.Module, stats: AngleStats, directory: str | Path, *, dtype=torch.float16) -> Path:
    """Write config.json, the stats and weights.safetensors (float tensors cast to `dtype`, float64 kept)."""
    from safetensors.torch import save_file

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = model.state_dict()
    tensors = {}
    for key in stored_keys(model):
        tensor = state[key].detach().cpu()
        if tensor.is_floating_point() and tensor.dtype != torch.float64:
            tensor = tensor.to(dtype)
        tensors[key] = tensor.contiguous()
    metadata = {"format": FORMAT_NAME, "version": FORMAT_VERSION}
    if uses_pinned_text_base(model.config):
        metadata["text_base"] = MINILM_PACKAGE
        metadata["text_base_sha256"] = MINILM_SHA256["model.safetensors"]
    save_file(tensors, str(directory / WEIGHTS_FILE), metadata=metadata)
    model.config.to_json(directory / CONFIG_FILE)
    stats.save(directory)
    return directory


def load_shipped(directory: str | Path) -> ModelBundle:
    """Load a folder written by `save_shipped`; the pinned text base is sha256-verified, nothing downloads."""
    from safetensors import safe_open

    directory = Path(directory)
    weights = directory / WEIGHTS_FILE
    for required in (directory / CONFIG_FILE, weights):
        if not required.is_file():
            raise FileNotFoundError(f"{required} is missing: {directory} is not a MoFind model folder")
    config = ModelConfig.from_json(directory / CONFIG_FILE)
    with safe_open(str(weights), framework="pt") as handle:
        metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT_NAME:
            raise CheckpointError(f"{weights}: not a MoFind weights file (metadata format={metadata.get('format')!r})")
        if metadata.get("text_base_sha256", MINILM_SHA256["model.safetensors"]) != MINILM_SHA256["model.safetensors"]:
            raise CheckpointError(f"{weights}: trained on a different {MINILM_PACKAGE} build than the pinned one")
        state = {key: handle.get_tensor(key) for key in handle.keys()}
    model = build_model(config, load_text_weights=uses_pinned_text_base(config))
    expected = model.state_dict()
    _check_shapes(expected, state, str(weights))
    unexpected = [key for key in state if key not in expected]
    needed = stored_keys(model)
    missing = [key for key in needed if key not in state]
    if unexpected or missing:
        raise CheckpointError(f"{weights}: keys do not match {CONFIG_FILE} (missing {missing[:3]}, "
                              f"unexpected {unexpected[:3]})")
    state = {key: value.to(expected[key].dtype) for key, value in state.items()}
    model.load_state_dict(state, strict=False)
    stats = AngleStats.load(directory)
    tokenizer_dir = directory / "tokenizer"
    tokenizer = load_tokenizer(str(tokenizer_dir) if tokenizer_dir.is_dir() else config.text.tokenizer)
    digest = hashlib.sha256()
    for path in (weights, directory / CONFIG_FILE):
        digest.update(sha256_file(path).encode())
    digest.update(stats.mean.tobytes() + stats.std.tobytes())
    return ModelBundle(model.eval(), tokenizer, stats, config, digest.hexdigest()[:16])


def _check_shapes(expected: dict[str, torch.Tensor], state: dict[str, torch.Tensor], source: str) -> None:
    for key, value in state.items():
        if key in expected and tuple(value.shape) != tuple(expected[key].shape):
            raise CheckpointError(f"{source}: {key} has shape {tuple(value.shape)}, the model config expects "
                                  f"{tuple(expected[key].shape)}")
