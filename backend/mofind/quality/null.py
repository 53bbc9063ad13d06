"""The null model of match quality: how well text that describes no motion scores against *this* library.

A MaxSim score means little on its own: its level depends on the model, on the words, and on the library (the
best of 5,000 windows is higher than the best of 15, whatever the query). So every search is compared with a
fixed bank of unrelated texts (`null_texts.txt`, shipped) searched the same way against the same takes: their
best scores form the null distribution, and a result that scores no better than them is no better than
unrelated text. The distribution is cached per index generation, model, bank, filters and mode, in memory and
on disk (`cache_dir()/quality-null/`), and recomputed when the index changes.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import threading
import weakref
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

    # computed once (cached_property writes the instance dict, which a frozen dataclass allows): every search
    # reads them several times, and each numpy pass over the tuple cost ~0.1 ms
    @functools.cached_property
    def mean(self) -> float:
        return float(np.mean(self.tops))

    @functools.cached_property
    def std(self) -> float:
        return max(float(np.std(self.tops)), 1e-3)  # a floor: a 15-take library can give near-equal tops

    @functools.cached_property
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
    """Null distributions of one encoder, computed on demand for a searcher's current snapshot.

    With `background=True` (the server) a library that changed since its last distribution gets the previous
    one at once while the new one is computed in a thread: a few added takes barely move the null, and a search
    during bulk indexing (a commit every 64 takes) should not wait for it. Without it (the CLI) the distribution
    is recomputed before answering.
    """

    def __init__(self, encoder, texts: tuple[str, ...] | None = None, *, text_lock: threading.Lock | None = None,
                 cache_dir: Path | None = None, background: bool = False):
        self.encoder = encoder
        self.texts = texts if texts is not None else load_null_texts()
        self.bank_sha = texts_sha256(self.texts)
        self.background = background
        self._text_lock = text_lock or threading.Lock()
        self._lock = threading.Lock()
        self._tokens: list[np.ndarray] | None = None
        self._memory: OrderedDict[str, NullDistribution] = OrderedDict()
        self._latest: dict[str, NullDistribution] = {}  # per library family (any generation): the newest one
        self._pending: dict[str, threading.Thread] = {}
        self._cache_dir = cache_dir
        # snapshot -> {(filters, mode, text precision): keys}; a snapshot never changes, and the keys cost ~0.5 ms
        # a search (a resolved path, a dataclass copied to a dict, two JSON digests)
        self._key_memo: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

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
        mode = searcher.resolve_mode(mode, snapshot)
        key, family = self._keys(snapshot, filters, mode)
        with self._lock:
            found = self._memory.get(key) or self._read_disk(key)
            if found is not None:
                return self._remember(key, family, found)
            stale = self._latest.get(family) if self.background else None
            if stale is not None:
                if key not in self._pending:
                    thread = threading.Thread(target=self._compute_later, name="mofind-null", daemon=True,
                                              args=(searcher, snapshot, filters, mode, key, family))
                    self._pending[key] = thread
                    thread.start()
                return stale
            found = self._compute(searcher, snapshot, filters, mode)
            if found is None:
                return None
            self._write_disk(key, found)
            return self._remember(key, family, found)

    def wait(self, timeout: float | None = None) -> None:
        """Wait for distributions being computed in the background (tests, shutdown)."""
        for thread in list(self._pending.values()):
            thread.join(timeout)

    def _compute(self, searcher, snapshot, filters, mode: str) -> NullDistribution | None:
        """Best score of every null text over the allowed windows, exactly as `Searcher.search_tokens` scores."""
        from mofind.index.search import default_candidates

        allowed = searcher.allowed_windows(snapshot, filters)
        if len(allowed) == 0:
            return None
        scores = searcher.score_windows(self.tokens(), allowed, mode=mode,
                                        candidates=default_candidates(len(allowed)), snapshot=snapshot)
        return NullDistribution(tuple(float(v) for v in scores.max(axis=0)))

    def _compute_later(self, searcher, snapshot, filters, mode: str, key: str, family: str) -> None:
        try:
            found = self._compute(searcher, snapshot, filters, mode)
            if found is not None:
                self._write_disk(key, found)
                with self._lock:
                    self._remember(key, family, found)
        except Exception:  # noqa: BLE001 - the stale distribution keeps serving; the next search retries
            log.exception("computing the null distribution in the background failed")
        finally:
            with self._lock:
                self._pending.pop(key, None)

    def _remember(self, key: str, family: str, found: NullDistribution) -> NullDistribution:
        self._memory[key] = found
        self._memory.move_to_end(key)
        while len(self._memory) > MEMORY_ENTRIES:  # a long-running server sees many generations and filters
            self._memory.popitem(last=False)
        self._latest[family] = found
        return found

    def _keys(self, snapshot, filters, mode: str) -> tuple[str, str]:
        """(this exact library state, its family: the same index, model, bank, filters and mode at any time)."""
        asked = (filters, mode, self.encoder.text_precision)
        with self._lock:
            known = self._key_memo.setdefault(snapshot, {})
            keys = known.get(asked)
        if keys is None:
            keys = self._compute_keys(snapshot, filters, mode)
            with self._lock:
                if len(known) >= MEMORY_ENTRIES:  # one snapshot searched with many different filters
                    known.clear()
                known[asked] = keys
        return keys

    def _compute_keys(self, snapshot, filters, mode: str) -> tuple[str, str]:
        reader = snapshot.reader
        manifest = reader.manifest
        family = {"index": str(Path(reader.folder).resolve()), "model": reader.spec.model_hash,
                  "text": self.encoder.text_precision, "bank": self.bank_sha,
                  "filters": asdict(filters), "mode": mode}
        state = {**family, "generation": reader.generation, "created": manifest.created,
                 "chunks": [entry.name for entry in manifest.chunks], "clips": len(reader)}
        return _digest(state), _digest(family)

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


def _digest(identity: dict) -> str:
    return hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:24]
