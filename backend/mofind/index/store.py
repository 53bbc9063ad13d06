"""The index folder: read it (`IndexReader`, lock-free snapshots) and write it (`IndexWriter`, one at a time).

Layout of an index folder:
    manifest.json            the commit point (see manifest.py): spec, codec, chunk list, tombstones
    codec.safetensors        the codec's rotation matrix (see codec.py), written once at creation
    chunks/chunk-NNNNNN.safetensors   immutable, append-only chunk files (see chunk.py)
    write.lock               the writers' flock (see lock.py)

Updates and removals never touch a chunk: they add tombstones (chunk name -> clip ids) to the manifest;
`IndexWriter.compact` later rewrites chunks without their dead clips (copying the packed codes, no
re-encoding) and merges small chunks. A clip id is derived from the source path, so re-indexing a
changed file replaces its clip under the same id.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .atomic import fsync_dir, remove_stale_temps, write_atomic
from .chunk import Chunk, ChunkFormatError, bytes_checksum, chunk_bytes, file_checksum
from .codec import POOLED_BITS, RotatedCodec
from .lock import WriteLock
from .manifest import (ChunkEntry, IndexFormatError, IndexNotFoundError, IndexSpec, IndexStoreError, Manifest,
                       MANIFEST_NAME)
from .pooling import NAME as POOL_NAME
from .pooling import COARSE_SIZE, REGIONS_ARRAY, cluster_pool, region_codes

CODEC_FILE = "codec.safetensors"
CHUNK_DIR = "chunks"
CHUNK_PREFIX = "chunk-"
CHUNK_SUFFIX = ".safetensors"
RECORDS_SUFFIX = ".clips.json"  # beside each chunk: its clip records, so --repair knows what a broken chunk held
QUARANTINE_DIR = "quarantine"
#: Windows per chunk that compaction aims for: ~128 MiB files, ~125 of them for a million windows.
TARGET_CHUNK_WINDOWS = 8192


def chunk_share(windows: int, target: int = TARGET_CHUNK_WINDOWS) -> float:
    """Windows per chunk when `windows` are written as the fewest chunks of at most `target`, all about equal.

    Why equal, not full chunks and a remainder: a search's threads take whole chunks, so 10,000 windows as 8,193
    + 1,807 left one thread with 82 % of the first stage while the other waited. As 5,001 + 4,999, side by side
    on the tiled 10k index (AMD EPYC, 2 vCPUs, 100 queries, three runs): coarse pass 0.453 / 0.500 / 0.482 ->
    0.427 / 0.456 / 0.430 ms, first stage 1.40 / 1.61 / 1.44 -> 1.34 / 1.48 / 1.32 ms."""
    return windows / max(1, -(-windows // target))


def starts_new_chunk(filled: int, clip_windows: int, share: float, target: int = TARGET_CHUNK_WINDOWS) -> bool:
    """Whether a clip of `clip_windows` opens a new chunk after `filled` windows (a clip is never split): when the
    chunk already holds its `share` (`chunk_share`), or the clip would take it past `target`. Every chunk but the
    last reaches its share, so the last one takes what is left instead of a sliver of its own."""
    return filled > 0 and (filled >= share or filled + clip_windows > target)


def clip_id_for(source: str | Path, take: str = "") -> str:
    """Stable id of a take: 16 hex digits of sha256 of its absolute path (and, for a file holding several takes,
    the take's name: FBX animation stack, glTF animation)."""
    key = str(Path(source).resolve()) + (f"\0{take}" if take else "")
    # surrogateescape: a file name that is not UTF-8 hashes as its own bytes (UTF-8 names keep their ids)
    return hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]


@dataclass
class ClipRecord:
    """What the index remembers about one take besides its embeddings."""

    clip_id: str
    source: str  # absolute path
    content_hash: str  # sha256 of the file bytes
    size: int
    mtime_ns: int
    format: str  # "bvh", "humanml3d", ...
    frame_range: tuple[int, int]  # source frames, end exclusive
    source_fps: float
    num_frames: int  # frames at the model's fps
    duration: float  # seconds
    skeleton: str  # preset name ("bandai", "cmu_bvh", "smpl", ...) or "custom"
    labels: list[str] = field(default_factory=list)
    joints: int = 0  # joint count of the source skeleton
    extra: dict = field(default_factory=dict)
    take: str = ""  # the take's name in a file holding several (FBX stack, glTF animation); "" otherwise
    text: dict = field(default_factory=dict)  # the library's words: {"name": ..., "label": ...} (library_text.py)
    text_vectors: dict = field(default_factory=dict)  # source -> pooled text embedding, base64 float16

    def to_dict(self) -> dict:
        data = asdict(self)
        data["frame_range"] = [int(v) for v in self.frame_range]
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "ClipRecord":
        data = {key: value for key, value in data.items() if key in _RECORD_FIELDS}  # newer fields: ignored
        data["frame_range"] = tuple(data["frame_range"])
        return cls(**data)


