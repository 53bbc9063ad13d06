"""Background indexing jobs: one thread runs them in order while the workers keep answering searches.

A job is a `build_index` run whose progress callback updates the job record; `cancel` sets an event the
build checks between files and encode batches (finished clips are committed, so a cancelled job can be
resumed by adding the same paths again).

Bounded: at most `max_queued` jobs wait or run (`JobQueueFull` beyond, answered BUSY), the last
KEEP_FINISHED finished jobs are remembered, and a job lists at most `max_failures_listed` failures.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

QUEUED, RUNNING, DONE, FAILED, CANCELLED = "queued", "running", "done", "failed", "cancelled"
FINISHED = (DONE, FAILED, CANCELLED)
KEEP_FINISHED = 50  # finished jobs remembered for index_status


class JobQueueFull(RuntimeError):
    """Too many indexing jobs are waiting already."""


@dataclass
class Job:
    job_id: str
    paths: list[str]
    recursive: bool
    state: str = QUEUED
    done: int = 0
    total: int = 0
    indexed: int = 0
    pending: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    error: str | None = None
    created: float = field(default_factory=time.time)
    finished: float | None = None
    cancel_event: threading.Event = field(default_factory=threading.Event)

    def to_dict(self, max_failures: int = 100) -> dict:
        # The protocol has four states; a job waiting for the one before it is "running" with "queued": true.
        state = RUNNING if self.state == QUEUED else self.state
        return {"job_id": self.job_id, "state": state, "queued": self.state == QUEUED, "done": self.done,
                "total": self.total, "indexed": self.indexed, "pending": self.pending, "skipped": self.skipped,
                "failed": [{"path": p, "error": e[:1000]} for p, e in self.failed[:max_failures]],
                "failed_count": len(self.failed), "error": self.error,
                "paths": [p[:4096] for p in self.paths[:20]], "created": self.created, "finished": self.finished}


class JobManager:
    """Owns the indexing thread; thread-safe `submit`, `status`, `cancel`, `shutdown`."""

    def __init__(self, index_dir: Path, encoder, *, workers: int = 1, commit_every: int = 64, max_queued: int = 8,
                 max_failures_listed: int = 100, limits=None, roots=None):
        from mofind.io.limits import DEFAULT_LIMITS

        self.index_dir = Path(index_dir)
        self.encoder = encoder
        self.workers = workers
        self.commit_every = commit_every
        self.max_queued = max_queued
        self.max_failures_listed = max_failures_listed
        self.limits = limits or DEFAULT_LIMITS
        self.roots = roots
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._queue: queue.Queue[Job | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="mofind-jobs", daemon=True)
        self._thread.start()

    def submit(self, paths: list[str], recursive: bool = True) -> Job:
        job = Job(job_id=uuid.uuid4().hex[:12], paths=list(paths), recursive=recursive)
        with self._lock:
            waiting = sum(1 for j in self._jobs.values() if j.state not in FINISHED)
            if waiting >= self.max_queued:
                raise JobQueueFull(f"{waiting} indexing jobs are waiting or running (at most {self.max_queued}); "
                                   "retry when one has finished, or cancel one")
            self._jobs[job.job_id] = job
            self._forget_old()
        self._queue.put(job)
        return job

    def status(self, job_id: str | None = None) -> list[dict]:
        with self._lock:
            if job_id is not None:
                job = self._jobs.get(job_id)
                if job is None:
                    raise KeyError(f"no job {job_id!r}")
                return [job.to_dict(self.max_failures_listed)]
            return [job.to_dict(self.max_failures_listed) for job in self._jobs.values()]

    def cancel(self, job_id: str) -> bool:
        """Ask a job to stop; True if it was queued or running."""
        with self._lock:
            job = self._jobs.get(job_id)
            if job is None:
                raise KeyError(f"no job {job_id!r}")
            if job.state in FINISHED:
                return False
            job.cancel_event.set()
            if job.state == QUEUED:
                job.state, job.finished = CANCELLED, time.time()
            return True

    @property
    def busy(self) -> bool:
        with self._lock:
            return any(job.state == RUNNING for job in self._jobs.values())

    def cancel_all(self) -> None:
        """Ask every queued or running job to stop (returns at once)."""
        with self._lock:
            for job in self._jobs.values():
                if job.state not in FINISHED:
                    job.cancel_event.set()

    def shutdown(self, timeout: float = 30.0) -> None:
        """Cancel everything and wait for the running job to commit what it finished."""
        self.cancel_all()
        self._queue.put(None)
        self._thread.join(timeout)

    # -- the job thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        while True:
            job = self._queue.get()
            if job is None:
                return
            with self._lock:
                if job.state != QUEUED:  # cancelled while queued
                    continue
                job.state = RUNNING
            self._execute(job)

    def _execute(self, job: Job) -> None:
        from mofind.index.build import IndexWriteError, build_index

        def progress(report) -> None:
            with self._lock:
                job.total, job.done = report.files, report.done
                job.indexed, job.pending, job.skipped = report.indexed, report.pending, report.skipped
                job.failed = list(report.failed)

        try:
            report = build_index(job.paths, self.index_dir, self.encoder, workers=self.workers,
                                 recursive=job.recursive, commit_every=self.commit_every, on_progress=progress,
                                 cancel=job.cancel_event, lock_timeout=10.0, limits=self.limits, roots=self.roots)
            progress(report)
            state = CANCELLED if report.cancelled else DONE
            error = None
        except IndexWriteError as exc:  # disk full: `indexed` keeps what was committed, nothing more
            log.error("indexing job %s stopped: %s", job.job_id, exc)
            progress(exc.report)
            state, error = FAILED, f"{exc}; the {exc.report.indexed} clips committed before it are kept"
        except Exception as exc:  # noqa: BLE001 - a failed job is reported through index_status, not raised
            log.exception("indexing job %s failed", job.job_id)
            state, error = FAILED, str(exc)
        with self._lock:
            job.state, job.error, job.finished = state, error, time.time()

    def _forget_old(self) -> None:
        finished = sorted((j for j in self._jobs.values() if j.state in FINISHED), key=lambda j: j.created)
        for job in finished[:max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job.job_id]
