"""The null model of match quality: how well text that describes no motion scores against *this* library.

A MaxSim score means little on its own: its level depends on the model, on the words, and on the library (the
best of 5,000 windows is higher than the best of 15, whatever the query). So every search is compared with a
fixed bank of unrelated texts (`null_texts.txt`, shipped) searched the same way against the same takes: their
best scores form the null distribution, and a result that scores no better than them is no better than
unrelated text. The distribution is cached per index generation, model, bank, filters and mode, in memory and
on disk (`cache_dir()/quality-null/`), and recomputed when the index changes.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

NULL_TEXTS_FILE = Path(__file__).resolve().with_name("null_texts.txt")
MEMORY_ENTRIES = 32  # distributions kept in memory (one per index generation x filters x mode)
DISK_ENTRIES = 256  # files kept in the disk cache (the oldest go first)


def load_null_texts(path: str | Path = NULL_TEXTS_FILE) -> tuple[str, ...]:
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    texts = tuple(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))
    if len(texts) < 10:
        raise ValueError(f"{path}: a null bank needs at least 10 texts, found {len(texts)}")
    return texts


def texts_sha256(texts) -> str:
    return hashlib.sha256("\n".join(texts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class NullDistribution:
    """Best-take scores of the null texts against one searched set of takes."""

    tops: tuple[float, ...]

    @property
    def mean(self) -> float:
        return float(np.mean(self.tops))

    @property
    def std(self) -> float:
        return max(float(np.std(self.tops)), 1e-3)  # a floor: a 15-take library can give near-equal tops

    @property
    def high(self) -> float:
        """The 95th percentile: what unrelated text reaches in the best case."""
        return float(np.percentile(self.tops, 95))

    def z(self, scores) -> np.ndarray:
        """How many null standard deviations above the null mean each score lies."""
        return (np.asarray(scores, np.float64) - self.mean) / self.std

    def summary(self) -> dict:
        return {"texts": len(self.tops), "mean": round(self.mean, 6), "std": round(self.std, 6),
                "p95": round(self.high, 6)}


class NullModel:
    """Null distributions of one encoder, computed on demand for a searcher's current snapshot."""

    def __init__(self, encoder, texts: tuple[str, ...] | None = None, *, text_lock: threading.Lock | None = None,
                 cache_dir: Path | None = None):
        self.encoder = encoder
        self.texts = texts if texts is not None else load_null_texts()
        self.bank_sha = texts_sha256(self.texts)
        self._text_lock = text_lock or threading.Lock()
        self._lock = threading.Lock()
        self._tokens: list[np.ndarray] | None = None
        self._memory: OrderedDict[str, NullDistribution] = OrderedDict()
        self._cache_dir = cache_dir

    def tokens(self) -> list[np.ndarray]:
        """The null texts encoded once (under the text lock: tokenizers are not thread-safe)."""
        if self._tokens is None:
            with self._text_lock:
                encoded = self.encoder.encode_texts(list(self.texts))
            self._tokens = [tokens for tokens, _ in encoded if len(tokens)]
        return self._tokens

    def distribution(self, searcher, filters=None, mode: str = "auto", snapshot=None) -> NullDistribution | None:
        """The null distribution for `searcher`'s takes under `filters` (None when no take can be searched)."""
        from mofind.index.search import Filters

        snapshot = snapshot or searcher.snapshot
        if not isinstance(filters, Filters):
            filters = Filters.from_dict(filters)
        key = self._key(snapshot, filters, searcher.resolve_mode(mode, snapshot))
        with self._lock:
            found = self._memory.get(key) or self._read_disk(key)
            if found is None:
                hits = searcher.search_tokens(self.tokens(), k=1, filters=filters, mode=mode)
                tops = tuple(float(h[0].score) for h in hits if h)
                if not tops:
                    return None
                found = NullDistribution(tops)
                self._write_disk(key, found)
            self._memory[key] = found
            self._memory.move_to_end(key)
            while len(self._memory) > MEMORY_ENTRIES:  # a long-running server sees many generations and filters
                self._memory.popitem(last=False)
            return found

    def _key(self, snapshot, filters, mode: str) -> str:
        reader = snapshot.reader
        manifest = reader.manifest
        identity = {"index": str(Path(reader.folder).resolve()), "generation": reader.generation,
                    "created": manifest.created, "chunks": [entry.name for entry in manifest.chunks],
                    "clips": len(reader), "model": reader.spec.model_hash, "bank": self.bank_sha,
                    "filters": asdict(filters), "mode": mode}
        return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]

    def _disk_path(self, key: str) -> Path | None:
        if self._cache_dir is None:
            from mofind.paths import cache_dir

            try:
                self._cache_dir = cache_dir() / "quality-null"
            except OSError:
                return None
        return self._cache_dir / f"{key}.json"

    def _read_disk(self, key: str) -> NullDistribution | None:
        path = self._disk_path(key)
        try:
            data = json.loads(path.read_text(encoding="utf-8")) if path is not None else None
            return NullDistribution(tuple(float(v) for v in data["tops"])) if data else None
        except (OSError, ValueError, KeyError, TypeError):
            return None  # absent or damaged: recompute

    def _write_disk(self, key: str, found: NullDistribution) -> None:
        path = self._disk_path(key)
        if path is None:
            return
        try:
            from mofind.index.atomic import write_atomic

            path.parent.mkdir(parents=True, exist_ok=True)
            write_atomic(path, json.dumps({"tops": list(found.tops)}).encode())
            files = sorted(path.parent.glob("*.json"), key=lambda p: p.stat().st_mtime)
            for old in files[:-DISK_ENTRIES]:
                old.unlink(missing_ok=True)
        except OSError as exc:  # a read-only cache only costs recomputation
            log.warning("cannot cache the null distribution in %s: %s", path, exc)
