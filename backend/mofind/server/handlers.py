"""The methods of protocol v1, on top of one index folder and one model (`Backend`).

`Backend.handle(frames) -> reply frames` is all the router calls; it never raises. Handlers validate
their params with `protocol.Params`, so a wrong type, a missing field or an unknown one is a
BAD_REQUEST naming it, and library exceptions are mapped to codes here (KeyError of a clip ->
NOT_FOUND, a locked index -> BUSY, a bad filter -> BAD_REQUEST, anything else -> INTERNAL, logged).

Clients index and remove by path only inside the operator's library roots (`--library-root`,
`library_roots` in mofind.toml); anything else is FORBIDDEN, naming the setting.
"""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np
import torch

import mofind
from mofind.index.explain import explain_tokens
from mofind.index.linalg import blas_threads
from mofind.index.lock import IndexLockedError
from mofind.index.manifest import IndexNotFoundError, IndexSpec
from mofind.index.roots import LibraryRoots
from mofind.index.search import MODES, Filters, SearchError, Searcher
from mofind.index.similar import similar
from mofind.index.store import IndexReader, IndexWriter
from mofind.quality.assess import MatchQuality
from mofind.quality.relax import relax, relaxed_report, variant_runner
from mofind.index.text_match import DEFAULT_NAMES_WEIGHT, MAX_NAMES_WEIGHT

from .jobs import JobManager, JobQueueFull
from .memory import MemoryBudget, default_max_memory, rss_bytes
from .protocol import (BAD_REQUEST, BUSY, CANCELLED, FORBIDDEN, INTERNAL, NOT_FOUND, PROTOCOL_VERSION, TOO_LARGE,
                       UNKNOWN_METHOD, FrameSet, Limits, Params, ProtocolError, error_reply, ok_reply, parse_request,
                       peek_id)

log = logging.getLogger(__name__)

PER_TAKE_MAX = 50


def open_or_create_index(index_dir: Path, spec: IndexSpec) -> IndexReader:
    """The index at `index_dir`, created empty on first use; ModelMismatchError if another model built it."""
    try:
        return IndexReader.open(index_dir, spec)
    except IndexNotFoundError:
        with IndexWriter(index_dir, spec, lock_timeout=10.0):
            pass
        return IndexReader.open(index_dir, spec)


def _candidates(windows: int, k: int, per_take: int) -> int:
    from mofind.index.search import default_candidates

    return max(default_candidates(windows), 4 * k * per_take)


def _motion_bytes(record) -> int:
    """Upper bound of what loading a whole take costs: the text, per-frame channels, rotations and positions."""
    frames = max(1, record.frame_range[1] - record.frame_range[0])
    return int(4 * max(record.size, 0) + frames * max(record.joints, 22) * 256)


