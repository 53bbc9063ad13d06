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
from .text_match import Fusion, annotate, best_source, library_text, pooled_query

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

    def exact(self, generation: int, query: "ShardQuery") -> tuple[int, list[tuple[list[dict], list]]]:
        """Every allowed window scored exactly; per query the shard's best `k` takes (and its MaxSim-only top)."""
        searcher = self._at(generation)
        snapshot = searcher.snapshot
        allowed = searcher.allowed_windows(snapshot, query.filters)
        scores = searcher.score_windows(query.tokens, allowed, mode="exact", snapshot=snapshot) if len(allowed) \
            else np.zeros((0, len(query.tokens)))
        return searcher.reader.generation, [self._finish(searcher, snapshot, allowed, scores[:, q], q, query, None)
                                            for q in range(len(query.tokens))]

    def first_stage(self, generation: int, key: str, query: "ShardQuery", top: int) -> tuple[int, list, list]:
        """Two-stage round 1: per query the shard's `top` best first-stage scores (kept for round 2 under `key`),
        and for name fusion its best-named takes with the lowest first-stage score of their windows."""
        searcher = self._at(generation)
        snapshot = searcher.snapshot
        allowed = searcher.allowed_windows(snapshot, query.filters)
        first = searcher.first_stage_scores(query.tokens, allowed, snapshot) if len(allowed) else \
            np.zeros((0, len(query.tokens)))
        with self._lock:
            self._first[key] = (allowed, first)
            while len(self._first) > FIRST_STAGE_CACHE:
                self._first.popitem(last=False)
        best = [np.sort(first[:, q])[::-1][:top] for q in range(len(query.tokens))]
        named = []
        clips = snapshot.window_clip[allowed]
        for q in range(len(query.tokens)):
            bonus = self._bonus(snapshot, query, q)
            if bonus is None:
                named.append([])
                continue
            lowest = np.full(len(snapshot.clips), np.inf)
            np.minimum.at(lowest, clips, first[:, q])
            ranked = np.argsort(-bonus, kind="stable")
            # at most `top` takes can have every window above the cut, so k + top candidates always suffice
            candidates = ranked[(bonus[ranked] > 0) & np.isfinite(lowest[ranked])][:query.k + top]
            named.append([(snapshot.clips[c]["clip_id"], float(bonus[c]), float(lowest[c])) for c in candidates])
        return searcher.reader.generation, best, named

    def rerank(self, generation: int, key: str, query: "ShardQuery", cuts: list[float],
               named: list[list[str]]) -> tuple[int, list[tuple[list[dict], list]]]:
        """Two-stage round 2: exact MaxSim of the windows whose first-stage score reaches the global cut (and,
        with name fusion, the other windows of the globally best-named takes the cut left out)."""
        searcher = self._at(generation)
        snapshot = searcher.snapshot
        with self._lock:
            cached = self._first.pop(key, None)
        if cached is None:  # restarted (or evicted) between the rounds: the same numbers again
            allowed = searcher.allowed_windows(snapshot, query.filters)
            first = searcher.first_stage_scores(query.tokens, allowed, snapshot) if len(allowed) else \
                np.zeros((0, len(query.tokens)))
        else:
            allowed, first = cached
        picked = (first >= np.asarray(cuts, np.float64)[None, :]) & np.isfinite(first)  # as Searcher.score_windows
        union = np.flatnonzero(picked.any(axis=1))
        exact = searcher.rerank_scores(query.tokens, allowed[union], picked[union], snapshot)
        out = []
        for q in range(len(query.tokens)):
            column = np.full(len(allowed), -np.inf)
            column[union] = exact[:, q]
            out.append(self._finish(searcher, snapshot, allowed, column, q, query, set(named[q])))
        return searcher.reader.generation, out

    @staticmethod
    def _exact(searcher: Searcher, snapshot, tokens, windows: np.ndarray) -> np.ndarray:
        """Exact MaxSim of a few windows, unpacking only them (every window given is its own shortlist)."""
        if len(windows) == 0:
            return np.zeros((0, len(tokens)))
        return searcher.score_windows(tokens, windows, mode="two_stage", candidates=len(windows), snapshot=snapshot)

    @staticmethod
    def _bonus(snapshot, query: "ShardQuery", q: int) -> np.ndarray | None:
        """Per clip of this shard, the best text score of query q (None: no name fusion for it)."""
        if not query.fuse[q]:
            return None
        table = library_text(snapshot, snapshot.reader.spec.dim)
        return table.scores(query.texts[q], pooled_query(query.tokens[q])).max(axis=1)

    def _finish(self, searcher: Searcher, snapshot, allowed: np.ndarray, column: np.ndarray, q: int,
                query: "ShardQuery", named: set[str] | None) -> tuple[list[dict], list]:
        """As `Searcher.search_tokens` after scoring (text_match.fuse, then one result per take): the shard's top
        takes, and its top k takes by MaxSim alone (for `matched`) as (clip_id, score)."""
        clips = snapshot.window_clip[allowed]
        motion_top = [(snapshot.clips[c]["clip_id"], score) for c, score in _top_clip_scores(clips, column, query.k)]
        bonus = self._bonus(snapshot, query, q)
        motion = column
        if bonus is not None:
            window_bonus = bonus[clips]
            if named:
                names = np.array([snapshot.clips[c]["clip_id"] in named for c in range(len(snapshot.clips))], bool)
                rescore = np.flatnonzero(~np.isfinite(column) & (window_bonus > 0) & names[clips])
                if len(rescore):
                    column = column.copy()
                    column[rescore] = self._exact(searcher, snapshot, [query.tokens[q]], allowed[rescore])[:, 0]
            motion = column
            column = column + query.weight * window_bonus
        hits = searcher._top_takes(snapshot, allowed, column, query.k, query.per_take, motion=motion) \
            if np.isfinite(column).any() else []
        return [dataclasses.asdict(h) for h in hits], motion_top


