"""Search an index whose chunks are held by Ray actors on many machines (`mofind serve --cluster ADDRESS`).

`ShardedSearcher` offers what the server uses of `Searcher` and answers exactly as a single-machine
`Searcher` over the same index would:

  * The manifest's chunks are split into shards (`plan_shards`, a pure function of the manifest, so the
    server and every actor agree on it without talking); each `ShardServer` actor opens only its chunks
    (`IndexReader.open(only=...)`) from the shared index folder. A take lives in one chunk, so each shard's
    one-result-per-take top-k is already final for its takes and the merge is a sort.
  * Exact mode (and two-stage when the shortlist would hold every window): one round trip.
  * Two-stage: the single-machine rule shortlists the C windows with the best first-stage (pooled) score
    over the *whole* library. A shard cannot know that cut alone, so the first round trip returns each
    shard's C best first-stage scores, the server takes the C-th best of their union (the global cut), and
    the second round re-ranks on every shard exactly the windows at or above it. Without that, a window that
    is in its own shard's top C but not in the global top C could reach the results.
  * A shard that does not answer (its actor died and Ray is restarting it, `max_restarts=-1`, or it timed
    out) is skipped: the reply is built from the others, and `offline_summary()` says which chunks, clips
    and windows were not searched, in the same shape as quarantined chunks (`reply["meta"]["offline"]`).

Query-by-example (`similar`), `explain` and `get_motion` run on the server node, reading the same shared
index folder (`local`). Everything here needs `ray` (the optional `cluster` extra).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import uuid
from collections import OrderedDict

import numpy as np

from .manifest import ChunkEntry
from .search import Filters, Hit, SearchError, Searcher, default_candidates
from .store import IndexReader

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT = 60.0  # seconds a shard may take to answer one round before it counts as offline
FIRST_STAGE_CACHE = 8  # first-stage scores kept per actor between the two rounds of a two-stage query


class ClusterUnavailableError(RuntimeError):
    """Ray is not installed, or the cluster cannot be reached."""


def connect(address: str, **init_args) -> None:
    """Join the Ray cluster at `address` ("auto", "HOST:PORT" or "ray://HOST:PORT") unless already joined."""
    try:
        import ray
    except ImportError:
        raise ClusterUnavailableError("--cluster needs Ray: pip install 'mofind[cluster]' "
                                      "(or pip install -r requirements-cluster.txt)") from None
    if ray.is_initialized():
        return
    try:
        ray.init(address=address, log_to_driver=False, **init_args)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise ClusterUnavailableError(f"cannot join the Ray cluster at {address}: {exc}") from None


def plan_shards(entries: list[ChunkEntry], count: int) -> list[frozenset[str]]:
    """Chunk names per shard, balanced by window count (largest chunk to the lightest shard, ties by order).

    >>> e = [ChunkEntry("a", 1, 10, 0), ChunkEntry("b", 1, 6, 0), ChunkEntry("c", 1, 5, 0)]
    >>> [sorted(s) for s in plan_shards(e, 2)]
    [['a'], ['b', 'c']]
    """
    if count < 1:
        raise ValueError("a sharded index needs at least one shard")
    loads = [0] * count
    names: list[list[str]] = [[] for _ in range(count)]
    for entry in sorted(entries, key=lambda e: (-e.windows, e.name)):
        lightest = min(range(count), key=lambda s: (loads[s], s))
        loads[lightest] += entry.windows
        names[lightest].append(entry.name)
    return [frozenset(shard) for shard in names]


class ShardServer:
    """One shard: the chunks `plan_shards` gives shard `shard` of `count`, searched with a normal `Searcher`.

    Runs as a Ray actor; every call names the index generation the server searches, and the actor reopens
    its chunks when the index has moved on (it then reports the generation it actually searched).
    """

    def __init__(self, folder: str, shard: int, count: int, threads: int = 1):
        import torch

        torch.set_num_threads(max(1, threads))
        self.folder, self.shard, self.count = folder, shard, count
        self.searcher: Searcher | None = None
        self._first: OrderedDict[str, tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._lock = threading.Lock()

    def _at(self, generation: int) -> Searcher:
        with self._lock:
            if self.searcher is None or self.searcher.reader.generation != generation:
                from .manifest import Manifest

                mine = plan_shards(Manifest.read(self.folder).chunks, self.count)[self.shard]
                previous = self.searcher.reader if self.searcher is not None else None
                reader = IndexReader.open(self.folder, previous=previous, only=mine)
                if reader.generation != generation:  # committed between the manifest read and the open: retry
                    mine = plan_shards(reader.manifest.chunks, self.count)[self.shard]
                    reader = IndexReader.open(self.folder, previous=reader, only=mine)
                self.searcher = Searcher(reader)
                self._first.clear()
            return self.searcher

    def pid(self) -> int:
        import os

        return os.getpid()

    def describe(self, generation: int) -> dict:
        searcher = self._at(generation)
        reader = searcher.reader
        return {"generation": reader.generation, "chunks": sorted(c.name for c in reader.chunks),
                "clips": len(reader), "windows": searcher.snapshot.num_windows, "pid": self.pid()}

    def warm(self, generation: int, mode: str) -> None:
        """`mode` is resolved by the server on the whole library ("exact" or "two_stage")."""
        self._at(generation).warm(mode)

    def exact(self, generation: int, token_sets: list[np.ndarray], k: int, per_take: int,
              filters: Filters) -> tuple[int, list[list[dict]]]:
        """Every allowed window scored exactly; per query the shard's best `k` takes."""
        searcher = self._at(generation)
        hits = searcher.search_tokens(token_sets, k=k, filters=filters, per_take=per_take, mode="exact")
        return searcher.reader.generation, [[dataclasses.asdict(h) for h in query] for query in hits]

    def first_stage(self, generation: int, key: str, token_sets: list[np.ndarray], filters: Filters,
                    top: int) -> tuple[int, list[np.ndarray]]:
        """Two-stage round 1: per query the shard's `top` best first-stage scores (kept for round 2 under `key`)."""
        searcher = self._at(generation)
        snapshot = searcher.snapshot
        allowed = searcher.allowed_windows(snapshot, filters)
        first = searcher.first_stage_scores(token_sets, allowed, snapshot) if len(allowed) else \
            np.zeros((0, len(token_sets)))
        with self._lock:
            self._first[key] = (allowed, first)
            while len(self._first) > FIRST_STAGE_CACHE:
                self._first.popitem(last=False)
        best = [np.sort(first[:, q])[::-1][:top] for q in range(len(token_sets))]
        return searcher.reader.generation, best

    def rerank(self, generation: int, key: str, token_sets: list[np.ndarray], filters: Filters,
               thresholds: list[float], k: int, per_take: int) -> tuple[int, list[list[dict]]]:
        """Two-stage round 2: exact MaxSim of the windows whose first-stage score reaches the global cut."""
        searcher = self._at(generation)
        snapshot = searcher.snapshot
        with self._lock:
            cached = self._first.pop(key, None)
        if cached is None:  # restarted (or evicted) between the rounds: the same numbers again
            allowed = searcher.allowed_windows(snapshot, filters)
            first = searcher.first_stage_scores(token_sets, allowed, snapshot) if len(allowed) else \
                np.zeros((0, len(token_sets)))
        else:
            allowed, first = cached
        picked = first >= np.asarray(thresholds, np.float64)[None, :]
        union = np.flatnonzero(picked.any(axis=1))
        results: list[list[dict]] = []
        exact = None
        if len(union):
            # every union window is shortlisted, so this is the exact (lazily unpacked) re-rank of just them
            exact = searcher.score_windows(token_sets, allowed[union], mode="two_stage", candidates=len(union),
                                           snapshot=snapshot)
        for q in range(len(token_sets)):
            column = np.full(len(allowed), -np.inf)
            if exact is not None:
                rows = picked[union, q]
                column[union[rows]] = exact[rows, q]
            hits = searcher._top_takes(snapshot, allowed, column, k, per_take) if np.isfinite(column).any() else []
            results.append([dataclasses.asdict(h) for h in hits])
        return searcher.reader.generation, results


