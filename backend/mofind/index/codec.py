"""How patch embeddings are stored: a fixed random rotation, then a few bits per dimension.

Why this codec. A window of the compact model is 168 patches x 128 dims; float16 would be 42 KiB and
int8 21 KiB, over the 16 KiB budget. Every patch is a unit vector; after a random orthogonal rotation its
coordinates spread evenly over the dimensions, so one global uniform quantiser (no per-vector scale, no
training data) serves every patch: the codec is identical for an empty index and a million-window one,
and a dot product with a code is an integer dot product (`QuantizedQueries.to_scores`), which CPUs do
fast (`torch._int_mm`). Bytes are split in planes: the low 4 bits of two dimensions per byte, then (at
5 bits) one bit plane. Patches use 5 bits (80 B each, 13.1 KiB per full window); the 32 pooled vectors,
which only shortlist windows, use 4 bits (64 B each); a full window is 15.6 KiB with its metadata.

Measured (trained compact model, 1,107 Bandai windows x 40 text queries, float query): MaxSim error mean
+0.0019, std 0.0071, max 0.038 at 4 bits; mean +0.0006, std 0.0038, max 0.025 at 5 bits (the max over
patches favours upward errors, hence the positive mean). bench/bench_index.py reports it for the current
model, end to end. The trained model's patches crowd
into a cone (their mean has norm 0.71); a per-dimension scale or a PCA basis made things worse, because
MaxSim keeps exactly the extreme coordinates a tighter range would clip. 8-bit (21 KiB) does not fit.

The rotation is stored in the index (not re-derived from a seed) so that a numpy upgrade can never
change what old codes mean.

>>> codec = RotatedCodec.create(8, seed=0)
>>> x = np.eye(8, dtype=np.float32)[:2]
>>> packed = codec.encode(x)
>>> packed.shape, packed.dtype                                  # 4 bytes of low nibbles + 1 bit-plane byte
((2, 5), dtype('uint8'))
>>> bool(np.all(np.abs(codec.decode_original(packed) - x) < 0.3))
True
>>> int(codec.levels(packed).max()) < codec.level_count
True
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from . import unpack
from .linalg import matmul, single_blas_thread

# MSE-optimal steps of uniform quantisers for a unit-variance Gaussian (Max 1960), widened a little where
# that lowered the MaxSim error of real embeddings (the max favours extreme coordinates).
STEP_FOR_BITS = {4: 0.38, 5: 0.20}
PATCH_BITS = 5
POOLED_BITS = 4
KIND = "rot-int"


@dataclass(frozen=True)
class RotatedCodec:
    """Orthogonal rotation (D, D) + uniform `bits`-bit quantiser with step `step` in the rotated space."""

    rotation: np.ndarray  # (D, D) float32, orthogonal; rotated = x @ rotation.T
    step: float
    bits: int = PATCH_BITS

    @classmethod
    def create(cls, dim: int, seed: int = 0x6D6F66, bits: int = PATCH_BITS) -> "RotatedCodec":
        if dim % 8:
            raise ValueError(f"the codec packs dimensions in bit planes; embedding dim {dim} is not a multiple of 8")
        rng = np.random.default_rng(seed)
        with single_blas_thread():
            q, r = np.linalg.qr(rng.standard_normal((dim, dim)))
        q *= np.sign(np.diag(r))[None, :]  # a Haar-distributed orthogonal matrix
        return cls(rotation=q.astype(np.float32), step=_step(bits, dim), bits=bits)

    @property
    def dim(self) -> int:
        return int(self.rotation.shape[0])

    @property
    def level_count(self) -> int:
        return 1 << self.bits

    @property
    def bytes_per_vector(self) -> int:
        return self.dim // 2 + (self.bits - 4) * self.dim // 8

    def rotate(self, x: np.ndarray) -> np.ndarray:
        return matmul(np.asarray(x, dtype=np.float32), self.rotation.T)

    # -- storage -----------------------------------------------------------------------------------------
    def encode(self, x: np.ndarray) -> np.ndarray:
        """(n, D) float unit vectors -> (n, bytes_per_vector) uint8.

        Byte j < D/2 holds the low nibbles of dims j and j + D/2; at 5 bits the next D/8 bytes are the
        packed fifth bit of every dim.
        """
        x = np.asarray(x, dtype=np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {x.shape}")
        return self.encode_rotated(self.rotate(x))

    def encode_rotated(self, rotated: np.ndarray) -> np.ndarray:
        """Like `encode`, for vectors already in the rotated space (no float round trip through the rotation)."""
        levels = np.floor(np.asarray(rotated, dtype=np.float32) / self.step) + self.level_count // 2
        levels = np.clip(levels, 0, self.level_count - 1).astype(np.uint8)
        half = self.dim // 2
        planes = [(levels[:, :half] & 15) | ((levels[:, half:] & 15) << 4)]
        if self.bits == 5:
            planes.append(np.packbits(levels >> 4, axis=1))
        return np.concatenate(planes, axis=1)

    def levels(self, packed: np.ndarray) -> np.ndarray:
        """(n, bytes_per_vector) uint8 -> (n, D) int8 level indices 0..level_count-1.

        This runs for every block a search scores, so it is as much of the search's cost as the
        multiplication: compiled where numba is installed (unpack.py)."""
        return unpack.levels(packed, self.dim, self.bits).view(np.int8)

    def gathered_levels(self, packed: np.ndarray, starts: np.ndarray, width: int) -> np.ndarray:
        """Rows [start, start + width) of `packed` for every start, as (len(starts) * width, D) int8 levels,
        read where they lie (no gathered copy)."""
        return unpack.gather_levels(packed, starts, width, self.dim, self.bits).view(np.int8)

    def decode(self, packed: np.ndarray) -> np.ndarray:
        """Packed codes -> (n, D) float32 reconstruction in the ROTATED space (bin centres)."""
        return (self.levels(packed).astype(np.float32) - self.level_count // 2 + 0.5) * self.step

    def decode_original(self, packed: np.ndarray) -> np.ndarray:
        """Reconstruction rotated back to the model's space (for explanations and examples)."""
        return matmul(self.decode(packed), self.rotation)

    # -- queries -----------------------------------------------------------------------------------------
    def quantize_queries(self, tokens: np.ndarray) -> "QuantizedQueries":
        """(L, D) float query vectors -> int8 in the rotated space with a per-row scale.

        The score of a query row against a stored code is
        `scale * (2 * (q8 . level) - (level_count - 1) * sum(q8)) * step / 2` (`QuantizedQueries.to_scores`);
        every factor but the integer dot product is per query row, so the max over patches can be taken on
        the integers.
        """
        rotated = self.rotate(tokens)
        peak = np.abs(rotated).max(axis=1, keepdims=True)
        scale = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
        q8 = np.clip(np.rint(rotated / scale), -127, 127).astype(np.int8)
        return QuantizedQueries(q8=q8, scale=scale[:, 0], row_sum=q8.astype(np.int64).sum(1), step=self.step,
                                level_count=self.level_count)

    # -- persistence -------------------------------------------------------------------------------------
    def describe(self, pooled_bits: int = POOLED_BITS) -> dict:
        return {"kind": KIND, "dim": self.dim, "bits": self.bits, "step": self.step, "pooled_bits": pooled_bits,
                "pooled_step": _step(pooled_bits, self.dim)}

    @classmethod
    def from_arrays(cls, description: dict, rotation: np.ndarray) -> tuple["RotatedCodec", "RotatedCodec"]:
        """(patch codec, pooled codec) from a manifest's description and the stored rotation."""
        if description.get("kind") != KIND:
            raise ValueError(f"unsupported codec {description.get('kind')!r} (this MoFind reads {KIND!r})")
        rotation = np.asarray(rotation, dtype=np.float32)
        if rotation.shape != (description["dim"], description["dim"]):
            raise ValueError(f"codec rotation has shape {rotation.shape}, manifest says dim {description['dim']}")
        patches = cls(rotation=rotation, step=float(description["step"]), bits=int(description["bits"]))
        pooled = cls(rotation=rotation, step=float(description["pooled_step"]), bits=int(description["pooled_bits"]))
        for codec in (patches, pooled):
            if codec.bits not in STEP_FOR_BITS:
                raise ValueError(f"unsupported codec bit depth {codec.bits}")
        return patches, pooled


#: Plane byte -> its 8 dimensions' fifth bits as 16s, one byte each (np.packbits order: the high bit first),
#: viewed as one uint64 (bytes in memory order) so that a row of plane bytes maps onto its 8-byte groups of levels.


def _step(bits: int, dim: int) -> float:
    return STEP_FOR_BITS[bits] / float(np.sqrt(dim))


@dataclass(frozen=True)
class QuantizedQueries:
    q8: np.ndarray  # (L, D) int8, rotated space
    scale: np.ndarray  # (L,) float32
    row_sum: np.ndarray  # (L,) int64: sum of q8 over D (the offset of the level indices)
    step: float
    level_count: int

    def to_scores(self, level_dots) -> np.ndarray:
        """Integer dots with level indices (..., L) -> cosine estimates (..., L) float32."""
        dots = np.asarray(level_dots, dtype=np.float64)
        offset = (self.level_count - 1) * self.row_sum
        return ((2.0 * dots - offset) * (self.scale * self.step / 2.0)).astype(np.float32)