@dataclasses.dataclass
class ShardQuery:
    """What every shard needs to answer a batch of queries: tokens, limits, filters, and the name fusion the
    server decided on the whole library (`fuse[q]`: False when every searched take has the same text score)."""

    tokens: list[np.ndarray]
    k: int
    per_take: int
    filters: Filters
    texts: list[str] | None = None
    weight: float = 0.0
    fuse: list[bool] = dataclasses.field(default_factory=list)


def _top_clip_scores(clips: np.ndarray, values: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k clips with the best finite value of any of their windows, best first (ties: clip order)."""
    finite = np.isfinite(values)
    if not finite.any():
        return []
    best = np.full(int(clips.max()) + 1, -np.inf)
    np.maximum.at(best, clips[finite], values[finite])
    top = np.argsort(-best, kind="stable")[:k]
    return [(int(c), float(best[c])) for c in top if np.isfinite(best[c])]


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

    search = Searcher.search  # text in, hits out: the same encoding and checks; scattering is search_tokens

    def search_tokens(self, token_sets: list[np.ndarray], k: int = 10, filters: Filters | dict | None = None,
                      per_take: int = 1, mode: str = "auto", candidates: int | None = None,
                      texts: list[str] | None = None, names_weight: float = 0.0) -> list[list[Hit]]:
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
        allowed = self.allowed_windows(snapshot, filters)
        if len(allowed) == 0 or not token_sets:
            return [[] for _ in token_sets]
        shortlist = max(candidates if candidates is not None else default_candidates(len(allowed)), 4 * k * per_take)
        token_sets = [np.asarray(t, np.float32) for t in token_sets]
        texts_table = self._text_scores(snapshot, allowed, token_sets, texts, names_weight)
        query = ShardQuery(token_sets, k, per_take, filters, texts, float(names_weight),
                           [t is not None and t[1] for t in texts_table])
        generation = snapshot.reader.generation
        if resolved == "exact" or len(allowed) <= shortlist:  # two-stage would shortlist everything: exact
            replies = self._gather("exact", [(generation, query)] * self.count)
        else:
            key = uuid.uuid4().hex
            firsts = self._gather("first_stage", [(generation, key, query, shortlist)] * self.count)
            cuts = _global_cut([reply[1] for reply in firsts.values()], len(token_sets), shortlist)
            named = [self._best_named(snapshot, [reply[2][q] for reply in firsts.values()], cuts[q], k)
                     for q in range(len(token_sets))]
            replies = self._gather("rerank", [(generation, key, query, cuts, named)] * self.count, only=set(firsts))
        stale = {reply[0] for reply in replies.values()} - {generation}
        if stale and not getattr(self._state, "retrying", False):  # committed during the query: once more, current
            log.info("shards searched generation(s) %s, the server %s: the index changed during the query",
                     sorted(stale), generation)
            self.refresh()
            self._state.retrying = True
            try:
                return self.search_tokens(token_sets, k, filters, per_take, mode, candidates, texts, names_weight)
            finally:
                self._state.retrying = False
        results = []
        for q in range(len(token_sets)):
            parts = [reply[1][q] for reply in replies.values()]
            hits = self._merge(snapshot, [part[0] for part in parts], k)
            fusion = None
            if texts_table[q] is not None:
                order = self._clip_order(snapshot)
                top = sorted((item for part in parts for item in part[1]),
                             key=lambda c: (-c[1], order.get(c[0], len(order))))[:k]
                fusion = Fusion(texts_table[q][0], {order[clip_id] for clip_id, _ in top if clip_id in order})
            annotate(hits, fusion, snapshot)
            results.append(hits)
        return results

    @staticmethod
    def _text_scores(snapshot, allowed: np.ndarray, token_sets, texts, weight: float) -> list:
        """Per query (per-clip text scores over the whole library, fuse?) as text_match.fuse decides, or None
        when names are not fused at all."""
        if not weight or texts is None:
            return [None] * len(token_sets)
        table = library_text(snapshot, snapshot.reader.spec.dim)
        if table.empty:
            return [None] * len(token_sets)
        clips = snapshot.window_clip[allowed]
        out = []
        for tokens, text in zip(token_sets, texts):
            per_source = table.scores(text, pooled_query(tokens))
            out.append((per_source, bool(np.ptp(best_source(per_source)[clips]) > 0)))
        return out

    def _best_named(self, snapshot, per_shard: list[list], cut: float, k: int) -> list[str]:
        """text_match.fuse's two-stage rescue: the k best-named takes that have a window below the global cut."""
        order = self._clip_order(snapshot)
        left_out = [(clip_id, bonus) for shard in per_shard for clip_id, bonus, lowest in shard if lowest < cut]
        left_out.sort(key=lambda item: (-item[1], order.get(item[0], len(order))))
        return [clip_id for clip_id, _ in left_out[:k]]

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