_RECORD_FIELDS = set(ClipRecord.__dataclass_fields__)


@dataclass
class WindowEmbedding:
    """One encoded window of a clip."""

    start: int  # first frame in the clip's model-rate timeline
    source_start: int  # [source_start, source_end) in source frames
    source_end: int
    patches: np.ndarray  # (P, D) float32, L2-normalised
    valid: np.ndarray  # (P,) bool


@dataclass
class WindowRef:
    """Where one stored window lives, for explanations and query-by-example."""

    chunk: Chunk
    index: int  # window index inside the chunk
    start: int
    source_start: int
    source_end: int


def _chunk_path(folder: Path, name: str) -> Path:
    return Path(folder) / CHUNK_DIR / name


def records_path(folder: Path, chunk_name: str) -> Path:
    return _chunk_path(folder, chunk_name.removesuffix(CHUNK_SUFFIX) + RECORDS_SUFFIX)


def _load_codecs(folder: Path, description: dict, checksum: str = "") -> tuple[RotatedCodec, RotatedCodec]:
    """(patch codec, pooled-vector codec) of an index; a damaged rotation would corrupt every score."""
    from safetensors.numpy import load_file

    path = Path(folder) / CODEC_FILE
    try:
        if checksum and file_checksum(path) != checksum:
            raise IndexFormatError(f"{path}: checksum mismatch: the codec every embedding is decoded with is "
                                   "damaged (restore it from a backup or re-index into a new folder)")
        rotation = load_file(path)["rotation"]
    except FileNotFoundError:
        raise IndexFormatError(f"{path} is missing: the index cannot be decoded") from None
    except IndexFormatError:
        raise
    except Exception as exc:  # safetensors raises its own error types on a damaged file
        raise IndexFormatError(f"{path} is unreadable ({exc})") from None
    square = rotation.ndim == 2 and rotation.shape[0] == rotation.shape[1]
    if not square or not np.all(np.isfinite(rotation)) or \
            not np.allclose(rotation @ rotation.T, np.eye(len(rotation)), atol=1e-3):
        raise IndexFormatError(f"{path}: the stored rotation is not orthonormal: the codec is damaged")
    try:
        return RotatedCodec.from_arrays(description, rotation)
    except (KeyError, ValueError) as exc:
        raise IndexFormatError(f"{folder}: {exc}") from None


