"""One immutable chunk file: the windows and clips committed together, as a safetensors file.

Why safetensors: a documented, dependency-light container (8-byte header length, JSON header, raw
little-endian arrays) written by a well-kept library, with a string metadata map for the clip records.
We read it back with `np.memmap` at the offsets the header gives, so opening a large index costs no
copying and the OS page cache is shared by every process that searches it.

Arrays (W windows, C clips, N stored patches; packed widths from `codec.py`: 5D/8 bytes at 5 bits, D/2 at 4):
  patches      uint8 (N, 5D/8)    valid patches only, window after window (5-bit codes)
  pooled       uint8 (W*K, D/2)   K pooled vectors per window, 4-bit (middle stage of two-stage search, pooling.py)
  coarse_regions uint8 (W*C, D/2) optional: C = 4 body-region means of the window's patches, 4-bit (the first
                                  stage, pooling.region_coarse; written by every chunk since it existed)
  coarse       uint8 (W*C, D/2)   optional, older chunks: C centroids of the pooled vectors, 4-bit (their first
                                  stage; derived from `pooled` at open when a chunk predates both, see
                                  pooling.coarse_codes)
  win_offsets  int64 (W+1,)       window w owns patches[win_offsets[w]:win_offsets[w+1]]
  win_valid    uint8 (W, ceil(P/8)) np.packbits of the (P,) valid mask over the full grid
  win_clip     int32 (W,)         index into the chunk's clip list
  win_source   int32 (W, 2)       [start, end) in SOURCE frames of the take
  win_start    int32 (W,)         first frame of the window in the clip's model-rate timeline
  thumb_bytes  uint8 (B,)         concatenated PNG files;  thumb_offsets int64 (C+1,)
Metadata "clips": JSON list of clip records (see `store.ClipRecord`).

Integrity: the manifest holds each chunk's xxh3-64 checksum (`file_checksum`), verified when the chunk is
opened, and `_check` validates every cross-array invariant the search relies on, so a damaged chunk is refused
with a `ChunkFormatError` (and quarantined by the reader) instead of answering with wrong frames or scores.
Chunk files are written read-only, and `unchanged_on_disk` lets a reader notice a file replaced or truncated
under its memory map before touching it (touching a truncated mapping would kill the process with SIGBUS).
"""

from __future__ import annotations

import json
import mmap
import os
import struct
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

ARRAY_NAMES = ("patches", "pooled", "win_offsets", "win_valid", "win_clip", "win_source", "win_start",
               "thumb_bytes", "thumb_offsets")
OPTIONAL_ARRAYS = ("coarse", "coarse_regions")  # first-stage tables: k-means (older chunks), body regions
_DTYPES = {"U8": np.uint8, "I8": np.int8, "I32": np.int32, "I64": np.int64, "F16": np.float16, "F32": np.float32}


CHECKSUM_ALGORITHM = "xxh3_64"
_HASH_BLOCK = 8 * 1024 * 1024


class ChunkFormatError(ValueError):
    """A chunk file is truncated or not what the manifest promised."""


def file_checksum(path: str | Path) -> str:
    """`xxh3_64:<hex>` of a file: xxHash (a well-kept, ~10 GB/s non-cryptographic hash) because the index is
    checked at every open, and the threat is damage (bit rot, truncation, bad copies), not forgery."""
    import xxhash

    digest = xxhash.xxh3_64()
    with open(path, "rb") as handle:
        while block := handle.read(_HASH_BLOCK):
            digest.update(block)
    return f"{CHECKSUM_ALGORITHM}:{digest.hexdigest()}"


def bytes_checksum(data: bytes) -> str:
    import xxhash

    return f"{CHECKSUM_ALGORITHM}:{xxhash.xxh3_64_hexdigest(data)}"


