"""Text -> motion search over an index: MaxSim over every window, filters, one result per take.

Modes (chosen by the caller, never silently by `k`):
  * "exact": MaxSim of the query tokens against every stored patch of every window, streamed block by
    block from the memory-mapped codes (kernels.py): no unpacked copy of the index is kept.
  * "two_stage": a cascade. (1) MaxSim against each window's 4 coarse vectors, one per body region
    (pooling.region_coarse: core, legs, right arm, left arm), held in one compact table per chunk, ranks every
    window; (2) per chunk, the best `middle_per_chunk` windows per query (MIDDLE_FRACTION = 10 %, at least
    256) are scored against their 32 pooled vectors; (3) the best `candidates` of those (default: see
    `default_candidates`) are re-ranked with exact MaxSim. Stages 2 and 3 unpack only the windows they score,
    in fixed-size blocks. Its recall@10 against "exact" is measured in bench/bench_index.py. Why regions and
    10 %: the model's words match single body-part patches, which k-means centroids of the pooled vectors
    (the table of chunks written before regions, searched with KMEANS_MIDDLE_FRACTION = 20 %) average away.
    With the shipped model da8e2fd6 on the benchmark's tiled 100k library (2 search threads, 20 queries, a
    replay side by side), a 10 % middle stage kept 0.99 of the exact top-10 takes with region tables and
    0.945 with k-means ones (20 %: 0.995) at the same ~56 ms; at 1 M (12,000 candidates, 20 queries) region
    tables kept 0.985 at p50 316 ms, against 0.99 at 388 ms for k-means tables with 20 %.
  * The stages run per chunk, on `threads` threads (default 1; `mofind serve --search-threads`).
  * "auto" (default): "exact" up to AUTO_EXACT_MAX_WINDOWS live windows, "two_stage" above. The switch
    depends on the library size only (never on k), so a query ranks the same way every time.

Which arithmetic computes the (identical, integer) MaxSim maxima is measured per machine when a searcher
is opened (`kernels.choose_kernel`); `Searcher.kernel_info()` says which and why.

Query encoding (`Encoder.encode_texts`) is separate from scoring (`search_tokens`), as in ColBERT,
so batched queries and tests can bypass the text model. A subset of the windows (e.g. one shard's chunks,
`Searcher.chunk_windows`) can be searched alone; `merge_hits` merges such partial results exactly, since a
take never spans two chunks.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import lru_cache

import numpy as np

from .avx2_dots import LANES
from .kernels import BLOCK_WINDOWS, TABLES, BlockCache, ChunkScan, KernelChoice, choose_kernel
from .linalg import single_blas_thread
from .pooling import COARSE_SIZE
from .query_sums import QueryMap, query_means
from .store import IndexReader
from .text_match import DEFAULT_NAMES_WEIGHT, SearchedTakes, annotate, fuse, library_text

MODES = ("auto", "exact", "two_stage")
AUTO_EXACT_MAX_WINDOWS = 5_000
MIN_CANDIDATES = 400
MAX_CANDIDATES = 12_000
CANDIDATE_FRACTION = 0.05
MIDDLE_FRACTION = 0.10  # of a chunk with a body-region first-stage table (pooling.region_coarse)
KMEANS_MIDDLE_FRACTION = 0.20  # of an older chunk, whose table is k-means of its pooled vectors
MIDDLE_MIN_PER_CHUNK = 256
#: Threads a search spreads its chunks over by default (`mofind serve --search-threads`): every core, at most
#: SEARCH_THREADS. Chunks are independent and the heavy steps (compiled unpacking, oneDNN products) release the
#: GIL, so a thread that finds its core busy (Blender) just takes fewer chunks: nothing waits on it. Measured on
#: 2 vCPUs (Xeon, quiet, side by side): 1 -> 2 threads took two-stage search from 87 to 60 ms at 100k windows
#: and from 669 to 437 ms at 1 M; at 10k windows (two chunks) it was no different (9.6 / 9.7 ms). On the project's
#: machine under load ~5 (other jobs on both cores) 2 threads were no faster: `--search-threads 1` there.
SEARCH_THREADS = 4
#: File-backed pages (chunk codes read through their memory maps, plus the libraries' own) this process may keep
#: resident after a search before the chunks' patch and pooled pages are released (`Searcher.bound_mapped_pages`).
MAPPED_BUDGET_BYTES = 1 << 30
#: The middle stage keeps the pooled codes mapped while all of them are at most this share of the mapped budget
#: (a library up to ~130k windows): dropping and faulting them in again on every query cost a 10k-window search
#: ~2.5 ms of its ~9 (handler timing, Xeon, 2 vCPUs). Past that, each chunk's pooled pages go after its middle
#: stage; `bound_mapped_pages` bounds what stays either way.
KEEP_POOLED_SHARE = 0.25
#: Unpacked code blocks a searcher may keep (kernels.BlockCache): a whole library up to ~12k windows as int8.
DEFAULT_CACHE_BYTES = 256 << 20


def default_candidates(windows: int) -> int:
    """How many windows two-stage search re-ranks exactly: 5 % of them, at least 400, at most 12,000."""
    return max(MIN_CANDIDATES, min(int(windows * CANDIDATE_FRACTION), MAX_CANDIDATES))


def middle_per_chunk(windows: int, kind: str = "regions") -> int:
    """How many of a chunk's windows the 32-pooled-vector stage scores per query: MIDDLE_FRACTION (or
    KMEANS_MIDDLE_FRACTION for a chunk whose first-stage table `kind` is "kmeans"), at least 256."""
    fraction = KMEANS_MIDDLE_FRACTION if kind == "kmeans" else MIDDLE_FRACTION
    return min(windows, max(MIDDLE_MIN_PER_CHUNK, int(np.ceil(windows * fraction))))


def default_search_threads() -> int:
    """Threads one search spreads its chunks over: SEARCH_THREADS unless set, at most the cores (see `_each_chunk`)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return _default_threads[0] or max(1, min(SEARCH_THREADS, cores))


