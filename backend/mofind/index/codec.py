"""How patch embeddings are stored: a fixed random rotation, then 4 bits per dimension.

Why this codec. A window of the compact model is 168 patches x 128 dims; float16 would be 42 KiB and
int8 21 KiB, over the 16 KiB budget. Every patch is a unit vector, so after a random orthogonal
rotation its coordinates are close to i.i.d. Gaussian with standard deviation 1/sqrt(D) -- the same
for every patch and every dimension. One global uniform 16-level quantiser (the MSE-optimal step for a
Gaussian, Max 1960) therefore needs no per-vector scale and no training data: the codec is identical
for an empty index and a million-window one, and a dot product with a code is an integer dot product
(`QuantizedQueries.to_scores`), which CPUs do fast (`torch._int_mm`). 128 dims -> 64 bytes per patch,
10.5 KiB per full window (12.6 KiB with the pooled vectors and metadata).

What it costs (bench/bench_index.py, trained compact model, 601 Bandai windows x 40 text queries): MaxSim
error mean +0.0003, std 0.0075, max 0.05; the top-10 takes agree with float32 MaxSim at 92 % (the median
score gap between the 10th and 11th take is 0.0034, so what changes are near-ties). The trained model's
patches crowd into a cone (their mean has norm 0.71), which is why the error exceeds the 0.004 measured on
random-model embeddings. A 5-bit variant would halve the error but leave ~300 bytes of the 16 KiB
budget; 8-bit (21 KiB) does not fit.

The rotation is stored in the index (not re-derived from a seed) so that a numpy upgrade can never
change what old codes mean.

>>> codec = RotatedInt4Codec.create(8, seed=0)
>>> x = np.eye(8, dtype=np.float32)[:2]
>>> packed = codec.encode(x)
>>> packed.shape, packed.dtype
((2, 4), dtype('uint8'))
>>> bool(np.all(np.abs(codec.decode(packed) @ codec.rotation - x) < 0.5))
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .linalg import matmul, single_blas_thread

# MSE-optimal step of a 16-level uniform quantiser for a unit-variance Gaussian (Max 1960, table II).
GAUSSIAN_STEP_16 = 0.3352
LEVELS = 16
HALF = LEVELS // 2


@dataclass(frozen=True)
class RotatedInt4Codec:
    """Orthogonal rotation (D, D) + uniform 4-bit quantiser with step `step` in the rotated space."""

    rotation: np.ndarray  # (D, D) float32, orthogonal; rotated = x @ rotation.T
    step: float

    name = "rot-int4"

    @classmethod
    def create(cls, dim: int, seed: int = 0x6D6F66) -> "RotatedInt4Codec":
        if dim % 2:
            raise ValueError(f"the 4-bit codec packs two dimensions per byte; embedding dim {dim} is odd")
        rng = np.random.default_rng(seed)
        with single_blas_thread():
            q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        q *= np.sign(np.diag(r))[None, :]  # a Haar-distributed orthogonal matrix
        return cls(rotation=q.astype(np.float32), step=GAUSSIAN_STEP_16 / np.sqrt(dim))

    @property
    def dim(self) -> int:
        return int(self.rotation.shape[0])

    @property
    def bytes_per_vector(self) -> int:
        return self.dim // 2

    def rotate(self, x: np.ndarray) -> np.ndarray:
        return matmul(np.asarray(x, dtype=np.float32), self.rotation.T)

    # -- storage -----------------------------------------------------------------------------------------
    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, D) float unit vectors -> (n, D/2) uint8; byte j holds dim j (low nibble) and j + D/2 (high)."""
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {x.shape}")
        levels = np.floor(self.rotate(x) / self.step) + HALF
        levels = np.clip(levels, 0, LEVELS - 1).astype(np.uint8)
        half = self.dim // 2
        return levels[:, :half] | (levels[:, half:] << 4)

    def levels(self, packed: np.ndarray) -> np.ndarray:
        """(n, D/2) uint8 -> (n, D) int8 level indices 0..15 (what `score_codes` multiplies)."""
        packed = np.asarray(packed, dtype=np.uint8)
        return np.concatenate([packed & 15, packed >> 4], axis=1).astype(np.int8)

    def decode(self, packed: np.ndarray) -> np.ndarray:
        """(n, D/2) uint8 -> (n, D) float32 reconstruction in the ROTATED space (bin centres)."""
        return (self.levels(packed).astype(np.float32) - HALF + 0.5) * self.step

    def decode_original(self, packed: np.ndarray) -> np.ndarray:
        """Reconstruction rotated back to the model's space (for explanations and examples)."""
        return matmul(self.decode(packed), self.rotation)

    # -- queries -----------------------------------------------------------------------------------------
    def quantize_queries(self, tokens: np.ndarray) -> "QuantizedQueries":
        """(L, D) float query vectors -> int8 in the rotated space with a per-row scale.

        The score of a query row against a stored code is `scale * (2 * (q8 . level) - 15 * sum(q8)) * step/2`
        (see `QuantizedQueries.to_scores`); every factor but the integer dot product is per query row, so
        the max over patches can be taken on the integers.
        """
        rotated = self.rotate(tokens)
        peak = np.abs(rotated).max(axis=1, keepdims=True)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        q8 = np.clip(np.rint(rotated / scale), -127, 127).astype(np.int8)
        return QuantizedQueries(q8=q8, scale=scale[:, 0], row_sum=q8.astype(np.int64).sum(1), step=self.step)

    # -- persistence -------------------------------------------------------------------------------------
    def describe(self) -> dict:
        return {"kind": self.name, "dim": self.dim, "step": self.step, "bits": 4}

    @classmethod
    def from_arrays(cls, description: dict, rotation: np.ndarray) -> "RotatedInt4Codec":
        if description.get("kind") != cls.name:
            raise ValueError(f"unsupported codec {description.get('kind')!r} (this MoFind reads {cls.name!r})")
        rotation = np.asarray(rotation, dtype=np.float32)
        if rotation.shape != (description["dim"], description["dim"]):
            raise ValueError(f"codec rotation has shape {rotation.shape}, manifest says dim {description['dim']}")
        return cls(rotation=rotation, step=float(description["step"]))


@dataclass(frozen=True)
class QuantizedQueries:
    q8: np.ndarray  # (L, D) int8, rotated space
    scale: np.ndarray  # (L,) float32
    row_sum: np.ndarray  # (L,) int64: sum of q8 over D (the offset of the level indices)
    step: float

    def to_scores(self, level_dots) -> np.ndarray:
        """Integer dots with level indices (..., L) -> cosine estimates (..., L) float32."""
        dots = np.asarray(level_dots, dtype=np.float64)
        return ((2.0 * dots - (LEVELS - 1) * self.row_sum) * (self.scale * self.step / 2.0)).astype(np.float32)
