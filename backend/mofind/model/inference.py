"""`Encoder`: the one object the index and the server use to turn motions and captions into embeddings.

It hides torch, tokenisation and feature extraction behind numpy in / numpy out, and guarantees that an
embedding never depends on what else was in the batch (each caption is encoded as if alone; each motion
window on its own valid length).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from .config import ModelConfig, check_text_precision
from .lean_bert import LeanBert
from .motion_input import identity_stats, joints_to_input


class Encoder:
    """Numpy facade over a `MotionColBERT` model in eval mode.

    Attributes:
        window_frames: motion length the model sees (frames at `fps`).
        fps: frame rate motions must be resampled to.
        grid: (time rows, part columns) of the patch grid; patch p = cols * row + col.
        frames_per_row: frames covered by one time row.
        part_names: body part of each grid column.
        dim: embedding width.
        uses_patch_mask: True when the model's scores ignore `valid=False` patches (product models);
            False for official checkpoints, which were trained and evaluated scoring padded patches too.
        text_precision: what caption encoding runs in on a CPU: `auto` (the default: int8, fp16 or fp32,
            whichever is fastest on this machine, measured once and cached, see `model.text_precision`), or one
            of them by name (`fp32` is what training and equality checks use).
    """

    def __init__(self, model, tokenizer, stats, config: ModelConfig, *, device: str | torch.device = "cpu",
                 model_hash: str | None = None, batch_size: int = 32, text_precision: str = "auto"):
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.stats = stats
        self.config = config
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.window_frames = config.motion.frames
        self.fps = float(config.motion.fps)
        self.grid = config.motion.grid
        self.frames_per_row = config.motion.patch_size
        self.part_names = [name for name, _ in config.motion.parts]
        self.dim = config.projection_dim
        self.uses_patch_mask = config.patch_mask == "product"
        if model_hash is not None:
            self.__dict__["model_hash"] = model_hash
        self._requested_text_precision = check_text_precision(text_precision)
        self._lean_text: LeanBert | None = None

    # -- construction ------------------------------------------------------------------------------------
    @classmethod
    def from_model(cls, model, tokenizer, stats, config: ModelConfig, **kwargs) -> "Encoder":
        return cls(model, tokenizer, stats, config, **kwargs)

    @classmethod
    def random(cls, config_name: str = "compact", seed: int = 0, **kwargs) -> "Encoder":
        """A randomly initialised model of a registered config (no pretrained weights read), identity stats."""
        from .registry import build_model, get_config
        from .text_encoder import load_tokenizer

        config = get_config(config_name)
        torch.manual_seed(seed)
        model = build_model(config, load_text_weights=False)
        return cls(model, load_tokenizer(config.text.tokenizer), identity_stats(), config, **kwargs)

    @classmethod
    def load(cls, model_dir: str | Path | None = None, device: str = "cpu", **kwargs) -> "Encoder":
        """The shipped model (default `mofind.paths.model_dir()`), see `checkpoint.load_shipped`."""
        from .checkpoint import load_shipped

        if model_dir is None:
            from mofind.paths import model_dir as default_model_dir

            model_dir = default_model_dir()
        bundle = load_shipped(Path(model_dir))
        return cls(bundle.model, bundle.tokenizer, bundle.stats, bundle.config, device=device,
                   model_hash=bundle.model_hash, **kwargs)

    @cached_property
    def model_hash(self) -> str:
        """sha256 (first 16 hex) of the config, the stats and every tensor: the index refuses other models."""
        digest = hashlib.sha256(json.dumps(self.config.to_dict(), sort_keys=True).encode())
        for array in (self.stats.mean, self.stats.std):
            digest.update(np.ascontiguousarray(array, dtype=np.float64).tobytes())
        for key, tensor in sorted(self.model.state_dict().items()):
            digest.update(key.encode())
            digest.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
        return digest.hexdigest()[:16]

    # -- motions -----------------------------------------------------------------------------------------
    def motion_inputs(self, motions: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """(T, 22, 3) joints at `fps` -> (x (N, window_frames, C) float32, valid_len (N,) int64)."""
        xs, lengths = [], []
        for index, joints in enumerate(motions):
            joints = np.asarray(joints)
            if joints.ndim != 3 or joints.shape[1:] != (22, 3):
                raise ValueError(f"motion {index}: expected SMPL-22 joints (T, 22, 3), got shape {joints.shape}")
            if len(joints) > self.window_frames:
                raise ValueError(f"motion {index} has {len(joints)} frames; the model window is "
                                 f"{self.window_frames} frames at {self.fps:g} fps (cut it into windows first)")
            x, valid = joints_to_input(joints, self.stats, self.window_frames,
                                       window_invariant=self.config.motion.window_invariant)
            xs.append(x)
            lengths.append(valid)
        width = self.config.motion.input_dim
        if not xs:
            return np.zeros((0, self.window_frames, width), np.float32), np.zeros(0, np.int64)
        return np.stack(xs), np.asarray(lengths, dtype=np.int64)

    def encode_motions(self, motions: Sequence[np.ndarray]) -> list[tuple[np.ndarray, np.ndarray]]:
        """Joints -> per motion (patches (P, D) float32 L2-normed, valid (P,) bool)."""
        x, valid_len = self.motion_inputs(motions)
        return self.encode_motion_inputs(x, valid_len)

    @torch.inference_mode()
    def encode_motion_inputs(self, x: np.ndarray, valid_len: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        """Already featurised inputs (N, window_frames, C) -> per motion (patches, valid)."""
        out = []
        for start in range(0, len(x), self.batch_size):
            xb = torch.from_numpy(np.ascontiguousarray(x[start:start + self.batch_size])).to(self.device)
            lb = torch.from_numpy(np.asarray(valid_len[start:start + self.batch_size])).to(self.device)
            patches, valid = self.model.encode_motion(xb, lb)
            patches = patches.float().cpu().numpy()
            valid = valid.cpu().numpy()
            out.extend((patches[i], valid[i]) for i in range(len(patches)))
        return out

    # -- texts -------------------------------------------------------------------------------------------
    def _text_backbone(self) -> LeanBert | None:
        """The lean forward of the text backbone (built on first use, rebuilt when the weights changed), or None
        for architectures it does not cover: captions are batched unpadded, which is what it needs."""
        lean = self._lean_text
        if lean is None or not lean.current():
            precision = self._requested_text_precision if self.device.type == "cpu" else "fp32"
            stale = lean
            lean = self._lean_text = LeanBert.of(self.model.text_encoder.text_model,
                                                 stale.precision if stale is not None else precision)
            if stale is not None and lean is not None:
                lean.reason = stale.reason  # rebuilt after a weight update: same precision, same reason
        return lean

    @property
    def text_precision(self) -> str:
        """What query encoding runs in: `int8`, `fp16` or `fp32` (on CUDA, and for a text backbone the lean
        forward does not cover, fp32). Read on every search (the null distributions' cache key), so a forward
        already built answers: a rebuild after a weight update keeps its precision."""
        lean = self._lean_text or self._text_backbone()
        return lean.precision if lean is not None else "fp32"

    @property
    def text_precision_reason(self) -> str:
        lean = self._lean_text or self._text_backbone()
        if lean is None:
            return "this text backbone runs Hugging Face's float32 forward"
        if self.device.type != "cpu":
            return "float32 on the GPU"
        return lean.reason + (f"; the tower runs {lean.compile_note}" if lean.compile_note else "")

    def tokenize(self, text: str) -> list[int]:
        """The caption's ids with [CLS] and [SEP], truncated to the model's length."""
        fast = self._fast_tokenizer
        if fast is not None:
            return fast.encode(text).ids
        ids = self.tokenizer(text, truncation=True, max_length=self.config.text.max_length)["input_ids"]
        return list(ids)

    @cached_property
    def _fast_tokenizer(self):
        """A copy of a fast tokenizer's Rust `tokenizers.Tokenizer`, truncating as `tokenize` asks: the same ids
        as calling the Hugging Face wrapper (tested), without its per-call Python (~0.05 ms warm, ~0.4 ms in a
        server between text-tower runs). None for a slow (pure Python) tokenizer."""
        backend = getattr(self.tokenizer, "backend_tokenizer", None)
        if backend is None:
            return None
        from tokenizers import Tokenizer

        fast = Tokenizer.from_str(backend.to_str())
        fast.no_padding()
        fast.enable_truncation(self.config.text.max_length)
        return fast

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str]) -> list[tuple[np.ndarray, list[str]]]:
        """Captions -> per caption (tokens (L, D) float32 L2-normed, words) for its real tokens only.

        [CLS] and [SEP] are dropped, and so are the model's skiplist words (`ModelConfig.token_skiplist`), so
        search, explain and evaluation all score the same tokens. Captions are grouped by token count and
        batched without padding, so each result is what encoding the caption alone gives: bit for bit where the
        math library's kernels do not depend on the number of rows (a Xeon with AVX-512), within float32 rounding
        (~1e-7) where they do (an AVX2 EPYC: its GEMMs block 7 rows and 14 rows differently).
        """
        if isinstance(texts, str):
            raise TypeError("encode_texts takes a list of strings, not a single string")
        ids = [self.tokenize(text) for text in texts]
        results: list[tuple[np.ndarray, list[str]] | None] = [None] * len(ids)
        by_length: dict[int, list[int]] = {}
        for index, seq in enumerate(ids):
            by_length.setdefault(len(seq), []).append(index)
        for length, indices in by_length.items():
            for start in range(0, len(indices), self.batch_size):
                chunk = indices[start:start + self.batch_size]
                input_ids = torch.tensor([ids[i] for i in chunk], dtype=torch.long, device=self.device)
                mask = torch.ones_like(input_ids)
                tokens, valid = self.model.encode_text(input_ids, mask, backbone=self._text_backbone())
                tokens, valid = tokens.float().cpu().numpy(), valid.cpu().numpy()
                for row, index in enumerate(chunk):
                    words = self.tokenizer.convert_ids_to_tokens(ids[index][1:-1])
                    keep = valid[row, : max(length - 2, 0)]
                    results[index] = (tokens[row, : len(keep)][keep], [w for w, k in zip(words, keep) if k])
        return results  # type: ignore[return-value]