def set_default_search_threads(threads: int) -> None:
    """`mofind serve --search-threads`: the thread count of searchers opened from now on."""
    _default_threads[0] = max(1, int(threads))


_default_threads = [0]  # 0: SEARCH_THREADS, capped by the cores


@lru_cache(maxsize=4)
def _chunk_pool(threads: int) -> ThreadPoolExecutor:
    """One pool per process (not per searcher) of a search's helper threads (`Searcher._each_chunk`: the caller
    is the other one): concurrent requests queue on the same cores.

    Each pool thread takes the process's torch thread count (`mofind serve --threads`, 1 by default) for the
    products it runs. Why: oneDNN's products (`torch.ops.onednn`) size their OpenMP team by the calling
    thread's own setting, which in a new thread is every core; two chunk threads then ran four OpenMP threads
    on two cores. Measured side by side (10k windows, 2 chunk threads, Xeon, 2 vCPUs): the coarse table
    1.56 -> 1.21 ms a query."""
    import torch

    return ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mofind-search",
                              initializer=torch.set_num_threads, initargs=(torch.get_num_threads(),))


#: The fewest windows `_pieces` cuts a chunk's re-rank into: below it a piece costs more in per-call overhead
#: (block bookkeeping, one product call) than a second thread saves. A re-rank of fewer windows in all runs on
#: the caller alone: the 10-20 windows of a name rescue took 0.17 ms there and 0.64 ms handed to two threads.
PIECE_MIN_WINDOWS = 64

#: What one more per-query call costs, in windows times 4-row query groups (`_split_pays`): a re-rank call
#: (a hand-off to the chunk threads, per-chunk bookkeeping: ~0.1 ms) and a middle-stage call (one compiled
#: call per chunk: ~10 us), each against a window's 168 patch rows or 32 pooled rows by 4 query rows (~0.7 and
#: ~0.25 us on two threads, AMD EPYC Zen 3).
SPLIT_CALL_RERANK = 256
SPLIT_CALL_MIDDLE = 64


