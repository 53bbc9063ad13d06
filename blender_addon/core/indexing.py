"""Bulk indexing: start a backend job for a folder, follow its progress, cancel it.

The backend indexes in the background (`index_add` answers with a job id at once); progress
comes from `index_status` requests scheduled on the service's poll loop every POLL_S.
"""

from __future__ import annotations

from pathlib import Path

import bpy

from ..wire import Reply
from .status import session, set_status

POLL_S = 1.0
_STATES = {"running": "RUNNING", "done": "DONE", "failed": "FAILED", "cancelled": "CANCELLED"}


def start(service, folder: str, recursive: bool, *, wait: bool = False):
    """Index every motion file under `folder`; with `wait`, return only when the job has ended."""
    path = Path(bpy.path.abspath(folder)).expanduser() if folder else None
    if path is None or not path.is_dir():
        raise ValueError(f"'{folder}' is not a folder: choose the folder of motion files to index."
                         if folder else "Choose a folder of motion files to index.")
    state = session()
    if state.job_state == "RUNNING":
        raise ValueError("An indexing job is already running: cancel it or wait for it to finish.")
    state.job_id, state.job_state, state.job_done, state.job_total, state.job_failed = "", "RUNNING", 0, 0, 0
    state.job_message = f"Indexing {path}…"
    set_status("BUSY", state.job_message)

    def started(reply: Reply) -> str:
        session().job_id = str(reply.result["job_id"])
        service.later(POLL_S / 4, lambda: poll_status(service))
        return session().job_id

    ticket = service.call("index_add", {"paths": [str(path)], "recursive": bool(recursive)},
                          on_reply=started, on_error=lambda failure: _job_ended("FAILED", failure.message))
    if wait:
        service.wait(ticket)
        service.run_until(lambda: session().job_state != "RUNNING")
    return ticket


def poll_status(service) -> None:
    """Ask for the job's progress; reschedules itself while the job runs."""
    job_id = session().job_id
    if not job_id or session().job_state != "RUNNING":
        return
    service.call("index_status", {"job_id": job_id},
                 on_reply=lambda reply: _progress(service, reply, job_id),
                 on_error=lambda failure: _job_ended("FAILED", f"Lost track of the indexing job: {failure.message}"))


def cancel(service, *, wait: bool = False):
    """Ask the backend to stop the job after its current file; progress polling sees it end."""
    state = session()
    if state.job_state != "RUNNING" or not state.job_id:
        raise ValueError("No indexing job is running.")
    state.job_message = "Cancelling: finishing the current file…"
    set_status("BUSY", state.job_message)
    ticket = service.call("cancel", {"job_id": state.job_id}, wait=wait,
                          on_error=lambda failure: set_status("ERROR", failure.message))
    if wait:
        service.run_until(lambda: session().job_state != "RUNNING")
    return ticket


def _progress(service, reply: Reply, job_id: str) -> None:
    state = session()
    if state.job_id != job_id:
        return  # a newer job replaced this one
    jobs = [job for job in reply.result.get("jobs", []) if str(job.get("job_id")) == job_id]
    state.index_clips = int(reply.result.get("clips", state.index_clips))
    if not jobs:
        _job_ended("FAILED", f"The backend no longer knows indexing job {job_id}.")
        return
    job = jobs[0]
    state.job_done, state.job_total = int(job.get("done", 0)), int(job.get("total", 0))
    failed = job.get("failed") or []
    failed_count = int(job.get("failed_count", len(failed)))  # `failed` lists the first 100 only
    state.job_failed = failed_count
    status = _STATES.get(str(job.get("state")), "FAILED")
    if status == "RUNNING":
        state.job_message = ("Queued behind another indexing job" if job.get("queued") else
                             f"Indexing: {state.job_done} of {state.job_total} files")
        set_status("BUSY", state.job_message)
        service.later(POLL_S, lambda: poll_status(service))
        return
    summary = f"{state.job_done} of {state.job_total} files indexed, {state.index_clips} clips in the index"
    if job.get("error"):
        summary = f"{job['error']} ({summary})"
    if failed:
        first = failed[0]
        summary += f"; {failed_count} failed (first: {first.get('path')}: {first.get('error')})"
    _job_ended(status, {"DONE": "Indexing done: ", "CANCELLED": "Indexing cancelled: "}.get(status, "Indexing failed: ")
               + summary)


def _job_ended(job_state: str, message: str) -> None:
    state = session()
    state.job_state = job_state
    state.job_message = message
    set_status("OK" if job_state == "DONE" and not state.job_failed else
               "WARNING" if job_state in {"DONE", "CANCELLED"} else "ERROR", message)
