"""Keeping an index healthy: verify it, repair damaged chunks from their source files, prune vanished takes.

- `verify_index` is read-only: manifest, codec and every chunk (checksum + structure), plus which sources exist.
- `repair_index` re-encodes the clips of damaged chunks from their source files (listed in the chunk's
  `.clips.json` records, or in its own header when that survived), drops the clips whose files are gone, and
  moves the damaged files to `quarantine/` (kept for inspection, never read again). Re-encoding happens before
  the damaged chunk is dropped, so an interrupted repair loses nothing and a rerun finishes it.
- `prune_index` removes clips whose source files no longer exist.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
from pathlib import Path

from .chunk import Chunk, ChunkFormatError
from .manifest import IndexSpec, IndexStoreError, Manifest
from .store import CHUNK_DIR, QUARANTINE_DIR, IndexReader, IndexWriter, _chunk_path, _load_codecs, records_path


def verify_index(folder: str | Path) -> dict:
    """A full, read-only check; `ok` is False when anything is damaged (the report says what and where)."""
    folder = Path(folder)
    report: dict = {"index": str(folder), "ok": False, "manifest": "ok", "codec": "ok", "chunks": [],
                    "clips": 0, "clips_offline": 0, "missing_sources": []}
    try:
        manifest = Manifest.read(folder)
    except IndexStoreError as exc:
        report["manifest"] = str(exc)
        return report
    try:
        _load_codecs(folder, manifest.codec, manifest.codec_checksum)
    except IndexStoreError as exc:
        report["codec"] = str(exc)
    dead = {name: set(ids) for name, ids in manifest.tombstones.items()}
    live_sources: dict[str, str] = {}
    for entry in manifest.chunks:
        row = {"name": entry.name, "clips": entry.clips, "windows": entry.windows,
               "status": "ok" if entry.checksum else "unverified"}
        try:
            chunk = Chunk.open(_chunk_path(folder, entry.name), entry.bytes, entry.checksum or None)
        except ChunkFormatError as exc:
            row.update(status="damaged", reason=str(exc))
            report["clips_offline"] += entry.clips
        else:
            for clip in chunk.clips:
                if clip["clip_id"] not in dead.get(entry.name, ()):
                    live_sources[clip["clip_id"]] = str(clip.get("source", ""))
        report["chunks"].append(row)
    report["clips"] = len(live_sources)
    report["missing_sources"] = sorted(s for s in set(live_sources.values()) if not os.path.exists(s))
    report["ok"] = report["codec"] == "ok" and all(row["status"] != "damaged" for row in report["chunks"])
    return report


def damaged_chunk_sources(folder: Path, name: str) -> list[str] | None:
    """Source paths of the clips a damaged chunk held: its records file, else its own header; None if lost."""
    try:
        records = json.loads(records_path(folder, name).read_text(encoding="utf-8"))
        return [str(r["source"]) for r in records]
    except (OSError, ValueError, TypeError, KeyError):
        pass
    try:  # the safetensors header sits at the front, so a truncated or bit-flipped body often leaves it intact
        with open(_chunk_path(folder, name), "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            header = json.loads(handle.read(min(length, 64 * 1024 * 1024)))
        return [str(r["source"]) for r in json.loads(header["__metadata__"]["clips"])]
    except (OSError, ValueError, TypeError, KeyError, struct.error):
        return None


def repair_index(folder: str | Path, encoder, *, workers: int = 0) -> dict:
    """Re-encode the clips of damaged chunks, drop those whose files are gone, quarantine the damaged files."""
    from .build import build_index

    folder = Path(folder)
    spec = IndexSpec.from_encoder(encoder)
    reader = IndexReader.open(folder, spec)
    report = {"index": str(folder), "damaged_chunks": [o.name for o in reader.offline], "reencoded": 0,
              "dropped": [], "unrecoverable_chunks": [], "failed": []}
    if not reader.offline:
        return report | {"clips_in_index": len(reader)}
    to_reencode: list[str] = []
    for offline in reader.offline:
        sources = damaged_chunk_sources(folder, offline.name)
        if sources is None:
            report["unrecoverable_chunks"].append(offline.name)
            continue
        for source in sources:
            (to_reencode if os.path.isfile(source) else report["dropped"]).append(source)
    if to_reencode:
        built = build_index(to_reencode, folder, encoder, workers=workers, recursive=False)
        report["reencoded"] = built.indexed + built.skipped
        report["failed"] = [{"path": p, "error": e} for p, e in built.failed]
    with IndexWriter(folder, spec, create=False) as writer:
        gone = set(report["damaged_chunks"])
        writer.drop_chunks(gone)
        quarantine = folder / QUARANTINE_DIR
        quarantine.mkdir(exist_ok=True)
        for name in gone:
            for path in (_chunk_path(folder, name), records_path(folder, name)):
                if path.exists():
                    shutil.move(str(path), quarantine / path.name)
        report["clips_in_index"] = len(writer.reader)
    return report


def prune_index(folder: str | Path, spec: IndexSpec) -> dict:
    """Remove clips whose source files no longer exist (a take moved elsewhere is found again by content hash
    at the next `mofind index` of its new folder, without re-encoding)."""
    with IndexWriter(folder, spec, create=False) as writer:
        missing = [r for r in writer.reader.clips() if not os.path.exists(r.source)]
        writer.remove([r.clip_id for r in missing])
        writer.commit()
        return {"pruned": len(missing), "pruned_sources": sorted(r.source for r in missing),
                "clips_in_index": len(writer.reader)}


__all__ = ["verify_index", "repair_index", "prune_index", "damaged_chunk_sources", "CHUNK_DIR"]
