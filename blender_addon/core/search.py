"""Search and "Find similar": send the request, then fill `WindowManager.mofind.results` with the hits."""

from __future__ import annotations

from pathlib import PurePosixPath

import bpy

from ..wire import Failure, Reply, WireError, frame_bytes
from .names import short_names
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


def search(service, query: str, k: int, filters: dict, *, names_weight: float | None = None, wait: bool = False):
    """Ask for the `k` best clips for `query`; the results replace the current list when they arrive.

    `names_weight` (how much take names and labels count) is sent only when given: a backend that
    predates it rejects unknown fields, and its own default is the right one until the user asks.
    """
    query = query.strip()
    if not query:
        raise ValueError("Type a prompt first, e.g. 'a person raises the left hand, then waves'.")
    params = {"query": query, "k": int(k), "filters": filters}
    if names_weight is not None:
        params["names_weight"] = float(names_weight)
    return _ranked_request(service, "search", params,
                           query=query, heading=f"for '{query}'", busy=f"Searching for '{query}'…", wait=wait)


def names_weight_from_scene(options) -> float | None:
    """The Name Weight the user chose, or None while it is untouched (the backend decides)."""
    return float(options.names_weight) if options.is_property_set("names_weight") else None


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
        item.confidence = _fraction(hit.get("confidence"))
        item.matched = ", ".join(str(source) for source in hit.get("matched") or [] if source)
        item.thumbnail = service.thumbnails.add(frame_bytes(hit.get("thumbnail"), reply.frames) or b"")
        item.icon_id = service.thumbnails.icon_id(item.thumbnail)
    for item, name in zip(state.results, short_names([item.source for item in state.results],
                                                     [item.clip_id for item in state.results])):
        item.short_name = name
    state.active_result = 0
    state.results_page = 1
    state.results_query = query
    state.results_heading = heading
    state.results_stale = False
    quality = _store_quality(state, reply.result.get("quality"))
    state.offline_message = offline_message(reply.meta.get("offline"))
    if not hits:
        set_status("INFO", quality or f"No clips found {heading}")
    elif state.no_good_match:  # the results panel shows the backend's own words in full
        left_out = _left_out(reply.result.get("quality"))
        note = f" without {left_out}: none shows the whole prompt" if left_out else ", none a good match"
        set_status("WARNING", f"{len(hits)} clips {heading}{note}")
    else:
        set_status("OK", f"{len(hits)} clips {heading}")
    return len(hits)


def offline_message(offline) -> str:
    """The backend's word that part of the library was not searched (damaged chunks, a lost cluster shard)."""
    if not isinstance(offline, dict):
        return ""
    clips = offline.get("clips")
    what = f"{clips} clips" if isinstance(clips, int) and not isinstance(clips, bool) else "Part of the library"
    message = f"{what} were not searched: part of the index is offline."
    fix = offline.get("fix")
    return message + (f" Fix: {fix}" if isinstance(fix, str) and fix else "")


def _store_quality(state, quality) -> str:
    """The backend's verdict on the whole result list (absent from older backends: nothing shown)."""
    quality = quality if isinstance(quality, dict) else {}
    state.no_good_match = bool(quality.get("no_good_match", False))
    state.confidence_calibrated = quality.get("calibrated") is not False
    state.quality_message = str(quality.get("message") or "")
    words = quality.get("unknown_words")
    state.unknown_words = ", ".join(str(word) for word in words) if isinstance(words, list) else ""
    relaxed_query = _relaxed(quality).get("query")
    state.results_relaxed = relaxed_query if isinstance(relaxed_query, str) else ""  # what "Why this clip?" explains
    return state.quality_message


def _relaxed(quality) -> dict:
    """`quality.relaxed` of a reply (the backend left words out of the prompt), or {} (none, or an older backend)."""
    relaxed = quality.get("relaxed") if isinstance(quality, dict) else None
    return relaxed if isinstance(relaxed, dict) else {}


def _left_out(quality) -> str:
    """The words a relaxed search left out of the prompt (`quality.relaxed.left_out`), quoted; "" when none."""
    words = _relaxed(quality).get("left_out")
    if not isinstance(words, list):
        return ""
    return " and ".join(f"'{word}'" for word in words if isinstance(word, str))


def _fraction(value) -> float:
    """A 0-1 number from the reply, or -1 when it is missing or not a number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return -1.0
    return min(max(float(value), 0.0), 1.0)


def _search_failed(failure: Failure) -> None:
    state = session()
    state.search_pending = False
    state.results_stale = len(state.results) > 0  # keep them (nothing is lost) but never pass them off as fresh
    set_status("ERROR", failure.message)


def display_name(source: str, clip_id: str) -> str:
    """The take's file name without folder or suffix (any OS's separators), else the clip id."""
    return PurePosixPath(source.replace("\\", "/")).stem if source else clip_id
