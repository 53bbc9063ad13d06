"""Bulk indexing: files -> (parallel parse) -> windows -> (batched encode) -> committed chunks.

Parsing, resampling and thumbnails run in a process pool (they are pure numpy and scale with cores);
encoding runs in this process, in batches, because the model is loaded once here. Every
`commit_every` clips the work so far is committed, so an interrupted run loses at most that much and
a rerun resumes: files whose size and mtime (or, failing that, content hash) match the indexed copy
are skipped. A file that cannot be read is reported with its reason and never stops the run.

Untrusted input stays bounded: each file is parsed under `MotionLimits`, cancel is checked between
encode batches and kills the parsing processes (a file being parsed is abandoned, not waited for), the
parsing processes die with their parent (`_die_with_parent`), and `indexed` counts committed clips
only, so a failed commit (disk full) never reports work that was not saved (`IndexWriteError`).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, BrokenExecutor, Executor, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mofind.io.files import file_sha256
from mofind.io.limits import DEFAULT_LIMITS, MotionLimits

from .discover import discover
from .labels import labels_from_name
from .library_text import forget_folder_listings, take_texts
from .manifest import IndexSpec
from .store import ClipRecord, IndexWriter, WindowEmbedding, clip_id_for
from .windows import cut_windows

DEFAULT_COMMIT_EVERY = 256
FORMATS = {".bvh": "bvh", ".fbx": "fbx", ".glb": "gltf", ".gltf": "gltf"}
ENCODE_BATCH_WINDOWS = 128
CANCEL_CHECK_WINDOWS = 16  # windows encoded between two looks at cancel (0.4 s on a loaded 2-core CPU; same
# throughput as larger slices: the encoder batches 32 at most anyway)


@dataclass
class BuildReport:
    """What a bulk indexing run did; `failed` lists (path, reason) for every file that was not indexed."""

    files: int = 0
    indexed: int = 0  # committed clips only
    pending: int = 0  # encoded and staged, not committed yet
    skipped: int = 0
    windows: int = 0
    seconds_of_motion: float = 0.0
    elapsed: float = 0.0
    failed: list[tuple[str, str]] = field(default_factory=list)
    cancelled: bool = False
    clips_in_index: int = 0
    moved: int = 0  # files found again by content hash at a new path (codes reused, nothing re-encoded)
    error: str | None = None  # why the run stopped early (e.g. the disk is full); committed work is kept

    @property
    def done(self) -> int:
        return self.indexed + self.pending + self.skipped + len(self.failed)

    def to_dict(self) -> dict:
        return {
            "files": self.files, "indexed": self.indexed, "skipped": self.skipped, "windows": self.windows,
            "failed": [{"path": p, "error": e} for p, e in self.failed], "cancelled": self.cancelled,
            "seconds_of_motion": round(self.seconds_of_motion, 3), "elapsed": round(self.elapsed, 3),
            "clips_in_index": self.clips_in_index, "moved": self.moved, "error": self.error,
            "ten_second_takes_per_second": round(self.seconds_of_motion / 10.0 / self.elapsed, 3)
            if self.elapsed > 0 else None,
        }


class IndexWriteError(OSError):
    """The index could not be written (disk full, read-only, ...); `report` holds what was committed."""

    def __init__(self, message: str, report: BuildReport):
        super().__init__(message)
        self.report = report


@dataclass
class _Task:
    path: str
    known_hash: str | None
    fps: float
    window: int
    stride: int
    limits: MotionLimits = DEFAULT_LIMITS
    root: str | None = None  # the folder the user asked to index (its sub-folders name the take too)


@dataclass
class _Prepared:
    record: ClipRecord
    windows: list  # list[windows.Window]
    joints: np.ndarray  # (T, 22, 3) float32 at the model fps
    thumbnail: bytes


@dataclass
class _Outcome:
    path: str
    prepared: list[_Prepared] = field(default_factory=list)  # one per take of the file
    skipped: bool = False
    error: str | None = None


def prepare_file(task: _Task) -> _Outcome:
    """Worker: hash, parse and window one file (runs in a pool process; never raises)."""
    try:
        return _prepare(task)
    except Exception as exc:  # noqa: BLE001 - one bad file must never stop the run; the reason is reported
        from mofind.io.errors import MotionIOError

        if isinstance(exc, MotionIOError):
            return _Outcome(task.path, error=str(exc))
        if isinstance(exc, OSError):
            return _Outcome(task.path, error=f"{task.path}: cannot read ({exc.strerror or exc})")
        return _Outcome(task.path, error=f"{task.path}: {type(exc).__name__}: {exc}")


def _prepare(task: _Task) -> _Outcome:
    from mofind.io import load_motions

    stat = os.stat(task.path)
    content_hash = file_sha256(task.path)
    if content_hash == task.known_hash:
        return _Outcome(task.path, skipped=True)
    prepared = [_prepare_take(task, motion, stat, content_hash) for motion in load_motions(task.path, fps=task.fps,
                                                                                        limits=task.limits)]
    return _Outcome(task.path, prepared=prepared)


def _prepare_take(task: _Task, motion, stat, content_hash: str) -> _Prepared:
    from mofind.io.errors import MotionFormatError

    from .thumbnail import filmstrip_png

    joints = np.asarray(motion.joints, dtype=np.float32)
    where = f"{task.path}" + (f" (take {motion.take!r})" if motion.take else "")
    if joints.ndim != 3 or joints.shape[1:] != (22, 3) or len(joints) == 0:
        raise MotionFormatError(f"no usable frames (joints shape {joints.shape})", where)
    if not np.isfinite(joints).all():
        raise MotionFormatError("joint positions overflow (values too large to animate)", where)
    source_fps = float(motion.source_fps or motion.fps)
    frame_range = tuple(int(v) for v in motion.frame_range) if motion.frame_range[1] > motion.frame_range[0] \
        else (0, int(round(len(joints) * source_fps / motion.fps)))
    mapping = motion.mapping or {}
    suffix = Path(task.path).suffix.lower()
    record = ClipRecord(
        clip_id=clip_id_for(task.path, motion.take), source=task.path, content_hash=content_hash, size=stat.st_size,
        mtime_ns=stat.st_mtime_ns, format=FORMATS.get(suffix, "humanml3d"),
        frame_range=frame_range, source_fps=source_fps, num_frames=len(joints),
        duration=(frame_range[1] - frame_range[0]) / source_fps,
        skeleton=str(mapping.get("preset") or ("smpl" if suffix == ".npy" else "custom")),
        labels=labels_from_name(task.path),
        joints=motion.skeleton.num_joints if motion.skeleton is not None else 22,
        take=motion.take,
        text=take_texts(task.path, task.root, motion.take),
    )
    windows = cut_windows(len(joints), task.window, task.stride, motion.fps, frame_range, source_fps)
    return _Prepared(record, windows, joints, filmstrip_png(joints))


class _InlineExecutor(Executor):
    """Runs tasks in this process (workers=0): simpler to debug and no process start-up cost."""

    def submit(self, fn, /, *args, **kwargs) -> Future:
        future: Future = Future()
        future.set_result(fn(*args, **kwargs))
        return future


def _executor(workers: int) -> Executor:
    if workers <= 0:
        return _InlineExecutor()
    import multiprocessing

    # spawn, not fork: the parent holds torch's thread pools, which a forked child can deadlock on.
    return ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=_die_with_parent, initargs=(os.getpid(),))


def _die_with_parent(parent_pid: int) -> None:
    """Pool initializer: a parsing process must not outlive its parent, however the parent dies (SIGKILL too).

    Linux: the kernel sends SIGKILL when the parent goes (PR_SET_PDEATHSIG). Elsewhere, and to close the
    race where the parent died before the prctl, a daemon thread watches the parent's pid.
    """
    import signal
    import sys

    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1 = PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="mofind-parent-watch", daemon=True).start()


def _abandon(executor: Executor) -> None:
    """Stop a pool now: cancel queued tasks and kill the processes (a hostile file may take minutes to parse).

    ProcessPoolExecutor has no public way to abort a running task, hence `_processes`; the processes only
    parse files (no shared state), so killing them loses nothing.
    """
    processes = list(getattr(executor, "_processes", {}).values())
    executor.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        process.kill()
    for process in processes:
        process.join(5)
    executor.shutdown(wait=True)


def default_workers() -> int:
    """Parsing processes: a quarter of the cores (at least one). Parsing a take costs a few ms, encoding its
    windows several times that, so most cores are better left to the encoder (see `encoder_threads`)."""
    return max(1, (os.cpu_count() or 2) // 4)


def encoder_threads(workers: int) -> int:
    """Torch threads that leave one core per parsing process: oversubscribed OpenMP threads stall each
    other (on 2 cores, 2 torch threads beside a parser ran at half the speed of 1)."""
    return max(1, (os.cpu_count() or 2) - max(workers, 0))


ProgressCallback = Callable[[BuildReport], None]


def build_index(paths, index_dir: str | Path, encoder, *, workers: int | None = None, recursive: bool = True,
                commit_every: int = DEFAULT_COMMIT_EVERY, stride_frames: int | None = None,
                progress: bool = False, on_progress: ProgressCallback | None = None,
                cancel: threading.Event | None = None, lock_timeout: float = 0.0,
                limits: MotionLimits = DEFAULT_LIMITS, roots=None, max_files: int | None = None,
                pipeline=None) -> BuildReport:
    """Index every motion file under `paths` into `index_dir` (created if needed); see the module docstring.

    `roots` (a `LibraryRoots`) keeps discovery inside the folders the operator allows (symlinks that lead
    out are reported, not followed); `max_files` caps what one run may discover. Raises `IndexWriteError`
    (with the report of what was committed) when the index cannot be written. `pipeline`: a `_Pipeline`
    subclass that parses and encodes elsewhere (mofind.index.cluster_build: on a Ray cluster); staging, commits
    and the report stay here, so the index is written the same way.
    """
    started = time.monotonic()
    report = BuildReport()
    forget_folder_listings()  # a long-lived process (a server parsing in-process) lists the folders again
    found = discover(paths, recursive=recursive, cancel=cancel, roots=roots, max_files=max_files)
    report.failed.extend(found.missing)
    report.files = len(found.files) + len(found.missing)
    report.cancelled = found.cancelled
    spec = IndexSpec.from_encoder(encoder, stride_frames)
    try:
        with IndexWriter(index_dir, spec, lock_timeout=lock_timeout) as writer:
            spec = writer.spec  # the index's own stride wins over the argument
            known = writer.known_sources()
            index_roots = sorted((Path(p).expanduser().resolve() for p in paths if Path(p).expanduser().is_dir()),
                                 key=lambda r: len(r.parts), reverse=True)
            vanished = _vanished_by_hash(known)
            tasks = []
            for path in found.files:
                record = known.get(str(path))
                if record is not None and _same_stat(path, record):
                    report.skipped += 1
                    continue
                if record is None and vanished and _relocated(writer, path, vanished, encoder,
                                                              _root_of(path, index_roots)):
                    report.moved += 1
                    continue
                tasks.append(_Task(str(path), record.content_hash if record else None, spec.fps,
                                   spec.window_frames, spec.stride_frames, limits, _root_of(path, index_roots)))
            bar = _progress_bar(report, progress)
            pipeline = (pipeline or _Pipeline)(writer, encoder, report, commit_every, bar, on_progress)
            try:
                if not report.cancelled:
                    pipeline.run(tasks, workers if workers is not None else default_workers(), cancel)
            except KeyboardInterrupt:
                pipeline.flush(commit=True)  # keep every clip that was fully encoded
                raise
            finally:
                if bar is not None:
                    bar.close()
            if not report.cancelled and writer.needs_compaction():
                writer.compact()
            report.clips_in_index = len(writer.reader)
    except OSError as exc:
        if isinstance(exc, IndexWriteError) or not _is_write_failure(exc):
            raise
        report.pending = 0  # staged clips were discarded with the writer: nothing uncommitted is reported
        report.error = f"cannot write the index {index_dir}: {exc.strerror or exc}"
        report.elapsed = time.monotonic() - started
        raise IndexWriteError(report.error, report) from exc
    report.elapsed = time.monotonic() - started
    return report


def _vanished_by_hash(known: dict[str, ClipRecord]) -> dict[tuple[int, str], ClipRecord]:
    """Indexed takes whose files are gone, by (size, content hash): candidates for a move within the library."""
    return {(r.size, r.content_hash): r for source, r in known.items() if not os.path.exists(source)}


def _relocated(writer: IndexWriter, path: Path, vanished: dict[tuple[int, str], ClipRecord], encoder,
               root: str | None) -> bool:
    """Re-link a new file to a vanished take with the same bytes (hashing only files of a matching size); its
    words are collected again for the new name (only the short texts are encoded, never the motion)."""
    try:
        stat = path.stat()
        if not any(size == stat.st_size for size, _ in vanished):
            return False
        record = vanished.pop((stat.st_size, file_sha256(path)), None)
    except OSError:
        return False
    if record is None:
        return False
    from .text_match import encode_vector, pooled_text_vectors

    takes = [r for r in writer.reader.clips() if r.source == record.source] if record.take else [record]
    for take in takes:  # every take of a moved FBX / glTF file moves with it
        text = take_texts(path, root, take.take)
        vectors = pooled_text_vectors(encoder, list(text.values())) if text else []
        writer.relocate(take.clip_id, path, stat.st_size, stat.st_mtime_ns, text=text,
                        text_vectors={source: encode_vector(v) for source, v in zip(text, vectors)})
    return True


def _is_write_failure(exc: OSError) -> bool:
    import errno

    return exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EIO, errno.EFBIG, errno.EACCES,
                         errno.EPERM)


def _root_of(path: Path, roots: list[Path]) -> str | None:
    """The deepest indexed folder holding `path` (None for a file given by itself)."""
    return next((str(root) for root in roots if root in path.parents), None)


def _same_stat(path: Path, record: ClipRecord) -> bool:
    try:
        stat = path.stat()
    except OSError:
        return False
    return stat.st_size == record.size and stat.st_mtime_ns == record.mtime_ns


def _progress_bar(report: BuildReport, enabled: bool):
    if not enabled:
        return None
    from tqdm import tqdm

    bar = tqdm(total=report.files, initial=report.skipped + len(report.failed), unit="clip", dynamic_ncols=True,
               desc="indexing", smoothing=0.1)
    return bar


class _Pipeline:
    """The parent side of a build: keeps the pool busy, batches encoding, commits periodically."""

    def __init__(self, writer: IndexWriter, encoder, report: BuildReport, commit_every: int, bar,
                 on_progress: ProgressCallback | None):
        self.writer = writer
        self.encoder = encoder
        self.report = report
        self.commit_every = max(1, commit_every)
        self.bar = bar
        self.on_progress = on_progress
        self.buffer: list[_Prepared] = []
        self.since_commit = 0
        self.indexed_ids: dict[str, list[str]] | None = None  # source -> clip ids committed before this run
        self.cancel: threading.Event | None = None
        self.staged: list[tuple[int, float]] = []  # (windows, seconds) of clips staged since the last commit

    def run(self, tasks: list[_Task], workers: int, cancel: threading.Event | None) -> None:
        self._notify(0)
        if not tasks:
            return
        self.cancel = cancel
        in_flight_limit = max(4, 4 * max(workers, 1))
        executor = _executor(workers)
        pending: dict[Future, _Task] = {}
        queue = iter(tasks)
        try:
            exhausted = False
            while True:
                if self._cancelled():
                    break
                while not exhausted and len(pending) < in_flight_limit:
                    task = next(queue, None)
                    if task is None:
                        exhausted = True
                        break
                    pending[executor.submit(prepare_file, task)] = task
                if not pending:
                    break
                done, _ = wait(list(pending), timeout=0.5, return_when=FIRST_COMPLETED)
                broken = False
                for future in done:
                    task = pending.pop(future)
                    try:
                        self._accept(future.result())
                    except BrokenExecutor as exc:  # a worker died (killed, out of memory): report, go on
                        self._accept(_Outcome(task.path, error=f"{task.path}: the parsing process died ({exc})"))
                        broken = True
                if broken:
                    executor.shutdown(wait=False, cancel_futures=True)
                    executor = _executor(workers)
                    for future, task in list(pending.items()):
                        del pending[future]
                        pending[executor.submit(prepare_file, task)] = task
        finally:
            if self.report.cancelled:
                _abandon(executor)
            else:
                executor.shutdown(wait=True, cancel_futures=True)
        self.flush(commit=True)

    def _cancelled(self) -> bool:
        if self.cancel is not None and self.cancel.is_set():
            self.report.cancelled = True
        return self.report.cancelled

    def _accept(self, outcome: _Outcome) -> None:
        if outcome.error is not None:
            self.report.failed.append((outcome.path, outcome.error))
            self._notify(1)
        elif outcome.skipped:
            self.report.skipped += 1
            self._notify(1)
        else:
            self._forget_vanished_takes(outcome)
            self.buffer.extend(outcome.prepared)
            if (sum(len(p.windows) for p in self.buffer) >= ENCODE_BATCH_WINDOWS
                    or len(self.buffer) + self.since_commit >= self.commit_every):
                self.flush(commit=False)

    def _forget_vanished_takes(self, outcome: _Outcome) -> None:
        """A re-indexed file that lost a take (an FBX stack deleted) must not keep that take's old clip."""
        if self.indexed_ids is None:
            self.indexed_ids = {}
            for record in self.writer.reader.clips():
                self.indexed_ids.setdefault(record.source, []).append(record.clip_id)
        kept = {prepared.record.clip_id for prepared in outcome.prepared}
        stale = [clip_id for clip_id in self.indexed_ids.get(outcome.path, []) if clip_id not in kept]
        if stale:
            self.writer.remove(stale)

    def flush(self, commit: bool) -> None:
        """Encode the buffered clips, stage them, and commit when due (or when asked)."""
        buffer, self.buffer = self.buffer, []
        if buffer:
            self._encode_texts(buffer)
            for prepared, encoded in self._encode(buffer):
                if encoded is None:  # cancelled while encoding: this clip is left for a rerun
                    continue
                if isinstance(encoded, str):
                    self.report.failed.append((prepared.record.source, encoded))
                    continue
                windows = [WindowEmbedding(w.start, w.source_start, w.source_end, patches, valid)
                           for w, (patches, valid) in zip(prepared.windows, encoded, strict=True)]
                try:
                    self.writer.add(prepared.record, windows, prepared.thumbnail)
                except ValueError as exc:  # e.g. the model marked every patch of a window invalid
                    self.report.failed.append((prepared.record.source, str(exc)))
                    continue
                self.report.pending += 1
                self.staged.append((len(windows), prepared.record.duration))
                self.since_commit += 1
            self._notify(len(buffer))
        if self.since_commit and (commit or self.since_commit >= self.commit_every):
            self.writer.commit()
            for windows, duration in self.staged:  # counted as indexed only once they are on disk
                self.report.indexed += 1
                self.report.windows += windows
                self.report.seconds_of_motion += duration
            self.report.pending -= len(self.staged)
            self.staged, self.since_commit = [], 0
            self._notify(0)

    def _encode_texts(self, buffer: list[_Prepared]) -> None:
        """Pooled sentence embeddings of the takes' names and labels, stored in their records (text_match.py)."""
        from .text_match import encode_vector, pooled_text_vectors

        items = [(p.record, source, text) for p in buffer for source, text in p.record.text.items()]
        if not items:
            return
        vectors = pooled_text_vectors(self.encoder, [text for _, _, text in items])
        for (record, source, _), vector in zip(items, vectors):
            record.text_vectors[source] = encode_vector(vector)

    def _encode(self, buffer: list[_Prepared]):
        """(prepared, per-window embeddings, an error message, or None once cancelled): slices of at most
        CANCEL_CHECK_WINDOWS windows, cancel checked between them; clip by clip if a slice fails."""
        motions = [p.joints[w.start:w.end] for p in buffer for w in p.windows]
        flat: list = []
        try:
            for start in range(0, len(motions), CANCEL_CHECK_WINDOWS):
                if self._cancelled():
                    break
                flat.extend(self.encoder.encode_motions(motions[start:start + CANCEL_CHECK_WINDOWS]))
        except Exception:  # noqa: BLE001 - isolate the clip that breaks the batch, report it, keep the rest
            for prepared in buffer:
                if self._cancelled():
                    yield prepared, None
                    continue
                try:
                    yield prepared, self.encoder.encode_motions([prepared.joints[w.start:w.end]
                                                                 for w in prepared.windows])
                except Exception as exc:  # noqa: BLE001
                    yield prepared, f"{prepared.record.source}: the model could not encode it ({exc})"
            return
        position = 0
        for prepared in buffer:
            encoded = flat[position:position + len(prepared.windows)]
            yield prepared, encoded if len(encoded) == len(prepared.windows) else None
            position += len(prepared.windows)

    def _notify(self, advanced: int) -> None:
        if self.bar is not None and advanced:
            self.bar.update(advanced)
            if self.report.failed:
                self.bar.set_postfix(failed=len(self.report.failed), refresh=False)
        if self.on_progress is not None:
            self.on_progress(self.report)