class IndexReader:
    """An immutable snapshot of a committed index. Cheap to reopen: unchanged chunks are reused."""

    def __init__(self, folder: Path, manifest: Manifest, codecs: tuple[RotatedCodec, RotatedCodec],
                 chunks: list[Chunk], offline: list["OfflineChunk"] | None = None):
        self.folder = Path(folder)
        self.manifest = manifest
        self.codecs = codecs
        self.codec, self.pooled_codec = codecs
        self.chunks = chunks
        self.offline = list(offline or [])  # damaged chunks: quarantined from search until `--repair`
        self.manifest_raw: bytes | None = None  # the manifest's bytes when `open` read it (Manifest.raw)
        dead = {name: set(ids) for name, ids in manifest.tombstones.items()}
        self._by_id: dict[str, tuple[Chunk, int]] = {}
        for chunk in chunks:  # later chunks win, so an update supersedes its older copy
            gone = dead.get(chunk.name, set())
            for index, clip in enumerate(chunk.clips):
                if clip["clip_id"] not in gone:
                    self._by_id[clip["clip_id"]] = (chunk, index)

    @classmethod
    def open(cls, folder: str | Path, spec: IndexSpec | None = None,
             previous: "IndexReader | None" = None, attempts: int = 5,
             only: "set[str] | frozenset[str] | None" = None) -> "IndexReader":
        """Open the last committed state; with `spec`, refuse an index built by another model.

        `only`: open just these chunks (a cluster shard, see cluster.py); the others are neither read nor listed.
        """
        folder = Path(folder)
        for attempt in range(attempts):
            raw = Manifest.raw(folder)
            manifest = Manifest.read(folder, raw)  # parsed from those bytes (read again when they could not be)
            if spec is not None:
                manifest.check_spec(spec, folder)
            reuse = {chunk.name: chunk for chunk in previous.chunks} if previous is not None else {}
            chunks, offline = [], []
            for entry in manifest.chunks:
                if only is not None and entry.name not in only:
                    continue
                old = reuse.get(entry.name)
                if old is not None and old.unchanged_on_disk():
                    chunks.append(old)
                    continue
                try:
                    chunks.append(Chunk.open(_chunk_path(folder, entry.name), entry.bytes, entry.checksum or None))
                except ChunkFormatError as exc:
                    offline.append(OfflineChunk(entry.name, entry.clips, entry.windows, str(exc)))
            if offline and attempt + 1 < attempts and Manifest.read(folder).generation != manifest.generation:
                continue  # a compaction replaced the manifest and deleted a chunk between our two reads
            codecs = previous.codecs if previous is not None else \
                _load_codecs(folder, manifest.codec, manifest.codec_checksum)
            reader = cls(folder, manifest, codecs, chunks, offline)
            reader.manifest_raw = raw
            return reader
        raise IndexStoreError(f"{folder} kept changing while it was being opened; retry")

    def reopen_if_changed(self) -> "IndexReader":
        """This snapshot if it is still current, else a fresh one sharing the unchanged chunks.

        A chunk file replaced or truncated under us (a restore with `cp`, a disk error) also counts as a change:
        it is re-verified, and quarantined if damaged, before anything reads through its old mapping.
        """
        raw = Manifest.raw(self.folder)
        if raw is not None and raw == self.manifest_raw:
            generation = self.manifest.generation  # the same bytes: no need to parse them again
        else:
            try:
                generation = Manifest.read(self.folder, raw).generation
            except IndexStoreError:
                return self
        if generation == self.manifest.generation and all(chunk.unchanged_on_disk() for chunk in self.chunks):
            return self
        return IndexReader.open(self.folder, previous=self)

    def offline_summary(self) -> dict | None:
        """What part of the library is not searchable now (None when everything is online)."""
        if not self.offline:
            return None
        return {"chunks": [o.name for o in self.offline], "clips": sum(o.clips for o in self.offline),
                "windows": sum(o.windows for o in self.offline), "reasons": [o.reason for o in self.offline],
                "fix": f"mofind index --repair --index {self.folder}"}

    # -- clips -------------------------------------------------------------------------------------------
    @property
    def spec(self) -> IndexSpec:
        return self.manifest.spec

    @property
    def generation(self) -> int:
        return self.manifest.generation

    def __len__(self) -> int:
        return len(self._by_id)

    def __contains__(self, clip_id: object) -> bool:
        return clip_id in self._by_id

    def clip_ids(self) -> list[str]:
        return list(self._by_id)

    def live(self) -> list[tuple[Chunk, int]]:
        """(chunk, clip index) of every live clip, in chunk order."""
        return list(self._by_id.values())

    def clip(self, clip_id: str) -> ClipRecord:
        chunk, index = self._locate(clip_id)
        return ClipRecord.from_dict(chunk.clips[index])

    def clips(self) -> list[ClipRecord]:
        return [ClipRecord.from_dict(chunk.clips[i]) for chunk, i in self._by_id.values()]

    def thumbnail(self, clip_id: str) -> bytes | None:
        chunk, index = self._locate(clip_id)
        return chunk.thumbnail(index)

    def windows(self, clip_id: str) -> list[WindowRef]:
        chunk, index = self._locate(clip_id)
        start, source = chunk.arrays["win_start"], chunk.arrays["win_source"]
        return [WindowRef(chunk, int(w), int(start[w]), int(source[w, 0]), int(source[w, 1]))
                for w in chunk.clip_windows[index]]

    def window_patches(self, ref: WindowRef) -> tuple[np.ndarray, np.ndarray]:
        """Decoded patches of one window in the model's space, (P, D) float32 with invalid rows zero, + valid."""
        num = self.spec.num_patches
        valid = ref.chunk.valid_mask(ref.index, num)
        patches = np.zeros((num, self.spec.dim), np.float32)
        patches[valid] = self.codec.decode_original(ref.chunk.window_packed(ref.index))
        return patches, valid

    @property
    def num_windows(self) -> int:
        live = self.live()
        return sum(len(chunk.clip_windows[i]) for chunk, i in live)

    def disk_bytes(self) -> int:
        return sum(entry.bytes for entry in self.manifest.chunks)

    def _locate(self, clip_id: str) -> tuple[Chunk, int]:
        try:
            return self._by_id[clip_id]
        except KeyError:
            raise KeyError(f"clip {clip_id!r} is not in the index {self.folder}") from None