def _pieces(groups: list[tuple[int, np.ndarray]], threads: int) -> list[tuple[int, np.ndarray]]:
    """`groups` cut into pieces of about a (2 x threads)-th of their windows each (at least PIECE_MIN_WINDOWS),
    so that threads share one large chunk. Why: a library of a few chunks is mostly one full chunk (10k windows:
    8,193 and 1,807), so one thread per chunk left the other idle for most of a re-rank; each window's maxima
    are computed alone, so any cut gives the same integers."""
    if threads <= 1:
        return groups
    total = sum(len(where) for _, where in groups)
    size = max(PIECE_MIN_WINDOWS, -(-total // (2 * threads)))
    return [(chunk, where[start:start + size]) for chunk, where in groups for start in range(0, len(where), size)]


class SearchError(ValueError):
    """A search request that cannot be answered as asked (empty query, bad filter, unknown mode)."""


@dataclass(frozen=True)
class Filters:
    """Restrict results to takes that satisfy every given condition."""

    min_duration: float | None = None  # seconds, of the whole take
    max_duration: float | None = None
    path_prefix: str | None = None
    skeleton: str | None = None  # e.g. "bandai", "cmu_bvh", "smpl", "custom"
    label: str | None = None  # one of the labels parsed from the file name (case-insensitive)

    @classmethod
    def from_dict(cls, data: dict | None) -> "Filters":
        if data is None:
            return cls()
        if not isinstance(data, dict):
            raise SearchError("filters must be an object")
        unknown = sorted(set(data) - {"min_duration", "max_duration", "path_prefix", "skeleton", "label"})
        if unknown:
            raise SearchError(f"unknown filter(s): {', '.join(unknown)}")
        values = {}
        for name in ("min_duration", "max_duration"):
            value = data.get(name)
            if value is not None:
                if isinstance(value, bool) or not isinstance(value, (int, float)) or not np.isfinite(value):
                    raise SearchError(f"filter {name} must be a number of seconds")
                values[name] = float(value)
        for name in ("path_prefix", "skeleton", "label"):
            value = data.get(name)
            if value is not None:
                if not isinstance(value, str):
                    raise SearchError(f"filter {name} must be a string")
                values[name] = value
        return cls(**values)

    @property
    def active(self) -> bool:
        return any(v is not None for v in (self.min_duration, self.max_duration, self.path_prefix, self.skeleton,
                                           self.label))

    def clip_mask(self, clips: list[dict]) -> np.ndarray:
        keep = np.ones(len(clips), bool)
        if not self.active:
            return keep
        label = self.label.lower() if self.label is not None else None
        for i, clip in enumerate(clips):
            duration = clip["duration"]
            keep[i] = ((self.min_duration is None or duration >= self.min_duration)
                       and (self.max_duration is None or duration <= self.max_duration)
                       and (self.path_prefix is None or clip["source"].startswith(self.path_prefix))
                       and (self.skeleton is None or clip["skeleton"] == self.skeleton)
                       and (label is None or label in (lbl.lower() for lbl in clip["labels"])))
        return keep


@dataclass
class Hit:
    """One result: a window of a take, in the take's own (source) frames."""

    clip_id: str
    source: str
    start_frame: int
    end_frame: int
    fps: float
    score: float
    duration: float
    labels: list[str] = field(default_factory=list)
    skeleton: str = ""
    window_start: int = 0  # first frame of the window in the clip's model-rate timeline
    confidence: float | None = None  # probability of a right match, set by mofind.quality (None: not assessed)
    motion_score: float | None = None  # MaxSim alone when names were fused into `score` (text_match.py)
    take: str = ""  # the take's name in a file holding several (FBX stack, glTF animation)
    matched: list[str] = field(default_factory=lambda: ["motion"])  # "motion", "name", "label" (text_match.py)

    def to_dict(self) -> dict:
        return {"clip_id": self.clip_id, "source": self.source, "start_frame": self.start_frame,
                "end_frame": self.end_frame, "fps": self.fps, "score": round(float(self.score), 6),
                "confidence": None if self.confidence is None else round(float(self.confidence), 4),
                "duration": round(self.duration, 4), "labels": list(self.labels), "skeleton": self.skeleton,
                "take": self.take, "matched": list(self.matched)}


class _Snapshot:
    """Flattened view of one IndexReader: every live window, its clip, and the per-chunk scans."""

    def __init__(self, reader: IndexReader, previous: "_Snapshot | None"):
        self.reader = reader
        spec = reader.spec
        old = {scan.chunk.name: scan for scan in previous.scans} if previous is not None else {}
        self.scans: list[ChunkScan] = []
        self.clips: list[dict] = []
        live = reader.live()
        live_by_chunk: dict[str, list[int]] = {}
        for chunk, index in live:
            live_by_chunk.setdefault(chunk.name, []).append(index)
        window_chunk, window_index, window_clip = [], [], []
        for chunk in reader.chunks:
            scan = old.get(chunk.name) or ChunkScan(chunk, reader.codec, reader.pooled_codec, spec.num_patches)
            self.scans.append(scan)
            for clip_index in live_by_chunk.get(chunk.name, []):
                windows = chunk.clip_windows[clip_index]
                window_chunk.append(np.full(len(windows), len(self.scans) - 1, np.int32))
                window_index.append(windows.astype(np.int64))
                window_clip.append(np.full(len(windows), len(self.clips), np.int64))
                self.clips.append(chunk.clips[clip_index])
        self.window_chunk = np.concatenate(window_chunk) if window_chunk else np.zeros(0, np.int32)
        self.window_index = np.concatenate(window_index) if window_index else np.zeros(0, np.int64)
        self.window_clip = np.concatenate(window_clip) if window_clip else np.zeros(0, np.int64)
        self.chunk_windows = [np.flatnonzero(self.window_chunk == c) for c in range(len(self.scans))]
        # per chunk: slice(a, b) when snapshot positions a..b-1 are its every window in order (no removed take),
        # else None. Why: at a million windows (123 chunks) gathering and scattering each chunk's positions cost
        # ~14 ms of a ~100 ms coarse pass (AMD EPYC, one thread)
        self.chunk_spans = [_whole_span(positions, self.window_index, scan.num_windows)
                            for positions, scan in zip(self.chunk_windows, self.scans)]
        self.all_windows = np.arange(self.num_windows)  # `allowed_windows` without filters returns this object
        self.all_windows.flags.writeable = False  # shared by every search of this snapshot
        self.pooled_bytes = sum(int(scan.chunk.arrays["pooled"].nbytes) for scan in self.scans)

    def groups(self, windows: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """(chunk number, positions into `windows` of that chunk's windows) for every chunk `windows` has.

        Why: `windows` is most often the whole library (no filters), whose groups are known; gathering a
        million chunk numbers and checking their order cost ~3 ms a query at a million windows."""
        if windows is self.all_windows:
            return [(c, where) for c, where in enumerate(self.chunk_windows) if len(where)]
        chunks = self.window_chunk[windows]
        return [(int(chunks[where[0]]), where) for where in _by_chunk(chunks)]

    @property
    def num_windows(self) -> int:
        return len(self.window_clip)

    def local_windows(self, chunk: int, windows: np.ndarray, where: np.ndarray) -> np.ndarray | None:
        """The chunk's own window numbers of windows[where] (its group), or None when they are all of its
        windows in order: then a per-chunk array of the chunk's windows serves as it is, without a gather."""
        if windows is self.all_windows and self.chunk_spans[chunk] is not None:
            return None
        local = self.window_index[windows[where]]
        count = self.scans[chunk].num_windows
        return None if len(local) == count and np.array_equal(local, np.arange(count)) else local

    def group_rows(self, chunk: int, windows: np.ndarray, where: np.ndarray) -> slice | np.ndarray:
        """`where` itself, or the same positions as a slice when `windows` is the whole library (no scatter)."""
        span = self.chunk_spans[chunk] if windows is self.all_windows else None
        return where if span is None else span


def _whole_span(positions: np.ndarray, window_index: np.ndarray, windows: int) -> slice | None:
    """slice(a, b) when `positions` are a..b-1 and they hold the chunk's windows 0..windows-1 in order."""
    if len(positions) != windows or windows == 0:
        return None
    first = int(positions[0])
    if int(positions[-1]) - first + 1 != windows or \
            not np.array_equal(window_index[first:first + windows], np.arange(windows)):
        return None
    return slice(first, first + windows)


class Searcher:
    """Searches one index folder; `refresh()` picks up commits made since (cheap when nothing changed)."""

    def __init__(self, reader: IndexReader, encoder=None, device: str = "cpu",
                 cache_bytes: int = DEFAULT_CACHE_BYTES, threads: int | None = None,
                 mapped_budget: int = MAPPED_BUDGET_BYTES):
        self.encoder = encoder
        self.mapped_budget = int(mapped_budget)
        self.threads = default_search_threads() if threads is None else max(1, int(threads))
        self._lock = threading.Lock()
        self._snapshot = _Snapshot(reader, None)
        self.cache = BlockCache(cache_bytes)
        self.kernel_choice: KernelChoice = choose_kernel(reader.spec.dim, reader.spec.num_patches, device)
        self.kernel = self.kernel_choice.kernel

    def kernel_info(self) -> dict:
        """Which MaxSim kernel runs and why (the calibration's timings), and the threads a search spreads its
        chunks over, for `info` and the benchmarks."""
        return self.kernel_choice.to_dict() | {"search_threads": self.threads}

    def resident_bytes(self) -> int:
        """Memory this searcher keeps between requests: the first-stage tables built so far."""
        return sum(scan.resident_bytes() for scan in self._snapshot.scans) + self.cache.used

    def table_bytes_per_window(self) -> int:
        """Bytes per window of the first-stage table once warm (COARSE_SIZE vectors in the kernel's dtype)."""
        return COARSE_SIZE * self.reader.spec.dim * np.dtype(self.kernel.dtype).itemsize

    def request_bytes(self, windows: int, queries: int = 1, rows: int = 32, mode: str = "auto",
                      candidates: int | None = None) -> int:
        """Upper bound of the working memory one search needs beyond the resident tables.

        rows = query token rows in all (queries x tokens). Blocks are fixed-size, so only the per-window
        score arrays grow with the library; a two-stage search adds its shortlists.
        """
        spec = self.reader.spec
        item = np.dtype(self.kernel.dtype).itemsize
        # one block in flight per search thread
        block = self.threads * BLOCK_WINDOWS * spec.num_patches * (spec.dim * (1 + item) + 8 * rows)
        coarse_block = self.threads * 16 * BLOCK_WINDOWS * COARSE_SIZE * 8 * rows
        per_window = windows * (4 * rows + 24 * queries + 16)
        staged = 0
        if self.resolve_mode(mode, self._snapshot) == "two_stage":
            chunks = max(1, len(self._snapshot.scans))
            staged = chunks * middle_per_chunk(max(1, windows // chunks), "kmeans") * queries * 32  # the larger
        return int(block + coarse_block + per_window + staged + (1 << 20))

    @property
    def reader(self) -> IndexReader:
        return self._snapshot.reader

    @property
    def snapshot(self) -> _Snapshot:
        """The current flattened view; hold on to it for a whole request so a refresh cannot split it."""
        return self._snapshot

    def refresh(self) -> bool:
        """Reload if the index was committed to since; True when something changed."""
        with self._lock:
            current = self._snapshot
            reader = current.reader.reopen_if_changed()
            if reader is current.reader:
                return False
            self._snapshot = _Snapshot(reader, current)
            kept = {scan.chunk.name for scan in self._snapshot.scans}
            for scan in current.scans:
                if scan.chunk.name not in kept:
                    self.cache.drop(scan.chunk.name)
            return True

    def warm(self, mode: str = "auto") -> None:
        """Unpack the codes a search in `mode` will need now, instead of during the first query.

        A library whose unpacked codes fit the block cache is unpacked whole: an exact scan would fill the cache
        anyway, and a two-stage re-rank, whose scattered windows never fill it, then reads cached rows instead of
        unpacking ~500 windows per query (10k windows: about half of the search).
        The name fusion's per-snapshot tables are built too: at 682k takes (the tiled 1 M bench library) they
        took 2.5 s (AMD EPYC), which the first search after every commit paid."""
        snapshot = self._snapshot
        if self.resolve_mode(mode, snapshot) == "two_stage":
            for scan in snapshot.scans:
                scan.coarse(self.kernel, self.kernel_choice.table)
        library_text(snapshot, snapshot.reader.spec.dim)
        SearchedTakes.searched(snapshot, snapshot.all_windows)
        unpacked = sum(scan.unpacked_bytes(self.kernel) - self.cache.held_bytes(scan.chunk.name, self.kernel.name)
                       for scan in snapshot.scans)  # what is not cached yet (a warm after a commit)
        if self.cache.used + unpacked <= self.cache.budget:
            for scan in snapshot.scans:
                scan.fill_cache(self.kernel, self.cache)

    # -- public entry points ---------------------------------------------------------------------------
    def search(self, queries, k: int = 10, filters: Filters | dict | None = None, per_take: int = 1,
               mode: str = "auto", candidates: int | None = None, names_weight: float = DEFAULT_NAMES_WEIGHT):
        """Text query (str) -> list[Hit]; list of texts -> list of list[Hit] (batched encoding and scoring)."""
        if self.encoder is None:
            raise SearchError("this searcher has no text encoder")
        single = isinstance(queries, str)
        texts = [queries] if single else list(queries)
        for text in texts:
            if not isinstance(text, str) or not text.strip():
                raise SearchError("a query must be a non-empty string")
        tokens = [t for t, _ in self.encoder.encode_texts(texts)]
        results = self.search_tokens(tokens, k=k, filters=filters, per_take=per_take, mode=mode,
                                     candidates=candidates, texts=texts, names_weight=names_weight)
        return results[0] if single else results

    def search_tokens(self, token_sets: list[np.ndarray], k: int = 10, filters: Filters | dict | None = None,
                      per_take: int = 1, mode: str = "auto", candidates: int | None = None,
                      texts: list[str] | None = None, names_weight: float = 0.0) -> list[list[Hit]]:
        """Already-encoded queries ((L, D) float32 each) -> per query, hits best first. With the queries' `texts`
        and a `names_weight`, take names and labels are fused in (text_match.py)."""
        if not isinstance(filters, Filters):
            filters = Filters.from_dict(filters)
        if k < 1 or per_take < 1:
            raise SearchError("k and per_take must be at least 1")
        snapshot = self._snapshot
        for tokens in token_sets:
            if len(tokens) == 0:
                raise SearchError("the query has no words the model knows")
        allowed = self.allowed_windows(snapshot, filters)
        if len(allowed) == 0 or not token_sets:
            return [[] for _ in token_sets]
        if candidates is None:
            candidates = default_candidates(len(allowed))
        queries = _QueryBatch(token_sets, snapshot.reader, self.kernel)
        scores = self.score_windows(token_sets, allowed, mode=mode, candidates=max(candidates, 4 * k * per_take),
                                    snapshot=snapshot, queries=queries)
        fused, fusions, scores = fuse(self, snapshot, allowed, scores, token_sets, texts, names_weight, k, mode,
                                      alone=queries.alone)
        results = [self._top_takes(snapshot, allowed, column, k, per_take, motion=motion)
                   for column, motion in zip(fused.T, scores.T)]
        for hits, fusion in zip(results, fusions):
            annotate(hits, fusion, snapshot)
        self.bound_mapped_pages(snapshot)
        return results

    def bound_mapped_pages(self, snapshot: _Snapshot | None = None) -> bool:
        """Release every chunk's mapped patch and pooled pages once this process's file-backed resident memory
        passes `mapped_budget`; True when it did. Why: the kernel maps up to 64 KB of cached pages around each
        page a search touches (fault-around), so the middle stage and the re-rank of one two-stage query over a
        million windows leave ~2 GB mapped, and the resident set grew 5 -> 8.7 GB of file pages over four
        queries (bench/bench_index.py); released pages stay in the OS page cache (minor faults next time)."""
        mapped = mapped_file_bytes()
        if mapped is None or mapped <= self.mapped_budget:
            return False
        for scan in (snapshot or self._snapshot).scans:
            scan.chunk.release("patches")
            scan.chunk.release("pooled")
        return True

    def score_windows(self, token_sets: list[np.ndarray], windows: np.ndarray, mode: str = "auto",
                      candidates: int = MIN_CANDIDATES, snapshot: _Snapshot | None = None,
                      queries: "_QueryBatch | None" = None) -> np.ndarray:
        """(len(windows), len(token_sets)) MaxSim scores; windows are snapshot positions.

        Two-stage: `first_stage_scores`, then exact MaxSim of every window at or above the `candidates`-th
        best first-stage score of its query (ties included); the others score -inf. Only windows at or
        above a global cut are re-ranked, so a sharded search (cluster.py: first stage on every shard, the
        cut over their union, exact re-rank where it is reached) gives exactly these scores. `queries`: the
        token sets already quantised for this snapshot's reader (a search's name rescue reuses its batch).
        """
        snapshot = snapshot or self._snapshot
        mode = self.resolve_mode(mode, snapshot)
        queries = queries or _QueryBatch(token_sets, snapshot.reader, self.kernel)
        if mode == "exact" or len(windows) <= candidates:  # everything would be re-ranked: skip the cascade
            return queries.scores(self._scan(snapshot, windows, queries))
        rows, first = self._first_stage(token_sets, windows, snapshot, queries)
        picked = _shortlist(first, candidates)
        keep = picked.any(axis=1)
        union, picked = rows[keep], picked[keep]
        exact = self.rerank_scores(token_sets, windows[union], picked, snapshot, queries)
        out = np.full((len(windows), len(token_sets)), -np.inf)
        out[union] = exact
        return out

    def rerank_scores(self, token_sets: list[np.ndarray], windows: np.ndarray, picked: np.ndarray,
                      snapshot: _Snapshot | None = None, queries: "_QueryBatch | None" = None) -> np.ndarray:
        """(len(windows), Q) exact MaxSim where `picked` ((len(windows), Q) bool) is set, -inf elsewhere.

        Each window is scored against the rows of the queries that picked it alone when that is less work than
        every row (`_split_pays`): a batch of prompts each re-ranks its own shortlist, and their union against
        all the batch's rows was most of the library. The 62 prompts of the match-quality null bank at 100k
        windows: 8.8 s, 369 two-stage searches' worth (AMD EPYC Zen 3, 2 threads). Same scores either way:
        a window's maxima for a query row do not depend on the other rows."""
        snapshot = snapshot or self._snapshot
        queries = queries or _QueryBatch(token_sets, snapshot.reader, self.kernel)
        maxima = _picked_maxima(picked, queries, SPLIT_CALL_RERANK,
                                lambda part, where: self._scan(snapshot, windows[where], part))
        return queries.scores(maxima, picked=picked)

    def first_stage_scores(self, token_sets: list[np.ndarray], windows: np.ndarray,
                           snapshot: _Snapshot | None = None, queries: "_QueryBatch | None" = None) -> np.ndarray:
        """The shortlist score of two-stage mode: (len(windows), Q), -inf for windows the coarse pass dropped.

        Per chunk, the coarse table (4 vectors per window) ranks the given windows of that chunk and the best
        `middle_per_chunk` of them per query are scored against their 32 pooled vectors. The choice depends
        on the chunk alone (never on the rest of the library), so any grouping of chunks into shards gives
        every window the same first-stage score.
        """
        snapshot = snapshot or self._snapshot
        rows, first = self._first_stage(token_sets, windows, snapshot, queries)
        out = np.full((len(windows), len(token_sets)), -np.inf)
        out[rows] = first
        return out

    def _first_stage(self, token_sets: list[np.ndarray], windows: np.ndarray, snapshot: _Snapshot,
                     queries: "_QueryBatch | None" = None) -> tuple[np.ndarray, np.ndarray]:
        """`first_stage_scores` as (rows, scores): the positions into `windows` (ascending) that reached the
        middle stage for some query, and their (len(rows), Q) scores, -inf where another query chose them.

        Why not the dense array: at a million windows nine in ten of its rows are -inf, and each pass over it
        (the shortlist's cut, its mask, the union) cost a few ms of one thread per query."""
        queries = queries or _QueryBatch(token_sets, snapshot.reader, self.kernel)
        columns = len(token_sets)
        if len(windows) == 0:
            return np.zeros(0, np.int64), np.zeros((0, columns))
        query_map = queries.query_map(pooled=True)
        table = self.kernel_choice.table
        operand = TABLES[table].queries(queries.quantized.q8) if table in TABLES else None
        groups = snapshot.groups(windows)
        parts: dict[int, tuple[np.ndarray, np.ndarray]] = {}  # chunk -> its middle-stage rows and scores
        release = snapshot.pooled_bytes > self.mapped_budget * KEEP_POOLED_SHARE

        def one(group):  # both stages of one chunk in one task: no barrier, no library-wide coarse array
            chunk, where = group
            scan = snapshot.scans[chunk]
            coarse = scan.coarse_scores(self.kernel, queries.operand, query_map, table=table, operand=operand)
            local = snapshot.local_windows(chunk, windows, where)
            if local is not None:
                coarse = coarse[local]
            top = _top_rows(coarse, middle_per_chunk(len(where), scan.coarse_kind))  # (keep, Q) rows of `where`
            chosen = np.zeros((len(where), columns), bool)
            np.put_along_axis(chosen, top, True, axis=0)
            rows = np.flatnonzero(chosen.any(axis=1))
            chosen = chosen[rows]
            chunk_rows = rows if local is None else local[rows]
            maxima = _picked_maxima(chosen, queries, SPLIT_CALL_MIDDLE, lambda part, picked: scan.pooled_maxima(
                chunk_rows[picked], self.kernel, part.operand, release=False))
            if release:  # once per chunk, after every query's rows (see ChunkScan.pooled_maxima)
                scan.chunk.release("pooled")
            parts[chunk] = (where[rows], queries.scores(maxima, pooled=True, picked=chosen))

        with single_blas_thread():
            self._each_chunk(groups, one)
        rows = np.concatenate([parts[chunk][0] for chunk, _ in groups])
        first = np.concatenate([parts[chunk][1] for chunk, _ in groups])
        if len(rows) > 1 and not np.all(rows[1:] > rows[:-1]):  # filtered windows in no chunk order
            order = np.argsort(rows, kind="stable")
            rows, first = rows[order], first[order]
        return rows, first

    def coarse_scores(self, snapshot: _Snapshot, windows: np.ndarray, queries: "_QueryBatch") -> np.ndarray:
        """(len(windows), Q) float32 coarse-table MaxSim: the first stage's kernel over every given window.

        Per chunk and block, the integer maxima go straight through the queries' affine map
        (`_QueryBatch.query_map`, `query_sums`): no (W, rows) integer or float64 copy of the whole library.
        """
        query_map = queries.query_map(pooled=True)
        table = self.kernel_choice.table
        operand = TABLES[table].queries(queries.quantized.q8) if table in TABLES else None
        out = np.empty((len(windows), query_map.queries), np.float32)
        if len(windows) == 0:
            return out

        def one(group):
            chunk, where = group
            scan = snapshot.scans[chunk]
            scores = scan.coarse_scores(self.kernel, queries.operand, query_map, table=table, operand=operand)
            local = snapshot.local_windows(chunk, windows, where)
            out[snapshot.group_rows(chunk, windows, where)] = scores if local is None else scores[local]

        with single_blas_thread():
            self._each_chunk(snapshot.groups(windows), one)
        return out

    def _each_chunk(self, groups: list, work) -> None:
        """Run `work(group)` for every group (`_Snapshot.groups`, or `_pieces` of them) on the calling thread and
        up to `self.threads - 1` pool threads, each taking the next group as it comes free.

        Why threads over chunks (not torch's intra-op threads, which `mofind serve --threads` keeps at 1):
        every chunk is independent and writes its own rows, the heavy steps (numpy gathers and unpacking,
        torch/oneDNN products) release the GIL, and a thread that finds its core busy (Blender, another
        request) just takes fewer groups: no barrier waits on a stalled OpenMP thread. Results are identical
        for any thread count: each group is computed the same way whichever thread takes it.

        Why the caller works too, instead of handing every group to the pool and waiting: a pool thread wakes
        50-250 us after the hand-off on a 2-vCPU VM and runs its first group 2-3x slower than the hot caller
        would; a 14-window re-rank took 0.64 ms on two pool threads against 0.17 ms on the caller alone
        (Xeon, 2 vCPUs, side by side). Now small work ends on the caller before a helper has woken, and large
        work is shared; a helper still queued behind another request's work when the caller is done is
        cancelled instead of waited for.
        """
        if self.threads <= 1 or len(groups) < 2:
            for group in groups:
                work(group)
            return
        pending = iter(groups)
        lock = threading.Lock()
        failed: list[BaseException] = []

        def drain():
            while not failed:
                with lock:
                    group = next(pending, None)
                if group is None:
                    return
                try:
                    work(group)
                except BaseException as error:  # noqa: BLE001 - re-raised on the caller below
                    failed.append(error)

        pool = _chunk_pool(self.threads - 1)
        helpers = [pool.submit(drain) for _ in range(min(self.threads - 1, len(groups) - 1))]
        drain()
        for helper in helpers:
            if not helper.cancel():  # one still queued behind another request's work would find nothing left
                helper.result()  # every group in flight has written its rows before the caller reads them
        if failed:
            raise failed[0]

    def chunk_windows(self, chunk_names, snapshot: _Snapshot | None = None) -> np.ndarray:
        """Snapshot positions of the live windows stored in the named chunks (one shard's part of the library)."""
        snapshot = snapshot or self._snapshot
        wanted = [c for c, scan in enumerate(snapshot.scans) if scan.chunk.name in set(chunk_names)]
        if not wanted:
            return np.zeros(0, np.int64)
        return np.concatenate([snapshot.chunk_windows[c] for c in wanted])

    @staticmethod
    def resolve_mode(mode: str, snapshot: _Snapshot) -> str:
        if mode not in MODES:
            raise SearchError(f"unknown search mode {mode!r}; use one of {', '.join(MODES)}")
        if mode == "auto":
            return "exact" if snapshot.num_windows <= AUTO_EXACT_MAX_WINDOWS else "two_stage"
        return mode

    @staticmethod
    def allowed_windows(snapshot: _Snapshot, filters: Filters) -> np.ndarray:
        if not filters.active:
            return snapshot.all_windows  # the same object: `_Snapshot.groups` knows its chunks
        keep = filters.clip_mask(snapshot.clips)
        return np.flatnonzero(keep[snapshot.window_clip])

    def _scan(self, snapshot: _Snapshot, windows: np.ndarray, queries: "_QueryBatch | _QueryRows") -> np.ndarray:
        """Integer maxima (len(windows), query rows) over each window's patches (exact MaxSim); `queries`: a
        batch or some of its rows (`_QueryBatch.part`)."""
        out = np.empty((len(windows), queries.rows), np.int32)
        if len(windows) == 0:
            return out
        operand = queries.operand

        def one(group):
            chunk, where = group
            local = snapshot.window_index[windows[where]]
            out[where] = snapshot.scans[chunk].exact_maxima(local, self.kernel, operand, self.cache)

        groups = snapshot.groups(windows)
        if len(windows) < PIECE_MIN_WINDOWS:  # a few windows (the name rescue): done before a helper would wake
            for group in groups:
                one(group)
            return out
        self._each_chunk(_pieces(groups, self.threads), one)
        return out

    @staticmethod
    def _top_takes(snapshot: _Snapshot, allowed: np.ndarray, scores: np.ndarray, k: int, per_take: int,
                   motion: np.ndarray | None = None) -> list[Hit]:
        """Best takes by `scores` (one per take, `per_take` windows each); `motion`: the same windows' MaxSim
        before names were fused in, kept as each hit's `motion_score` (what match quality is calibrated on)."""
        finite = np.flatnonzero(np.isfinite(scores))
        positions, values = allowed[finite], scores[finite]
        motion = motion[finite] if motion is not None else None
        clips = snapshot.window_clip[positions]
        order = np.lexsort((-values, clips))  # by clip, best window first
        clips_sorted = clips[order]
        first = np.ones(len(order), bool)
        first[1:] = clips_sorted[1:] != clips_sorted[:-1]
        group_start = np.maximum.accumulate(np.where(first, np.arange(len(order)), 0))
        rank_in_clip = np.arange(len(order)) - group_start
        best = order[first]  # best window of each clip
        top_clips = best[np.argsort(-values[best], kind="stable")[:k]]
        hits = []
        for head in top_clips:
            clip = clips[head]
            members = order[(clips_sorted == clip) & (rank_in_clip < per_take)]
            for member in members:
                hit = _hit(snapshot, positions[member], float(values[member]))
                if motion is not None:
                    hit.motion_score = float(motion[member])
                hits.append(hit)
        return hits


def mapped_file_bytes() -> int | None:
    """This process's resident file-backed (and shared) memory in bytes, from /proc/self/statm; None where
    there is no /proc (then nothing is released: other systems account mapped files differently).

    Read with `pread` on a descriptor kept open (reopened in a forked child, whose /proc/self differs): every
    search asks, and opening, reading and closing the file cost ~30 us warm and ~0.15 ms in a server."""
    global _STATM
    try:
        if _STATM is None or _STATM[0] != os.getpid():
            _STATM = (os.getpid(), os.open("/proc/self/statm", os.O_RDONLY | getattr(os, "O_CLOEXEC", 0)))
        shared_pages = int(os.pread(_STATM[1], 256, 0).split()[2])
    except (OSError, ValueError, IndexError, AttributeError):  # AttributeError: no os.pread (Windows)
        return None
    return shared_pages * _PAGE_SIZE


_STATM: tuple[int, int] | None = None  # (pid, descriptor of /proc/self/statm) of `mapped_file_bytes`


_PAGE_SIZE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def _hit(snapshot: _Snapshot, position: int, score: float) -> Hit:
    scan = snapshot.scans[snapshot.window_chunk[position]]
    window = snapshot.window_index[position]
    clip = snapshot.clips[snapshot.window_clip[position]]
    source = scan.chunk.arrays["win_source"]  # indexed by (row, column): a scalar, no memmap row object (~10 us)
    return Hit(clip_id=clip["clip_id"], source=clip["source"], start_frame=int(source[window, 0]),
               end_frame=int(source[window, 1]),
               fps=float(clip["source_fps"]), score=score, duration=float(clip["duration"]),
               labels=list(clip["labels"]), skeleton=clip["skeleton"], take=clip.get("take", ""),
               window_start=int(scan.chunk.arrays["win_start"][window]))


@dataclass(frozen=True)
class _QueryRows:
    """Some query rows as the kernels take them (`Searcher._scan`, `ChunkScan.pooled_maxima`)."""
    rows: int
    operand: object


class _QueryBatch:
    """Several queries' tokens stacked as one int8 matrix, and the affine map back to mean cosines."""

    def __init__(self, token_sets: list[np.ndarray], reader: IndexReader, kernel):
        self.token_sets, self._reader, self._kernel = token_sets, reader, kernel
        tokens = np.concatenate([np.asarray(t, np.float32) for t in token_sets])
        self.quantized = reader.codec.quantize_queries(tokens)
        # both codecs share the rotation, so the int8 rows are the same: only the dequantisation differs
        self.pooled_quantized = replace(self.quantized, step=reader.pooled_codec.step,
                                        level_count=reader.pooled_codec.level_count)
        self.rows = len(tokens)
        self.operand = kernel.queries(self.quantized.q8)
        self._parts: dict[int, _QueryRows] = {}
        lengths = [len(t) for t in token_sets]
        self.starts = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)  # query q's rows: starts[q]..
        self.average = np.zeros((self.rows, len(token_sets)))
        start = 0
        for q, length in enumerate(lengths):
            self.average[start:start + length, q] = 1.0 / length
            start += length

    def part(self, q: int) -> "_QueryRows":
        """Query q's rows of this batch and their kernel operand (the same int8 rows: quantised row by row)."""
        found = self._parts.get(q)
        if found is None:
            rows = self.quantized.q8[self.starts[q]:self.starts[q + 1]]
            found = self._parts[q] = _QueryRows(len(rows), self._kernel.queries(rows))
        return found

    def alone(self, q: int) -> "_QueryBatch":
        """The batch of query `q` alone: this one when it holds no other (quantising and prepacking ~0.1 ms)."""
        if len(self.token_sets) == 1:
            return self
        return _QueryBatch([self.token_sets[q]], self._reader, self._kernel)

    def query_map(self, pooled: bool = False) -> QueryMap:
        """The map with `query_sums(m) == scores(m)` (to float32 rounding): each query's rows weighted and summed."""
        quantized = self.pooled_quantized if pooled else self.quantized
        factor = (quantized.scale * quantized.step / 2.0).astype(np.float64)  # per row: cosine per integer unit
        offset = (quantized.level_count - 1) * quantized.row_sum.astype(np.float64)
        share = self.average.sum(axis=1)  # per row: 1 / its query's row count
        bias = -(offset * factor) @ self.average
        return QueryMap(self.starts, (2.0 * factor * share).astype(np.float32), bias.astype(np.float32))

    def scores(self, maxima: np.ndarray, pooled: bool = False, picked: np.ndarray | None = None) -> np.ndarray:
        """Integer maxima (n, rows) -> MaxSim (n, queries) float64: cosine per token, averaged per query
        (`query_means`); with `picked` ((n, Q) bool) only those entries, -inf elsewhere."""
        quantized = self.pooled_quantized if pooled else self.quantized
        factor = quantized.scale * quantized.step / 2.0  # float32, as `to_scores` rounds it
        return query_means(maxima, factor, (quantized.level_count - 1) * quantized.row_sum, self.starts, picked)


def _by_chunk(chunks: np.ndarray) -> list:
    """Positions grouped by chunk number, each group in its original order. When `chunks` is already sorted
    (the whole library in snapshot order) no argsort is needed: at a million windows that saved ~10 ms a query."""
    if len(chunks) == 0:
        return []
    if np.all(chunks[1:] >= chunks[:-1]):
        bounds = np.concatenate([[0], np.flatnonzero(chunks[1:] != chunks[:-1]) + 1, [len(chunks)]])
        return [np.arange(a, b) for a, b in zip(bounds[:-1], bounds[1:])]
    order = np.argsort(chunks, kind="stable")
    return np.split(order, np.flatnonzero(np.diff(chunks[order])) + 1)


def _shortlist(first: np.ndarray, candidates: int) -> np.ndarray:
    """(n, Q) first-stage scores -> (n, Q) bool: per query, every finite score at or above its `candidates`-th
    best (ties included). Rows left out of `first` count as -inf, so with fewer than `candidates` rows every
    finite one is picked, as on the dense array."""
    if len(first) < candidates:
        return np.isfinite(first)
    cut = np.partition(first, len(first) - candidates, axis=0)[len(first) - candidates]  # (Q,)
    return (first >= cut[None, :]) & np.isfinite(first)


def _split_pays(picked: np.ndarray, starts: np.ndarray, call_cost: int) -> bool:
    """Whether scoring each row of `picked` ((n, Q) bool) against the rows of the queries that picked it alone,
    one call per query, is less work than scoring every picked row against every query row: in windows times
    4-row query groups (how the kernels multiply), a call costing `call_cost` of them."""
    if picked.shape[1] < 2:
        return False
    groups = -(-np.diff(starts) // LANES)  # per query
    alone = int(picked.sum(axis=0) @ groups) + call_cost * int(np.count_nonzero(picked.any(axis=0)))
    return alone < int(np.count_nonzero(picked.any(axis=1))) * -(-int(starts[-1]) // LANES)


def _picked_maxima(picked: np.ndarray, queries: "_QueryBatch", call_cost: int, maxima) -> np.ndarray:
    """(len(picked), rows) int32 maxima of `picked`'s rows: `maxima(queries, all rows)` when one call for every
    query row is the least work (`_split_pays`), else `maxima(queries.part(q), rows q picked)` per query, into
    that query's columns, zeros elsewhere. The zeros weigh nothing in the other queries' scores (their weights
    there are zeros: `_QueryBatch.scores`), so every picked score is the same to the bit either way."""
    if not _split_pays(picked, queries.starts, call_cost):
        return maxima(queries, slice(None))
    out = np.zeros((len(picked), queries.rows), np.int32)
    for q in range(picked.shape[1]):
        where = np.flatnonzero(picked[:, q])
        if len(where):
            out[where, queries.starts[q]:queries.starts[q + 1]] = maxima(queries.part(q), where)
    return out


def _top_rows(scores: np.ndarray, count: int) -> np.ndarray:
    """(n, Q) scores -> (count, Q) row indices of each column's `count` best (in no particular order)."""
    if count >= len(scores):
        return np.arange(len(scores))[:, None].repeat(scores.shape[1], axis=1)
    return np.argpartition(-scores, count - 1, axis=0)[:count]


def merge_hits(parts: list[list[Hit]], k: int, per_take: int = 1) -> list[Hit]:
    """Hits of disjoint parts of a library (e.g. shards by chunk) -> the hits one search of it all gives.

    Each part must have been searched with the same k and per_take; takes never span parts, so a take's
    best window and its per_take windows are all in one part, and ordering takes by their best score
    reproduces the single search (ties: the earlier part first, as the single search's stable order).
    """
    takes: dict[str, list[Hit]] = {}
    for hits in parts:
        for hit in hits:
            takes.setdefault(hit.clip_id, []).append(hit)
    ranked = sorted(takes.values(), key=lambda group: -group[0].score)
    return [hit for group in ranked[:k] for hit in group[:per_take]]