class ShardedSearcher:
    """The `Searcher` interface over shard actors; see the module docstring."""

    def __init__(self, reader: IndexReader, encoder=None, *, shards: int, timeout: float = DEFAULT_TIMEOUT,
                 actor_options: dict | None = None, threads: int = 1):
        import ray

        self.local = Searcher(reader, encoder)
        self.count = shards
        self.timeout = timeout
        options = {"num_cpus": 1, "max_restarts": -1, "max_task_retries": 0, "scheduling_strategy": "SPREAD"}
        options |= actor_options or {}
        remote = ray.remote(ShardServer)
        self.actors = [remote.options(**options).remote(str(reader.folder), s, shards, threads)
                       for s in range(shards)]
        self._state = threading.local()
        self._orders: dict[int, dict[str, int]] = {}

    # -- the Searcher interface the server uses ------------------------------------------------------------
    @property
    def encoder(self):
        return self.local.encoder

    @property
    def reader(self) -> IndexReader:
        return self.local.reader

    @property
    def snapshot(self):
        return self.local.snapshot

    def refresh(self) -> bool:
        return self.local.refresh()  # the actors follow the generation named in each call

    resolve_mode = staticmethod(Searcher.resolve_mode)
    allowed_windows = staticmethod(Searcher.allowed_windows)

    def first_stage_scores(self, *args, **kwargs):
        return self.local.first_stage_scores(*args, **kwargs)

    def score_windows(self, *args, **kwargs):
        return self.local.score_windows(*args, **kwargs)

    def warm(self, mode: str = "auto") -> None:
        snapshot = self.snapshot
        self._gather("warm", [(snapshot.reader.generation, self.resolve_mode(mode, snapshot))] * self.count)

    def search(self, queries, k: int = 10, filters=None, per_take: int = 1, mode: str = "auto",
               candidates: int | None = None):
        if self.encoder is None:
            raise SearchError("this searcher has no text encoder")
        single = isinstance(queries, str)
        texts = [queries] if single else list(queries)
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise SearchError("a query must be a non-empty string")
        tokens = [t for t, _ in self.encoder.encode_texts(texts)]
        results = self.search_tokens(tokens, k=k, filters=filters, per_take=per_take, mode=mode,
                                     candidates=candidates)
        return results[0] if single else results

    def search_tokens(self, token_sets: list[np.ndarray], k: int = 10, filters: Filters | dict | None = None,
                      per_take: int = 1, mode: str = "auto", candidates: int | None = None) -> list[list[Hit]]:
        """Scatter to every shard, gather, merge: the same hits as `Searcher.search_tokens` on one machine."""
        if not isinstance(filters, Filters):
            filters = Filters.from_dict(filters)
        if k < 1 or per_take < 1:
            raise SearchError("k and per_take must be at least 1")
        for tokens in token_sets:
            if len(tokens) == 0:
                raise SearchError("the query has no words the model knows")
        self._state.last = {}
        snapshot = self.snapshot
        resolved = self.resolve_mode(mode, snapshot)
        allowed = len(self.allowed_windows(snapshot, filters))
        if allowed == 0 or not token_sets:
            return [[] for _ in token_sets]
        shortlist = max(candidates if candidates is not None else default_candidates(allowed), 4 * k * per_take)
        token_sets = [np.asarray(t, np.float32) for t in token_sets]
        generation = snapshot.reader.generation
        if resolved == "exact" or allowed <= shortlist:  # two-stage would shortlist everything: exact
            replies = self._gather("exact", [(generation, token_sets, k, per_take, filters)] * self.count)
        else:
            key = uuid.uuid4().hex
            firsts = self._gather("first_stage", [(generation, key, token_sets, filters, shortlist)] * self.count)
            thresholds = _global_cut([reply[1] for reply in firsts.values()], len(token_sets), shortlist)
            replies = self._gather("rerank", [(generation, key, token_sets, filters, thresholds, k, per_take)]
                                   * self.count, only=set(firsts))
        stale = {reply[0] for reply in replies.values()} - {generation}
        if stale:
            log.info("shards searched generation(s) %s, the server %s: the index changed during the query",
                     sorted(stale), generation)
        return [self._merge(snapshot, [reply[1][q] for reply in replies.values()], k)
                for q in range(len(token_sets))]

    def offline_summary(self) -> dict | None:
        """What this thread's searches since the last call could not search: damaged chunks and shards that did
        not answer (the server calls it once per request, for `reply["meta"]["offline"]`)."""
        summary = self.reader.offline_summary()
        shards = getattr(self._state, "pending", None) or {}
        self._state.pending = {}
        if not shards:
            return summary
        plan = plan_shards(self.reader.manifest.chunks, self.count)
        entries = {entry.name: entry for entry in self.reader.manifest.chunks}
        missing = sorted(name for shard in shards for name in plan[shard])
        out = dict(summary) if summary else {"chunks": [], "clips": 0, "windows": 0, "reasons": []}
        out["chunks"] = list(out["chunks"]) + missing
        out["clips"] += sum(entries[name].clips for name in missing)
        out["windows"] += sum(entries[name].windows for name in missing)
        out["reasons"] = list(out["reasons"]) + [
            f"shard {shard + 1} of {self.count} did not answer ({reason}); Ray restarts it, retry in a few seconds"
            for shard, reason in sorted(shards.items())]
        out["shards"] = sorted(shard + 1 for shard in shards)
        out.setdefault("fix", "wait for Ray to restart the shard (ray status shows the cluster)")
        return out

    @property
    def last_search_complete(self) -> bool:
        """False when a shard did not answer the last search in this thread (its numbers must not be cached)."""
        return not getattr(self._state, "last", None)

    def shard_pids(self) -> list[int | None]:
        """Process id of each shard actor (None: not answering); for tests and `ray` diagnostics."""
        replies = self._gather("pid", [()] * self.count, record=False)
        return [replies.get(shard) for shard in range(self.count)]

    def shutdown(self) -> None:
        import ray

        for actor in self.actors:
            ray.kill(actor, no_restart=True)

    # -- scatter / gather ------------------------------------------------------------------------------------
    def _gather(self, method: str, args: list[tuple], only: set[int] | None = None, record: bool = True) -> dict:
        """Call `method` on every shard (or those in `only`); {shard: reply} of those that answered in time."""
        import ray
        from ray.exceptions import GetTimeoutError, RayError

        futures = {s: getattr(self.actors[s], method).remote(*args[s]) for s in range(self.count)
                   if only is None or s in only}
        replies, offline = {}, {}
        if futures:
            ready, _ = ray.wait(list(futures.values()), num_returns=len(futures), timeout=self.timeout)
            ready = set(ready)
        for shard, future in futures.items():
            if future not in ready:
                offline[shard] = f"no answer within {self.timeout:g} s"
                ray.cancel(future)
                continue
            try:
                replies[shard] = ray.get(future, timeout=0)
            except (RayError, GetTimeoutError) as exc:
                offline[shard] = type(exc).__name__
        if only is not None:
            offline |= {s: "no answer in the first round" for s in range(self.count) if s not in only}
        if record:
            if offline:
                log.warning("shards not searched: %s", offline)
            self._state.last = (getattr(self._state, "last", None) or {}) | offline
            self._state.pending = (getattr(self._state, "pending", None) or {}) | offline
        return replies

    def _merge(self, snapshot, shard_hits: list[list[dict]], k: int) -> list[Hit]:
        """Per-shard take lists -> the global top k takes, ties broken by library order as `Searcher` does."""
        order = self._clip_order(snapshot)
        takes: dict[str, list[Hit]] = {}
        for hits in shard_hits:
            for item in hits:
                takes.setdefault(item["clip_id"], []).append(Hit(**item))
        ranked = sorted(takes.values(), key=lambda hits: (-hits[0].score, order.get(hits[0].clip_id, len(order))))
        return [hit for hits in ranked[:k] for hit in hits]

    def _clip_order(self, snapshot) -> dict[str, int]:
        key = id(snapshot)
        if key not in self._orders:
            self._orders = {key: {clip["clip_id"]: i for i, clip in enumerate(snapshot.clips)}}
        return self._orders[key]


def _global_cut(per_shard: list[list[np.ndarray]], queries: int, shortlist: int) -> list[float]:
    """Per query the `shortlist`-th best first-stage score over every shard that answered (-inf: keep all)."""
    cuts = []
    for q in range(queries):
        values = np.concatenate([shard[q] for shard in per_shard]) if per_shard else np.zeros(0)
        cuts.append(float(np.partition(values, len(values) - shortlist)[len(values) - shortlist])
                    if len(values) >= shortlist else -np.inf)
    return cuts