@dataclass(frozen=True)
class OfflineChunk:
    """A chunk the manifest lists but that failed verification: its clips are not searched until repaired."""

    name: str
    clips: int
    windows: int
    reason: str


@dataclass
class _PendingClip:
    record: ClipRecord
    packed: np.ndarray  # (n_valid_total, codec.bytes_per_vector) uint8
    pooled: np.ndarray  # (W*K, pooled_codec.bytes_per_vector) uint8
    coarse: np.ndarray  # (W*COARSE_SIZE, pooled_codec.bytes_per_vector) uint8 (pooling.region_codes)
    counts: np.ndarray  # (W,) valid patches per window
    valid_bits: np.ndarray  # (W, ceil(P/8)) uint8
    source: np.ndarray  # (W, 2) int32
    start: np.ndarray  # (W,) int32
    thumbnail: bytes


class IndexWriter:
    """Exclusive writer: add / update / remove clips, commit atomically, compact.

    Use as a context manager; leaving the block normally commits, an exception discards what was not
    committed (the committed state stays valid, and a rerun of `mofind index` resumes from it).
    """

    def __init__(self, folder: str | Path, spec: IndexSpec, *, create: bool = True, lock_timeout: float = 0.0):
        self.folder = Path(folder)
        if create:
            self.folder.mkdir(parents=True, exist_ok=True)
        elif not (self.folder / MANIFEST_NAME).exists():
            raise IndexNotFoundError(f"{self.folder} is not a MoFind index (no {MANIFEST_NAME})")
        self._lock = WriteLock(self.folder, timeout=lock_timeout).acquire()
        try:
            self._open(spec, create)
        except BaseException:
            self._lock.release()
            raise
        self._pending: list[_PendingClip] = []

    def _open(self, spec: IndexSpec, create: bool) -> None:
        (self.folder / CHUNK_DIR).mkdir(exist_ok=True)
        try:
            self.manifest = Manifest.read(self.folder)
        except IndexNotFoundError:
            if not create:
                raise
            codec = RotatedCodec.create(spec.dim)
            from safetensors.numpy import save

            codec_bytes = save({"rotation": codec.rotation})
            write_atomic(self.folder / CODEC_FILE, codec_bytes)
            self.manifest = Manifest(spec=spec, codec=codec.describe(POOLED_BITS), pool=POOL_NAME,
                                     codec_checksum=bytes_checksum(codec_bytes))
            self.manifest.write(self.folder)
        self.manifest.check_spec(spec, self.folder)
        self.codecs = _load_codecs(self.folder, self.manifest.codec, self.manifest.codec_checksum)
        self.codec, self.pooled_codec = self.codecs
        self._remove_orphans()
        self._reader = IndexReader.open(self.folder)

    def _remove_orphans(self) -> None:
        """Chunk files no manifest lists are leftovers of a crash or a compaction: delete them."""
        listed = {entry.name for entry in self.manifest.chunks}
        chunk_dir = self.folder / CHUNK_DIR
        for path in chunk_dir.glob(f"{CHUNK_PREFIX}*{CHUNK_SUFFIX}"):
            if path.name not in listed:
                path.unlink(missing_ok=True)
        for path in chunk_dir.glob(f"{CHUNK_PREFIX}*{RECORDS_SUFFIX}"):
            if path.name.removesuffix(RECORDS_SUFFIX) + CHUNK_SUFFIX not in listed:
                path.unlink(missing_ok=True)
        remove_stale_temps(chunk_dir)
        remove_stale_temps(self.folder)

    # -- queries on the committed + pending state ------------------------------------------------------
    @property
    def spec(self) -> IndexSpec:
        return self.manifest.spec

    @property
    def reader(self) -> IndexReader:
        """The committed state (pending clips excluded)."""
        return self._reader

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def known_sources(self) -> dict[str, ClipRecord]:
        """source path -> record, for every live clip (committed or pending)."""
        known = {record.source: record for record in self._reader.clips()}
        known.update({p.record.source: p.record for p in self._pending})
        return known

    # -- changes -----------------------------------------------------------------------------------------
    def add(self, record: ClipRecord, windows: list[WindowEmbedding], thumbnail: bytes | None = None) -> None:
        """Stage a clip (replacing any live clip with the same id at the next commit)."""
        spec = self.spec
        if not windows:
            raise ValueError(f"{record.source}: no windows to index")
        kept, grids, valids, counts, bits, source, start = [], [], [], [], [], [], []
        for window in windows:
            patches = np.asarray(window.patches, dtype=np.float32)
            if patches.shape != (spec.num_patches, spec.dim):
                raise ValueError(f"{record.source}: window patches have shape {patches.shape}, the index "
                                 f"expects {(spec.num_patches, spec.dim)}")
            valid = np.ones(spec.num_patches, bool) if not spec.patch_mask else np.asarray(window.valid, bool)
            if not valid.any():
                raise ValueError(f"{record.source}: window at frame {window.start} has no valid patch")
            kept.append(patches[valid])
            grids.append(patches)
            valids.append(valid)
            counts.append(int(valid.sum()))
            bits.append(np.packbits(valid))
            source.append((window.source_start, window.source_end))
            start.append(window.start)
        self._drop_pending(record.clip_id)
        pooled = self.pooled_codec.encode(cluster_pool(np.stack(grids), np.stack(valids)).reshape(-1, spec.dim))
        self._pending.append(_PendingClip(
            record=record, packed=self.codec.encode(np.concatenate(kept)), pooled=pooled,
            coarse=region_codes(np.stack(grids), np.stack(valids), spec.grid, spec.part_names, self.pooled_codec),
            counts=np.asarray(counts, np.int64), valid_bits=np.stack(bits),
            source=np.asarray(source, np.int32).reshape(-1, 2), start=np.asarray(start, np.int32),
            thumbnail=thumbnail or b""))

    def remove(self, clip_ids) -> int:
        """Tombstone clips by id (committed or pending); returns how many were live."""
        removed = 0
        for clip_id in set(clip_ids):
            found = self._drop_pending(clip_id) > 0
            if clip_id in self._reader:
                chunk, _ = self._reader._locate(clip_id)
                self.manifest.tombstones.setdefault(chunk.name, []).append(clip_id)
                found = True
            removed += found
        if removed:
            self._reader = IndexReader(self.folder, self.manifest, self.codecs, self._reader.chunks)
        return removed

    def drop_chunks(self, names) -> int:
        """Unlist chunks (damaged ones, after `--repair` re-encoded what they held); returns how many."""
        names = set(names)
        before = len(self.manifest.chunks)
        self.manifest.chunks = [entry for entry in self.manifest.chunks if entry.name not in names]
        if len(self.manifest.chunks) != before:
            self.commit()
            self._publish(self.manifest.generation + 1)
        return before - len(self.manifest.chunks)

    def relocate(self, clip_id: str, new_source: str | Path, size: int, mtime_ns: int,
                 text: dict | None = None, text_vectors: dict | None = None) -> str:
        """A take moved or renamed within the library: same content, new path. Its codes are copied bit-exact
        under the new path's id (no re-encoding); `text`/`text_vectors` replace its words (library_text.py), which
        a new name changes. Returns the new clip id."""
        from .labels import labels_from_name

        chunk, index = self._reader._locate(clip_id)
        staged = _restage(chunk, index, self)
        new_source = str(new_source)
        staged.record = replace(staged.record, clip_id=clip_id_for(new_source, staged.record.take), source=new_source,
                                size=size,
                                mtime_ns=mtime_ns, labels=labels_from_name(new_source))
        if text is not None:
            staged.record = replace(staged.record, text=dict(text), text_vectors=dict(text_vectors or {}))
        self.remove([clip_id])
        self._drop_pending(staged.record.clip_id)
        self._pending.append(staged)
        return staged.record.clip_id

    def remove_prefix(self, prefix: str) -> int:
        """Remove every clip whose source path starts with `prefix`."""
        ids = [r.clip_id for r in self._reader.clips() if r.source.startswith(prefix)]
        ids += [p.record.clip_id for p in self._pending if p.record.source.startswith(prefix)]
        return self.remove(ids)

    def _drop_pending(self, clip_id: str) -> int:
        before = len(self._pending)
        self._pending = [p for p in self._pending if p.record.clip_id != clip_id]
        return before - len(self._pending)

    # -- commit ------------------------------------------------------------------------------------------
    def commit(self) -> int:
        """Write staged clips as one new chunk and publish it; returns the number of clips committed."""
        pending, self._pending = self._pending, []
        if not pending and not self._dirty_tombstones():
            return 0
        generation = self.manifest.generation + 1
        if pending:
            for item in pending:  # an update supersedes the older copy of the same clip
                if item.record.clip_id in self._reader:
                    chunk, _ = self._reader._locate(item.record.clip_id)
                    self.manifest.tombstones.setdefault(chunk.name, []).append(item.record.clip_id)
            entry = self._write_chunk(f"{CHUNK_PREFIX}{generation:06d}{CHUNK_SUFFIX}", _assemble(pending))
            self.manifest.chunks.append(entry)
        self._publish(generation)
        return len(pending)

    def _dirty_tombstones(self) -> bool:
        committed = Manifest.read(self.folder).tombstones
        return {k: sorted(v) for k, v in committed.items() if v} != \
            {k: sorted(v) for k, v in self.manifest.tombstones.items() if v}

    def _write_chunk(self, name: str, assembled: tuple[dict, list[dict]]) -> ChunkEntry:
        """Chunk (read-only file) + its clip records beside it; the manifest entry carries the checksum."""
        arrays, clips = assembled
        data = chunk_bytes(arrays, clips)
        records = [{key: clip.get(key) for key in ("clip_id", "source", "content_hash", "frame_range")}
                   for clip in clips]
        write_atomic(records_path(self.folder, name), (json.dumps(records) + "\n").encode("utf-8"))
        path = _chunk_path(self.folder, name)
        write_atomic(path, data)
        path.chmod(0o444)
        return ChunkEntry(name=name, clips=len(clips), windows=int(len(arrays["win_clip"])), bytes=len(data),
                          checksum=bytes_checksum(data))

    def _publish(self, generation: int) -> None:
        listed = {entry.name for entry in self.manifest.chunks}
        self.manifest.tombstones = {name: sorted(set(ids)) for name, ids in self.manifest.tombstones.items()
                                    if ids and name in listed}
        self.manifest.generation = generation
        self.manifest.write(self.folder)
        self._reader = IndexReader.open(self.folder, previous=self._reader)

    # -- compaction --------------------------------------------------------------------------------------
    def needs_compaction(self, max_small_chunks: int = 64, max_dead_fraction: float = 0.25) -> bool:
        """Worth compacting: many small chunk files (slow to open), or a quarter of the stored clips are dead."""
        stored = sum(entry.clips for entry in self.manifest.chunks)
        dead = sum(len(ids) for ids in self.manifest.tombstones.values())
        small = sum(entry.windows < TARGET_CHUNK_WINDOWS // 2 for entry in self.manifest.chunks)
        return small > max_small_chunks or (stored > 0 and dead / stored > max_dead_fraction)

    def compact(self, target_windows: int = TARGET_CHUNK_WINDOWS) -> dict:
        """Rewrite chunks that hold dead clips, and merge small chunks into chunks of about `target_windows`.

        A chunk is "small" below half the target; small chunks are merged in commit order into the fewest new
        chunks of at most `target_windows` windows each, all about the same size (`chunk_share`; a clip is never
        split), so a million-window index settles at ~1e6 / target files however it was built, no compaction
        rewrites the whole library into one file, and a search's threads share a small library evenly. Codes are
        copied bit-exact. Returns {"chunks_before", "chunks_after", "dropped_clips"}.
        """
        self.commit()
        dead = {name for name, ids in self.manifest.tombstones.items() if ids}
        offline = {o.name for o in self._reader.offline}  # never rewrite (and so lose) what only --repair may fix
        victims = [e for e in self.manifest.chunks
                   if e.name not in offline and (e.name in dead or e.windows < target_windows // 2)]
        before = len(self.manifest.chunks)
        dropped = sum(len(ids) for ids in self.manifest.tombstones.values())
        if not dead and len(victims) < 2:
            return {"chunks_before": before, "chunks_after": before, "dropped_clips": 0}
        victim_names = {e.name for e in victims}
        moved = [(chunk, index) for chunk, index in self._reader.live() if chunk.name in victim_names]
        share = chunk_share(sum(len(chunk.clip_windows[index]) for chunk, index in moved), target_windows)
        groups: list[list[_PendingClip]] = [[]]
        filled = 0
        for chunk, index in moved:
            windows = len(chunk.clip_windows[index])
            if starts_new_chunk(filled, windows, share, target_windows):
                groups.append([])
                filled = 0
            groups[-1].append(_restage(chunk, index, self))
            filled += windows
        generation = self.manifest.generation
        kept = [e for e in self.manifest.chunks if e.name not in victim_names]
        for group in (g for g in groups if g):  # one generation number per new file: names stay unique
            generation += 1
            kept.append(self._write_chunk(f"{CHUNK_PREFIX}{generation:06d}{CHUNK_SUFFIX}", _assemble(group)))
        generation = max(generation, self.manifest.generation + 1)
        self.manifest.chunks = kept
        self._publish(generation)
        for name in victim_names:  # readers that still map them keep working (POSIX unlink semantics)
            _chunk_path(self.folder, name).unlink(missing_ok=True)
            records_path(self.folder, name).unlink(missing_ok=True)
        fsync_dir(self.folder / CHUNK_DIR)
        return {"chunks_before": before, "chunks_after": len(kept), "dropped_clips": dropped}

    # -- lifecycle ---------------------------------------------------------------------------------------
    def close(self) -> None:
        self._pending = []
        self._lock.release()

    def __enter__(self) -> "IndexWriter":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        try:
            if exc_type is None:
                self.commit()
        finally:
            self.close()


def _restage(chunk: Chunk, index: int, store) -> _PendingClip:
    """A committed clip, as staged data again (for compaction); `store`: the reader or writer of its index (spec
    and codecs). A chunk written before region tables gets one from its decoded patch codes."""
    windows = chunk.clip_windows[index]
    arrays = chunk.arrays
    offsets = arrays["win_offsets"]
    k = len(arrays["pooled"]) // max(chunk.num_windows, 1)
    packed = np.concatenate([arrays["patches"][offsets[w]:offsets[w + 1]] for w in windows])
    pooled = np.asarray(np.concatenate([arrays["pooled"][w * k:(w + 1) * k] for w in windows]))
    stored = arrays.get(REGIONS_ARRAY)
    if stored is not None and len(stored) == chunk.num_windows * COARSE_SIZE:
        coarse = np.concatenate([stored[w * COARSE_SIZE:(w + 1) * COARSE_SIZE] for w in windows])
    else:
        spec = store.spec
        valid = np.stack([chunk.valid_mask(w, spec.num_patches) for w in windows])
        grids = np.zeros((len(windows), spec.num_patches, spec.dim), np.float32)
        grids[valid] = store.codec.decode(np.asarray(packed))  # rows of valid patches, window after window
        coarse = region_codes(grids, valid, spec.grid, spec.part_names, store.pooled_codec, rotated=True)
    return _PendingClip(
        record=ClipRecord.from_dict(chunk.clips[index]), packed=np.asarray(packed), pooled=pooled,
        coarse=np.asarray(coarse),
        counts=np.asarray([offsets[w + 1] - offsets[w] for w in windows], np.int64),
        valid_bits=np.asarray(arrays["win_valid"][windows]), source=np.asarray(arrays["win_source"][windows]),
        start=np.asarray(arrays["win_start"][windows]), thumbnail=chunk.thumbnail(index) or b"")


def _assemble(items: list[_PendingClip]) -> tuple[dict, list[dict]]:
    counts = np.concatenate([item.counts for item in items])
    thumbs = [item.thumbnail for item in items]
    arrays = {
        "patches": np.concatenate([item.packed for item in items]),
        "pooled": np.concatenate([item.pooled for item in items]),
        REGIONS_ARRAY: np.concatenate([item.coarse for item in items]),
        "win_offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
        "win_valid": np.concatenate([item.valid_bits for item in items]),
        "win_clip": np.concatenate([np.full(len(item.counts), i, np.int32) for i, item in enumerate(items)]),
        "win_source": np.concatenate([item.source for item in items]).astype(np.int32),
        "win_start": np.concatenate([item.start for item in items]).astype(np.int32),
        "thumb_bytes": np.frombuffer(b"".join(thumbs), dtype=np.uint8),
        "thumb_offsets": np.concatenate([[0], np.cumsum([len(t) for t in thumbs])]).astype(np.int64),
    }
    return arrays, [item.record.to_dict() for item in items]

