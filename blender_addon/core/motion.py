"""Fetch a clip's motion (`get_motion`) and apply it to an armature through the retarget package."""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import bpy

from ..dependencies import numpy_available, numpy_message
from ..tickets import Ticket, failure_from_exception
from ..wire import Reply, WireError, resolve_arrays
from .status import set_status

MOTION_CACHE_SIZE = 4
_REQUIRED = ("skeleton", "fps", "rotations", "root_translation")


@dataclass(frozen=True)
class ClipRef:
    """A result captured when the operator ran, so a reply still finds it after the list changed."""

    clip_id: str
    name: str
    start_frame: int
    end_frame: int

    @classmethod
    def from_result(cls, item) -> "ClipRef":
        return cls(item.clip_id, item.name, int(item.start_frame), int(item.end_frame))

    def whole_take(self) -> "ClipRef":
        """The same take from its first to its last frame (-1: let the backend use the file's range)."""
        return ClipRef(self.clip_id, self.name, -1, -1)

    def motion_params(self) -> dict:
        params = {"clip_id": self.clip_id}
        if self.start_frame >= 0 and self.end_frame > self.start_frame:
            params.update(start_frame=self.start_frame, end_frame=self.end_frame)
        return params


@dataclass(frozen=True)
class ApplyOptions:
    in_place: bool = False
    start_frame: int = 1
    match_fps: bool = True
    push_to_nla: bool = False
    whole_take: bool = False
    body_scope: str = "FULL"
    plant_feet: bool = True
    set_frame_range: bool = True

    @classmethod
    def from_scene(cls, options) -> "ApplyOptions":
        return cls(bool(options.in_place), int(options.start_frame), bool(options.match_fps),
                   bool(options.push_to_nla), bool(options.whole_take), str(options.body_scope),
                   bool(options.plant_feet), bool(options.set_frame_range))


class MotionCache:
    """The last few decoded motions, so Preview then Apply fetches once."""

    def __init__(self, size: int = MOTION_CACHE_SIZE):
        self.size = size
        self._items: OrderedDict[ClipRef, dict] = OrderedDict()

    def get(self, clip: ClipRef) -> dict | None:
        if clip in self._items:
            self._items.move_to_end(clip)
        return self._items.get(clip)

    def put(self, clip: ClipRef, payload: dict) -> None:
        self._items[clip] = payload
        self._items.move_to_end(clip)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


def decode_motion(reply: Reply) -> dict:
    """The get_motion result with its binary frames turned into numpy arrays (the retarget input)."""
    missing = [key for key in _REQUIRED if key not in reply.result]
    if missing:
        raise WireError(f"the motion reply lacks {', '.join(missing)}")
    return resolve_arrays(reply.result, reply.frames)


def fetch_motion(service, clip: ClipRef, options: ApplyOptions, on_motion, *, wait: bool = False):
    """Get the clip's motion (its whole take with `options.whole_take`; from the cache when possible) and
    call `on_motion(payload)` with it. Any failure, now or when the reply comes, goes to the status line.

    Returns the Ticket; its `value` is whatever `on_motion` returned.
    """
    if not numpy_available():  # motions arrive as arrays and retargeting is numpy maths: say so before the download
        raise ValueError(numpy_message())
    if options.whole_take:
        clip = clip.whole_take()
    ticket = _fetch(service, clip, on_motion, wait)
    if ticket.done and ticket.failure is not None:
        set_status("ERROR", ticket.failure.message)
    return ticket


def _fetch(service, clip: ClipRef, on_motion, wait: bool):
    cached = service.motion_cache.get(clip)
    if cached is not None:
        ticket = Ticket("get_motion", done=True)
        try:
            ticket.value = on_motion(cached)
        except Exception as exc:  # same contract as Service.call: a failure with a clear message
            ticket.failure = failure_from_exception("get_motion", exc)
        return ticket

    def received(reply: Reply):
        payload = decode_motion(reply)
        service.motion_cache.put(clip, payload)
        return on_motion(payload)

    return service.call("get_motion", clip.motion_params(), on_reply=received, wait=wait,
                        on_error=lambda failure: set_status("ERROR", failure.message))


def find_armature(name: str):
    """The armature object called `name`, or a clear error."""
    obj = bpy.data.objects.get(name) if name else None
    if obj is None:
        raise ValueError(f"There is no object '{name}' to apply the clip to: select an armature." if name
                         else "Select an armature to apply the clip to.")
    if obj.type != "ARMATURE":
        raise ValueError(f"'{name}' is a {obj.type.lower()}, not an armature.")
    return obj


def apply_payload(armature_name: str, payload: dict, options: ApplyOptions, action_name: str):
    """Retarget `payload` onto the armature and key it; returns the new Action."""
    from ..retarget.apply import apply_clip  # engineer F's package: the only place that writes keys
    from .bone_map import saved_map

    armature = find_armature(armature_name)
    return apply_clip(bpy.context, armature, payload, saved_map(armature), in_place=options.in_place,
                      start_frame=options.start_frame, match_fps=options.match_fps,
                      push_to_nla=options.push_to_nla, name=action_name, scope=options.body_scope,
                      plant_feet=options.plant_feet, set_frame_range=options.set_frame_range)


def apply_clip(service, clip: ClipRef, armature_name: str, options: ApplyOptions, *, wait: bool = False):
    """Fetch and apply a clip as one undo step; the Ticket's value is the new Action."""
    find_armature(armature_name)  # fail now, not after the download
    set_status("BUSY", f"Fetching {clip.name}…")

    def on_motion(payload: dict):
        action = apply_payload(armature_name, payload, options, clip.name)
        push_undo(f"MoFind: Apply {clip.name}")
        set_status("OK", f"Applied {clip.name} to {armature_name} as action '{action.name}'")
        return action

    return fetch_motion(service, clip, options, on_motion, wait=wait)


def push_undo(message: str) -> None:
    """One undo step for work done outside an operator's execute (replies arrive from a timer)."""
    if bpy.ops.ed.undo_push.poll():
        bpy.ops.ed.undo_push(message=message)
        return
    windows = bpy.context.window_manager.windows
    if windows:
        with bpy.context.temp_override(window=windows[0]):
            if bpy.ops.ed.undo_push.poll():
                bpy.ops.ed.undo_push(message=message)
