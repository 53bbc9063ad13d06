"""One immutable chunk file: the windows and clips committed together, as a safetensors file.

Why safetensors: a documented, dependency-light container (8-byte header length, JSON header, raw
little-endian arrays) written by a well-kept library, with a string metadata map for the clip records.
We read it back with `np.memmap` at the offsets the header gives, so opening a large index costs no
copying and the OS page cache is shared by every process that searches it.

Arrays (W windows, C clips, N stored patches; packed widths from `codec.py`: 5D/8 bytes at 5 bits, D/2 at 4):
  patches      uint8 (N, 5D/8)    valid patches only, window after window (5-bit codes)
  pooled       uint8 (W*K, D/2)   K pooled vectors per window, 4-bit (first stage of two-stage search, pooling.py)
  win_offsets  int64 (W+1,)       window w owns patches[win_offsets[w]:win_offsets[w+1]]
  win_valid    uint8 (W, ceil(P/8)) np.packbits of the (P,) valid mask over the full grid
  win_clip     int32 (W,)         index into the chunk's clip list
  win_source   int32 (W, 2)       [start, end) in SOURCE frames of the take
  win_start    int32 (W,)         first frame of the window in the clip's model-rate timeline
  thumb_bytes  uint8 (B,)         concatenated PNG files;  thumb_offsets int64 (C+1,)
Metadata "clips": JSON list of clip records (see `store.ClipRecord`).
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

ARRAY_NAMES = ("patches", "pooled", "win_offsets", "win_valid", "win_clip", "win_source", "win_start",
               "thumb_bytes", "thumb_offsets")
_DTYPES = {"U8": np.uint8, "I8": np.int8, "I32": np.int32, "I64": np.int64, "F16": np.float16, "F32": np.float32}


class ChunkFormatError(ValueError):
    """A chunk file is truncated or not what the manifest promised."""


def chunk_bytes(arrays: dict[str, np.ndarray], clips: list[dict]) -> bytes:
    """Serialise one chunk (the caller writes it atomically)."""
    from safetensors.numpy import save

    missing = [name for name in ARRAY_NAMES if name not in arrays]
    if missing:
        raise ValueError(f"chunk is missing arrays {missing}")
    tensors = {name: np.ascontiguousarray(arrays[name]) for name in ARRAY_NAMES}
    return save(tensors, metadata={"clips": json.dumps(clips, separators=(",", ":"))})


@dataclass
class Chunk:
    """A read-only view of one chunk file (arrays are memory-mapped)."""

    name: str
    path: Path
    arrays: dict[str, np.ndarray]
    clips: list[dict]

    @classmethod
    def open(cls, path: Path, expected_size: int | None = None) -> "Chunk":
        path = Path(path)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise ChunkFormatError(f"{path}: chunk file listed in the manifest is missing") from None
        if expected_size is not None and size != expected_size:
            raise ChunkFormatError(f"{path}: chunk is {size} bytes, the manifest says {expected_size} (damaged copy?)")
        with open(path, "rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                raise ChunkFormatError(f"{path}: truncated chunk header")
            (header_len,) = struct.unpack("<Q", head)
            if header_len > size - 8 or header_len > 64 * 1024 * 1024:
                raise ChunkFormatError(f"{path}: corrupt chunk header length {header_len}")
            try:
                header = json.loads(handle.read(header_len))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ChunkFormatError(f"{path}: corrupt chunk header ({exc})") from None
        base = 8 + header_len
        metadata = header.pop("__metadata__", {}) or {}
        arrays = {}
        for name in ARRAY_NAMES:
            info = header.get(name)
            if info is None:
                raise ChunkFormatError(f"{path}: chunk lacks array {name!r}")
            dtype = _DTYPES.get(info["dtype"])
            begin, end = info["data_offsets"]
            shape = tuple(info["shape"])
            if dtype is None or base + end > size or end - begin != int(np.prod(shape)) * np.dtype(dtype).itemsize:
                raise ChunkFormatError(f"{path}: array {name!r} is damaged or truncated")
            if end == begin:
                arrays[name] = np.zeros(shape, dtype)
            else:
                # mode "c": copy-on-write pages, so torch.from_numpy accepts them; the file is never written.
                arrays[name] = np.memmap(path, dtype=dtype, mode="c", offset=base + begin, shape=shape)
        try:
            clips = json.loads(metadata.get("clips", "[]"))
        except json.JSONDecodeError as exc:
            raise ChunkFormatError(f"{path}: corrupt clip records ({exc})") from None
        chunk = cls(name=path.name, path=path, arrays=arrays, clips=clips)
        chunk._check()
        return chunk

    def _check(self) -> None:
        w = self.num_windows
        offsets = self.arrays["win_offsets"]
        if len(offsets) != w + 1 or (w and (offsets[0] != 0 or offsets[-1] != len(self.arrays["patches"]))):
            raise ChunkFormatError(f"{self.path}: window offsets do not match the stored patches")
        if len(self.arrays["thumb_offsets"]) != len(self.clips) + 1:
            raise ChunkFormatError(f"{self.path}: thumbnail offsets do not match the clip records")
        if w and int(self.arrays["win_clip"].max()) >= len(self.clips):
            raise ChunkFormatError(f"{self.path}: a window points at a clip that is not in the chunk")

    @property
    def num_windows(self) -> int:
        return int(self.arrays["win_clip"].shape[0])

    @cached_property
    def clip_windows(self) -> list[np.ndarray]:
        """Window indices of each clip (in time order)."""
        order = np.argsort(self.arrays["win_clip"], kind="stable")
        bounds = np.searchsorted(self.arrays["win_clip"][order], np.arange(len(self.clips) + 1))
        return [order[bounds[i]:bounds[i + 1]] for i in range(len(self.clips))]

    def valid_mask(self, window: int, num_patches: int) -> np.ndarray:
        return np.unpackbits(self.arrays["win_valid"][window], count=num_patches).astype(bool)

    def window_packed(self, window: int) -> np.ndarray:
        offsets = self.arrays["win_offsets"]
        return np.asarray(self.arrays["patches"][offsets[window]:offsets[window + 1]])

    def thumbnail(self, clip: int) -> bytes | None:
        offsets = self.arrays["thumb_offsets"]
        start, end = int(offsets[clip]), int(offsets[clip + 1])
        return bytes(self.arrays["thumb_bytes"][start:end]) if end > start else None
