"""Search and "Find similar": send the request, then fill `WindowManager.mofind.results` with the hits."""

from __future__ import annotations

from pathlib import PurePosixPath

import bpy

from ..wire import Failure, Reply, WireError, frame_bytes
from .status import session, set_status


def filters_from_scene(options) -> dict:
    """The protocol's `filters` from Scene.mofind; unset fields (0 or empty) are left out."""
    filters = {}
    if options.min_duration > 0:
        filters["min_duration"] = float(options.min_duration)
    if options.max_duration > 0:
        filters["max_duration"] = float(options.max_duration)
    if options.path_prefix.strip():
        filters["path_prefix"] = bpy.path.abspath(options.path_prefix.strip())
    if options.label.strip():
        filters["label"] = options.label.strip()
    if options.skeleton.strip():
        filters["skeleton"] = options.skeleton.strip()
    return filters


def search(service, query: str, k: int, filters: dict, *, wait: bool = False):
    """Ask for the `k` best clips for `query`; the results replace the current list when they arrive."""
    query = query.strip()
    if not query:
        raise ValueError("Type a prompt first, e.g. 'a person raises the left hand, then waves'.")
    return _ranked_request(service, "search", {"query": query, "k": int(k), "filters": filters},
                           query=query, heading=f"for '{query}'", busy=f"Searching for '{query}'…", wait=wait)


def similar(service, clip_id: str, name: str, start_frame: int, k: int, filters: dict, *, wait: bool = False):
    """Ask for clips that move like the window of `clip_id` at `start_frame`; the results replace the list."""
    params = {"clip_id": clip_id, "start_frame": int(start_frame), "k": int(k), "filters": filters}
    return _ranked_request(service, "similar", params,
                           query="", heading=f"similar to {name}", busy=f"Finding clips similar to {name}…", wait=wait)


def _ranked_request(service, method: str, params: dict, *, query: str, heading: str, busy: str, wait: bool):
    state = session()
    state.search_pending = True
    set_status("BUSY", busy)
    return service.call(method, params, wait=wait,
                        on_reply=lambda reply: _store_results(service, reply, query, heading),
                        on_error=_search_failed)


def _store_results(service, reply: Reply, query: str, heading: str) -> int:
    state = session()
    state.search_pending = False
    hits = reply.result.get("results")
    if not isinstance(hits, list):
        raise WireError("the reply has no 'results' list")
    state.results.clear()
    state.explanation.clear()
    state.explained_clip = ""
    for hit in hits:
        item = state.results.add()
        item.clip_id = str(hit["clip_id"])
        item.source = str(hit.get("source") or "")
        item.name = display_name(item.source, item.clip_id)
        item.score = float(hit.get("score", 0.0))
        item.duration = float(hit.get("duration", 0.0))
        item.start_frame = int(hit.get("start_frame", 0))
        item.end_frame = int(hit.get("end_frame", 0))
        item.fps = float(hit.get("fps", 0.0))
        item.labels = ", ".join(str(label) for label in hit.get("labels") or [])
        item.skeleton = str(hit.get("skeleton") or "")
        item.thumbnail = service.thumbnails.add(frame_bytes(hit.get("thumbnail"), reply.frames) or b"")
        item.icon_id = service.thumbnails.icon_id(item.thumbnail)
    state.active_result = 0
    state.results_query = query
    state.results_heading = heading
    set_status("OK" if hits else "INFO", f"{len(hits)} clips {heading}" if hits else f"No clips found {heading}")
    return len(hits)


def _search_failed(failure: Failure) -> None:
    session().search_pending = False
    set_status("ERROR", failure.message)


def display_name(source: str, clip_id: str) -> str:
    """The take's file name without folder or suffix (any OS's separators), else the clip id."""
    return PurePosixPath(source.replace("\\", "/")).stem if source else clip_id