def chunk_bytes(arrays: dict[str, np.ndarray], clips: list[dict]) -> bytes:
    """Serialise one chunk (the caller writes it atomically)."""
    from safetensors.numpy import save

    missing = [name for name in ARRAY_NAMES if name not in arrays]
    if missing:
        raise ValueError(f"chunk is missing arrays {missing}")
    tensors = {name: np.ascontiguousarray(arrays[name]) for name in ARRAY_NAMES}
    tensors.update({name: np.ascontiguousarray(arrays[name]) for name in OPTIONAL_ARRAYS if name in arrays})
    return save(tensors, metadata={"clips": json.dumps(clips, separators=(",", ":"))})


@dataclass
class Chunk:
    """A read-only view of one chunk file (arrays are memory-mapped)."""

    name: str
    path: Path
    arrays: dict[str, np.ndarray]
    clips: list[dict]
    identity: tuple[int, int, int] = (0, 0, 0)  # (inode, size, mtime_ns) when opened

    @classmethod
    def open(cls, path: Path, expected_size: int | None = None, checksum: str | None = None) -> "Chunk":
        """Open and validate a chunk; with `checksum` (from the manifest) the whole file is verified first."""
        path = Path(path)
        try:
            stat = path.stat()
        except FileNotFoundError:
            raise ChunkFormatError(f"{path}: chunk file listed in the manifest is missing") from None
        size = stat.st_size
        if expected_size is not None and size != expected_size:
            raise ChunkFormatError(f"{path}: chunk is {size} bytes, the manifest says {expected_size} (damaged copy?)")
        if checksum:
            actual = file_checksum(path)
            if actual != checksum:
                raise ChunkFormatError(f"{path}: checksum mismatch (manifest {checksum}, file {actual}): the chunk "
                                       "is damaged")
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
        for name in ARRAY_NAMES + OPTIONAL_ARRAYS:
            info = header.get(name)
            if info is None:
                if name in OPTIONAL_ARRAYS:
                    continue
                raise ChunkFormatError(f"{path}: chunk lacks array {name!r}")
            try:
                dtype = _DTYPES.get(info["dtype"])
                begin, end = (int(v) for v in info["data_offsets"])
                shape = tuple(int(v) for v in info["shape"])
            except (KeyError, TypeError, ValueError):
                raise ChunkFormatError(f"{path}: array {name!r} has a malformed header entry") from None
            if (dtype is None or begin < 0 or end < begin or base + end > size or min(shape, default=0) < 0
                    or end - begin != int(np.prod(shape)) * np.dtype(dtype).itemsize):
                raise ChunkFormatError(f"{path}: array {name!r} is damaged or truncated")
            if end == begin:
                arrays[name] = np.zeros(shape, dtype)
            else:
                # mode "c": copy-on-write pages, so torch.from_numpy accepts them; the file is never written.
                arrays[name] = np.memmap(path, dtype=dtype, mode="c", offset=base + begin, shape=shape)
        try:
            clips = json.loads(metadata.get("clips", "[]"))
        except (json.JSONDecodeError, TypeError) as exc:
            raise ChunkFormatError(f"{path}: corrupt clip records ({exc})") from None
        chunk = cls(name=path.name, path=path, arrays=arrays, clips=clips,
                    identity=(stat.st_ino, stat.st_size, stat.st_mtime_ns))
        chunk._check()
        return chunk

    def unchanged_on_disk(self) -> bool:
        """False when the file was replaced, truncated or rewritten since it was opened (then it must not be
        read through the old mapping)."""
        try:
            stat = os.stat(self.path)
        except OSError:
            return False
        return (stat.st_ino, stat.st_size, stat.st_mtime_ns) == self.identity

    def _check(self) -> None:
        """Every invariant search, explain and get_motion rely on; a violation means damage."""
        where = self.path
        a = self.arrays
        w = self.num_windows
        if not isinstance(self.clips, list) or not all(isinstance(c, dict) for c in self.clips):
            raise ChunkFormatError(f"{where}: clip records are not a list of objects")
        ids = [c.get("clip_id") for c in self.clips]
        if not all(isinstance(i, str) and i for i in ids) or len(set(ids)) != len(ids):
            raise ChunkFormatError(f"{where}: clip records have missing or duplicate clip ids")
        offsets = a["win_offsets"]
        if len(offsets) != w + 1 or (w and (offsets[0] != 0 or offsets[-1] != len(a["patches"]))):
            raise ChunkFormatError(f"{where}: window offsets do not match the stored patches")
        if w and bool(np.any(np.diff(offsets) < 0)):
            raise ChunkFormatError(f"{where}: window offsets are not increasing")
        for name in ("win_valid", "win_source", "win_start"):
            if len(a[name]) != w:
                raise ChunkFormatError(f"{where}: {name} does not have one row per window")
        if w and len(a["pooled"]) % w:
            raise ChunkFormatError(f"{where}: pooled vectors are not a whole number per window")
        thumbs = a["thumb_offsets"]
        if len(thumbs) != len(self.clips) + 1:
            raise ChunkFormatError(f"{where}: thumbnail offsets do not match the clip records")
        if len(thumbs) and (thumbs[0] != 0 or thumbs[-1] != len(a["thumb_bytes"]) or np.any(np.diff(thumbs) < 0)):
            raise ChunkFormatError(f"{where}: thumbnail offsets do not match the thumbnail bytes")
        if not w:
            return
        clip_of = a["win_clip"]
        if int(clip_of.min()) < 0 or int(clip_of.max()) >= len(self.clips):
            raise ChunkFormatError(f"{where}: a window points at a clip that is not in the chunk")
        source = np.asarray(a["win_source"])
        if np.any(source[:, 0] < 0) or np.any(source[:, 1] <= source[:, 0]) or np.any(np.asarray(a["win_start"]) < 0):
            raise ChunkFormatError(f"{where}: a window has a negative or empty frame range")
        try:
            ranges = np.asarray([c["frame_range"] for c in self.clips], dtype=np.int64).reshape(len(self.clips), 2)
        except (KeyError, TypeError, ValueError):
            raise ChunkFormatError(f"{where}: a clip record has no valid frame_range") from None
        own = ranges[np.asarray(clip_of, dtype=np.int64)]
        if np.any(source[:, 0] < own[:, 0]) or np.any(source[:, 1] > own[:, 1]):
            raise ChunkFormatError(f"{where}: a window lies outside its clip's frame range")

    @property
    def num_windows(self) -> int:
        return int(self.arrays["win_clip"].shape[0])

    @cached_property
    def clip_windows(self) -> list[np.ndarray]:
        """Window indices of each clip (in time order)."""
        order = np.argsort(self.arrays["win_clip"], kind="stable")
        bounds = np.searchsorted(self.arrays["win_clip"][order], np.arange(len(self.clips) + 1))
        return [order[bounds[i]:bounds[i + 1]] for i in range(len(self.clips))]

    def release(self, name: str) -> None:
        """Drop this process's mapped pages of one array; the OS page cache keeps them, so the next read is
        a minor fault, not a disk read. Why: every page a search touches stays in the process's resident
        set until unmapped, so scattered re-ranks over a large index would grow the RSS query after query
        toward the index size (measured in bench/bench_index.py)."""
        mapping = getattr(self.arrays.get(name), "_mmap", None)  # np.memmap's own mmap object
        if mapping is None or not hasattr(mmap, "MADV_DONTNEED"):
            return
        try:
            mapping.madvise(mmap.MADV_DONTNEED)
        except (OSError, ValueError):
            pass  # a closed or unsupported mapping: the pages just stay resident

    def valid_mask(self, window: int, num_patches: int) -> np.ndarray:
        return np.unpackbits(self.arrays["win_valid"][window], count=num_patches).astype(bool)

    def window_packed(self, window: int) -> np.ndarray:
        offsets = self.arrays["win_offsets"]
        return np.asarray(self.arrays["patches"][offsets[window]:offsets[window + 1]])

    def thumbnail(self, clip: int) -> bytes | None:
        offsets = self.arrays["thumb_offsets"]
        start, end = int(offsets[clip]), int(offsets[clip + 1])
        return bytes(self.arrays["thumb_bytes"][start:end]) if end > start else None