class Backend:
    """Everything a request can touch: the index (read + background writes), the model, the limits."""

    def __init__(self, index_dir: str | Path, encoder, *, limits: Limits = Limits(), job_workers: int = 1,
                 commit_every: int = 64, model_dir: str | Path | None = None, library_roots=(), motion_limits=None,
                 settings_file: str | Path | None = None, searcher_factory=None, max_memory: int | None = None,
                 workers: int = 4, device: str = "cpu"):
        """`model_dir`: where the encoder's vocabulary.json and calibration.json live (default: shipped model);
        `library_roots`: where clients may index; `motion_limits`: caps on the files indexing jobs parse;
        `searcher_factory(reader)`: the search backend (default `Searcher`; `mofind serve --cluster` passes the
        Ray-sharded one, see mofind.index.cluster); `max_memory` (bytes, default half the machine) is the
        server's promise, and `workers` request threads share what the searcher does not keep (see memory.py);
        `device`: where MaxSim runs."""
        self.index_dir = Path(index_dir)
        self.encoder = encoder
        self.limits = limits
        self.roots = LibraryRoots(library_roots)
        self.settings_file = str(settings_file) if settings_file else "mofind.toml in the MoFind config folder"
        self.spec = IndexSpec.from_encoder(encoder)
        max_memory = default_max_memory() if max_memory is None else int(max_memory)
        self.memory = MemoryBudget(max_memory, workers=max(1, workers), baseline=rss_bytes())
        reader = open_or_create_index(self.index_dir, self.spec)
        self.searcher = searcher_factory(reader) if searcher_factory else \
            Searcher(reader, device=device, cache_bytes=min(256 << 20, max_memory // 8))
        self._text_lock = threading.Lock()  # HF fast tokenizers are not safe to call from two threads at once
        self.quality = MatchQuality.for_model(encoder, model_dir, text_lock=self._text_lock, background=True)
        self.jobs = JobManager(self.index_dir, encoder, workers=job_workers, commit_every=commit_every,
                               max_queued=limits.max_queued_jobs, max_failures_listed=limits.max_job_failures_listed,
                               limits=motion_limits, roots=self.roots)
        self._stopping = threading.Event()
        self._warm = threading.Event()  # set once `warm` has run: searches now run at their steady speed
        self._rewarm_lock = threading.Lock()
        self._rewarm_pending = False
        self._rewarm_thread: threading.Thread | None = None  # warming what a commit or compaction changed
        self.methods = {
            "ping": self.ping, "info": self.info, "search": self.search, "similar": self.similar,
            "explain": self.explain, "get_motion": self.get_motion, "index_add": self.index_add,
            "index_status": self.index_status, "index_remove": self.index_remove, "cancel": self.cancel,
        }

    # -- dispatch ----------------------------------------------------------------------------------------
    def handle(self, frames: list[bytes]) -> list[bytes]:
        request_id = None
        try:
            request = parse_request(frames, self.limits)
            request_id = request.id
            if self._stopping.is_set():
                raise ProtocolError(CANCELLED, "the server is shutting down")
            method = self.methods.get(request.method)
            if method is None:
                raise ProtocolError(UNKNOWN_METHOD, f"unknown method {request.method[:64]!r}; known: "
                                                    f"{', '.join(sorted(self.methods))}")
            result, frame_set = method(request.params)
            offline = self._offline_summary()
            return ok_reply(request_id, result, frame_set, meta={"offline": offline} if offline else None)
        except ProtocolError as exc:
            if request_id is None and frames:  # the header did not validate: find its id for the reply
                request_id = peek_id(frames[0], self.limits.max_request_bytes)
            return error_reply(request_id, exc.code, exc.message)
        except Exception as exc:  # noqa: BLE001 - the server must answer and keep serving whatever happens
            log.exception("request %r failed", request_id)
            return error_reply(request_id, INTERNAL, f"internal error: {type(exc).__name__}: {str(exc)[:300]}")

    def begin_shutdown(self) -> None:
        """Signal-handler safe: answer CANCELLED from now on and ask the running job to stop (no waiting)."""
        self._stopping.set()
        self.jobs.cancel_all()

    def stop(self) -> None:
        """Refuse new requests (CANCELLED) and stop the indexing thread after it commits."""
        self._stopping.set()
        self.jobs.shutdown()

    def warm(self) -> None:
        """Unpack the index codes and compute the null distribution now, instead of during the first search."""
        try:
            self.searcher.warm()
            self.quality.null_model.distribution(self.searcher)
        except Exception:  # noqa: BLE001 - warming is an optimisation; the first search will say what fails
            log.exception("warming the index codes or the match-quality null distribution failed")
        finally:
            self._warm.set()

    # -- helpers -----------------------------------------------------------------------------------------
    def _offline_summary(self) -> dict | None:
        """What this request could not search: quarantined chunks, and on a cluster the shards that did not answer."""
        summary = getattr(self.searcher, "offline_summary", None)
        return summary() if summary is not None else self.searcher.reader.offline_summary()

    def _current(self) -> Searcher:
        if self.searcher.refresh():
            self._rewarm()
        return self.searcher

    def _rewarm(self) -> None:
        """The library changed under the server (a commit, a compaction): warm it again in the background, so
        the new chunks get their first-stage tables and, in a small library, the unpacked cache that makes its
        re-ranks fast (`Searcher.warm`), without the request that noticed the change waiting for it. Changes
        seen while a warm runs are warmed once more before its thread ends."""
        with self._rewarm_lock:
            self._rewarm_pending = True
            if self._rewarm_thread is None:
                self._rewarm_thread = threading.Thread(target=self._rewarm_loop, name="mofind-rewarm", daemon=True)
                self._rewarm_thread.start()

    def _rewarm_loop(self) -> None:
        while True:
            with self._rewarm_lock:
                if not self._rewarm_pending or self._stopping.is_set():
                    self._rewarm_thread = None
                    return
                self._rewarm_pending = False
            try:
                self.searcher.warm()
            except Exception:  # noqa: BLE001 - an optimisation: searches still run (and say what fails) without it
                log.exception("warming the changed index failed")

    def _encode_texts(self, texts: list[str]) -> list[tuple[np.ndarray, list[str]]]:
        with self._text_lock:
            return self.encoder.encode_texts(texts)

    def _search_bytes(self, searcher, snapshot, token_sets, mode: str, k: int, per_take: int) -> int:
        """A text search's memory estimate for these encoded queries (the prompt, or a batch of relaxed ones)."""
        return self._request_bytes(searcher, snapshot.num_windows, len(token_sets), sum(map(len, token_sets)), mode,
                                   candidates=_candidates(snapshot.num_windows, k, per_take))

    def _admits(self, searcher, snapshot, token_sets, mode: str, k: int, per_take: int) -> bool:
        """Whether a batch of relaxed prompts fits the memory budget (it is skipped, not refused, when not)."""
        need = self._search_bytes(searcher, snapshot, token_sets, mode, k, per_take)
        return self.memory.refusal(need, self._resident(), "relaxed prompts") is None

    def _encode_query(self, text: str) -> tuple[np.ndarray, list[str]]:
        tokens, words = self._encode_texts([text])[0]
        if len(tokens) == 0:
            raise ProtocolError(BAD_REQUEST, "the query has no words the model knows")
        return tokens, words

    def _filters(self, params: Params) -> Filters:
        try:
            return Filters.from_dict(params.mapping("filters"))
        except SearchError as exc:
            raise ProtocolError(BAD_REQUEST, str(exc)) from None

    def _hits_result(self, hits, want_thumbnails: bool) -> tuple[dict, FrameSet]:
        frames = FrameSet()
        thumbs: dict[str, dict | None] = {}
        reader = self.searcher.reader
        results = []
        for hit in hits:
            item = hit.to_dict()
            if want_thumbnails:
                if hit.clip_id not in thumbs:
                    png = reader.thumbnail(hit.clip_id) if hit.clip_id in reader else None
                    thumbs[hit.clip_id] = frames.add_bytes(png, "image/png") if png else None
                item["thumbnail"] = thumbs[hit.clip_id]
            else:
                item["thumbnail"] = None
            results.append(item)
        return {"results": results}, frames

    def _forbidden(self, path: str, action: str) -> ProtocolError:
        return ProtocolError(FORBIDDEN, (
            f"{path[:300]!r} is outside the library roots this server may {action} (roots: "
            f"{self.roots.describe()[:600]}); the operator allows a folder with `mofind serve --library-root DIR` "
            f"or `library_roots` under [serve] in {self.settings_file}"))

    @staticmethod
    def _clip_missing(clip_id: str) -> ProtocolError:
        return ProtocolError(NOT_FOUND, f"clip {clip_id!r} is not in the index")

    # -- methods -----------------------------------------------------------------------------------------
    def ping(self, params: dict):
        Params(params, ())
        return {"pong": True, "version": mofind.__version__, "protocol": PROTOCOL_VERSION}, None

    def info(self, params: dict):
        Params(params, ())
        reader = self._current().reader
        spec = reader.spec
        return {
            "version": mofind.__version__, "protocol": PROTOCOL_VERSION,
            "model": {"name": spec.model_name, "hash": spec.model_hash, "dim": spec.dim,
                      "text_precision": self.encoder.text_precision,
                      "text_precision_reason": self.encoder.text_precision_reason},
            "index": {"path": str(self.index_dir), "clips": len(reader), "windows": reader.num_windows,
                      "bytes": reader.disk_bytes(), "generation": reader.generation,
                      "offline": reader.offline_summary()},
            "grid": list(spec.grid), "part_names": list(spec.part_names),
            "window": {"frames": spec.window_frames, "stride": spec.stride_frames, "fps": spec.fps,
                       "frames_per_row": spec.frames_per_row},
            "search_modes": list(MODES), "limits": self.limits.to_dict(), "indexing": self.jobs.busy,
            "warm": self._warm.is_set(),
            "kernel": self._kernel_info(), "memory": self.memory.to_dict(self._resident()),
            "threads": {"torch": torch.get_num_threads(), "blas": blas_threads()},
        }, None

    def _kernel_info(self) -> dict | None:
        """The MaxSim kernel of this node's searcher (a sharded searcher's shards report their own)."""
        searcher = self.searcher
        searcher = searcher if hasattr(searcher, "kernel_info") else getattr(searcher, "local", None)
        return searcher.kernel_info() if hasattr(searcher, "kernel_info") else None

    def _resident(self) -> int:
        """What the searcher keeps between requests once warm: first-stage tables + the block cache's budget.

        A sharded searcher keeps its tables on the shard nodes: nothing here (0)."""
        searcher = self.searcher
        if not hasattr(searcher, "table_bytes_per_window"):
            return 0
        return searcher.snapshot.num_windows * searcher.table_bytes_per_window() + searcher.cache.budget

    def _request_bytes(self, searcher, *args, **kwargs) -> int:
        """A search's memory estimate on this node (0 for a sharded searcher: the shards do the scoring)."""
        estimate = getattr(searcher, "request_bytes", None)
        return estimate(*args, **kwargs) if estimate is not None else 0

    def _fits(self, need: int, what: str) -> None:
        refusal = self.memory.refusal(need, self._resident(), what)
        if refusal is not None:
            raise ProtocolError(TOO_LARGE, refusal)

    def search(self, params: dict):
        p = Params(params, ("query", "k", "filters", "per_take", "mode", "thumbnails", "names_weight", "relax"))
        query = p.string("query", max_chars=self.limits.max_query_chars)
        k = p.integer("k", default=10, low=1, high=self.limits.max_k, high_code=TOO_LARGE)
        per_take = p.integer("per_take", default=1, low=1, high=PER_TAKE_MAX)
        mode = p.string("mode", required=False, default="auto", max_chars=16)
        if mode not in MODES:
            raise ProtocolError(BAD_REQUEST, f"'mode' must be one of {', '.join(MODES)}")
        filters = self._filters(p)
        want_thumbnails = p.boolean("thumbnails", True)
        names_weight = p.number("names_weight", default=DEFAULT_NAMES_WEIGHT, low=0.0, high=MAX_NAMES_WEIGHT)
        relax_prompt = p.boolean("relax", True)
        tokens, _ = self._encode_query(query)
        searcher = self._current()
        snapshot = searcher.snapshot
        self._fits(self._search_bytes(searcher, snapshot, [tokens], mode, k, per_take),
                   f"this search (k={k}, per_take={per_take}, mode {mode})")
        hits = searcher.search_tokens([tokens], k=k, filters=filters, per_take=per_take, mode=mode, texts=[query],
                                      names_weight=names_weight)[0]
        quality = self.quality.assess(searcher, query, hits, filters=filters, mode=mode, snapshot=snapshot)
        if relax_prompt and quality.no_good_match:
            relaxed = relax(query, hits, quality, variant_runner(
                searcher, self.quality, self._encode_texts, k=k, filters=filters, per_take=per_take, mode=mode,
                names_weight=names_weight, snapshot=snapshot,
                admit=lambda texts, found: self._admits(searcher, snapshot, found, mode, k, per_take)))
            if relaxed is not None:
                hits, quality = relaxed.hits, relaxed_report(quality, relaxed)
        result, frames = self._hits_result(hits, want_thumbnails)
        result["quality"] = quality.to_dict()
        return result, frames

    def similar(self, params: dict):
        p = Params(params, ("clip_id", "k", "start_frame", "filters", "mode", "thumbnails"))
        clip_id = p.string("clip_id", max_chars=64)
        k = p.integer("k", default=10, low=1, high=self.limits.max_k, high_code=TOO_LARGE)
        start_frame = p.integer("start_frame", low=0)
        mode = p.string("mode", required=False, default="auto", max_chars=16)
        if mode not in MODES:
            raise ProtocolError(BAD_REQUEST, f"'mode' must be one of {', '.join(MODES)}")
        filters = self._filters(p)
        want_thumbnails = p.boolean("thumbnails", True)
        searcher = self._current()
        if clip_id not in searcher.reader:
            raise self._clip_missing(clip_id)
        windows = searcher.snapshot.num_windows
        self._fits(self._request_bytes(searcher, windows, 1, self.spec.num_patches, mode,
                                       candidates=_candidates(windows, k, 1)),
                   f"this similar search (k={k}, mode {mode})")
        hits = similar(searcher, clip_id, k=k, start_frame=start_frame, filters=filters, mode=mode)
        return self._hits_result(hits, want_thumbnails)

    def explain(self, params: dict):
        p = Params(params, ("query", "clip_id", "start_frame"))
        query = p.string("query", max_chars=self.limits.max_query_chars)
        clip_id = p.string("clip_id", max_chars=64)
        start_frame = p.integer("start_frame", low=0)
        reader = self._current().reader
        if clip_id not in reader:
            raise self._clip_missing(clip_id)
        tokens, words = self._encode_query(query)
        explanation = explain_tokens(reader, tokens, words, clip_id, start_frame)
        frames = FrameSet()
        return {
            "clip_id": clip_id, "start_frame": explanation.start_frame, "end_frame": explanation.end_frame,
            "score": round(explanation.score, 6), "tokens": [t.to_dict() for t in explanation.tokens],
            "matrix": frames.add_array(explanation.matrix, np.float32),
            "grid": list(explanation.grid), "part_names": explanation.part_names,
        }, frames

    def get_motion(self, params: dict):
        from mofind.io.files import file_sha256
        from mofind.io import MotionIOError, load_motion

        p = Params(params, ("clip_id", "start_frame", "end_frame"))
        clip_id = p.string("clip_id", max_chars=64)
        reader = self._current().reader
        if clip_id not in reader:
            raise self._clip_missing(clip_id)
        record = reader.clip(clip_id)
        first, last = record.frame_range
        start = p.integer("start_frame", default=first, low=first, high=last - 1)
        end = p.integer("end_frame", default=last, low=start + 1, high=last)
        if end - start > self.limits.max_motion_frames:
            raise ProtocolError(TOO_LARGE, f"{end - start} frames requested; at most {self.limits.max_motion_frames}"
                                           " per get_motion (ask for a frame range)")
        source = Path(record.source)
        self._fits(_motion_bytes(record), f"loading {source.name} ({last - first} frames, {record.joints} joints)")
        try:
            stat = source.stat()
            if (stat.st_size, stat.st_mtime_ns) != (record.size, record.mtime_ns) and \
                    file_sha256(source) != record.content_hash:
                raise ProtocolError(NOT_FOUND, f"{source} changed since it was indexed; re-index it")
            motion = load_motion(source, fps=self.spec.fps, take=record.take or None)
        except FileNotFoundError:
            raise ProtocolError(NOT_FOUND, f"{source} no longer exists (the index still lists it)") from None
        except (MotionIOError, OSError) as exc:
            raise ProtocolError(NOT_FOUND, f"{source} can no longer be read: {exc}") from None
        if motion.skeleton is None or motion.local_rotations is None:
            raise ProtocolError(BAD_REQUEST, f"{source} holds joint positions only (no source skeleton and "
                                             "rotations to retarget)")
        rows = slice(start - motion.frame_range[0], end - motion.frame_range[0])
        frames = FrameSet()
        mapping = motion.mapping or {}
        skeleton = motion.skeleton
        result = {
            "clip_id": clip_id, "source": str(source), "take": record.take,
            "skeleton": {"names": list(skeleton.names), "parents": [int(v) for v in skeleton.parents],
                         "offsets": np.asarray(skeleton.offsets, float).tolist()},
            "fps": float(motion.source_fps), "start_frame": start, "end_frame": end,
            "unit_scale": float(mapping.get("unit_scale", 1.0)), "up_axis": str(mapping.get("up_axis", "Y")),
            "smpl_to_source": dict(mapping.get("smpl_to_source", {})), "preset": mapping.get("preset"),
            "rotations": frames.add_array(motion.local_rotations[rows], np.float32),
            "root_translation": frames.add_array(motion.root_translation[rows], np.float32),
            "joint_translations": None,
        }
        joint_translations = motion.joint_translations
        if joint_translations is not None:
            result["joint_translations"] = frames.add_array(joint_translations[rows], np.float32)
        return result, frames

    def index_add(self, params: dict):
        p = Params(params, ("paths", "recursive"))
        paths = p.strings("paths", max_items=self.limits.max_paths, max_chars=self.limits.max_path_chars, path=True)
        if not paths:
            raise ProtocolError(BAD_REQUEST, "'paths' must list at least one file or folder")
        paths = [os.path.expanduser(path) for path in paths]
        relative = [path for path in paths if not os.path.isabs(path) or "\x00" in path]
        if relative:
            raise ProtocolError(BAD_REQUEST, f"paths must be absolute (the server's working directory is not "
                                             f"the client's): {relative[0][:200]!r}")
        outside = [path for path in paths if not self.roots.holds(path)]
        if outside:
            raise self._forbidden(outside[0], "index")
        try:
            job = self.jobs.submit(paths, p.boolean("recursive", True))
        except JobQueueFull as exc:
            raise ProtocolError(BUSY, str(exc)) from None
        return {"job_id": job.job_id}, None

    def index_status(self, params: dict):
        p = Params(params, ("job_id",))
        job_id = p.string("job_id", required=False, max_chars=64)
        try:
            jobs = self.jobs.status(job_id)
        except KeyError:
            raise ProtocolError(NOT_FOUND, f"no indexing job {job_id!r}") from None
        return {"jobs": jobs, "clips": len(self._current().reader)}, None

    def index_remove(self, params: dict):
        p = Params(params, ("clip_ids", "path_prefix"))
        clip_ids = p.strings("clip_ids", max_items=self.limits.max_clip_ids, max_chars=64, required=False)
        prefix = p.string("path_prefix", required=False, max_chars=self.limits.max_path_chars, path=True)
        if (clip_ids is None) == (prefix is None):
            raise ProtocolError(BAD_REQUEST, "give exactly one of 'clip_ids' or 'path_prefix'")
        if prefix is not None and ("\x00" in prefix or not self.roots.holds(prefix)):
            raise self._forbidden(prefix, "remove from")
        try:
            with IndexWriter(self.index_dir, self.spec, create=False, lock_timeout=2.0) as writer:
                # only clips whose file lies inside the roots: the operator's own `mofind index` runs elsewhere
                # are not the clients' to remove
                wanted = set(clip_ids) if clip_ids is not None else None
                ids = [record.clip_id for record in writer.reader.clips()
                       if (record.clip_id in wanted if wanted is not None else record.source.startswith(prefix))
                       and self.roots.holds_source(record.source)]
                refused = sorted((wanted or set()) - set(ids))
                refused = [clip_id for clip_id in refused if clip_id in writer.reader]
                if refused:
                    raise self._forbidden(writer.reader.clip(refused[0]).source, "remove from")
                removed = writer.remove(ids)
        except IndexLockedError as exc:
            raise ProtocolError(BUSY, f"{exc} (an indexing job may be running: cancel it or retry later)") from None
        return {"removed": removed}, None

    def cancel(self, params: dict):
        p = Params(params, ("job_id",))
        job_id = p.string("job_id", max_chars=64)
        try:
            return {"cancelled": self.jobs.cancel(job_id)}, None
        except KeyError:
            raise ProtocolError(NOT_FOUND, f"no indexing job {job_id!r}") from None

