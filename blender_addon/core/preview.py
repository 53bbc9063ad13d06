"""Preview: apply a clip temporarily and put the rig back exactly as it was on cancel.

The snapshot (previous action and slot, pose, frame range) is Python data on the running
service, not on bpy types: it only means something while this preview lasts.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import bpy

from .motion import ApplyOptions, ClipRef, apply_payload, fetch_motion, find_armature, push_undo
from .status import session, set_status

PREVIEW_PREFIX = "MoFind preview: "


@dataclass
class PreviewSnapshot:
    armature: str
    clip: ClipRef
    action: str = ""
    previous_action: str = ""
    previous_slot: str = ""
    frames: tuple[int, int, int] = (1, 250, 1)
    pose: dict[str, tuple] = field(default_factory=dict)


def begin(service, clip: ClipRef, armature_name: str, options: ApplyOptions, *, wait: bool = False):
    """Fetch the clip and play it on the armature; a preview already running is reverted first."""
    if service.preview is not None:
        end(service, keep=False)
    find_armature(armature_name)
    set_status("BUSY", f"Fetching {clip.name} for preview…")

    def on_motion(payload: dict):
        snapshot = _snapshot(find_armature(armature_name), clip)
        temporary = replace(options, push_to_nla=False)
        action = apply_payload(armature_name, payload, temporary, PREVIEW_PREFIX + clip.name)
        snapshot.action = action.name
        service.preview = snapshot
        scene = bpy.context.scene
        first, last = (int(round(v)) for v in action.frame_range)
        scene.frame_start, scene.frame_end = first, max(last, first + 1)
        scene.frame_set(first)
        state = session()
        state.preview_active, state.preview_armature = True, armature_name
        set_status("OK", f"Previewing {clip.name} on {armature_name}: Keep or Revert")
        return action

    return fetch_motion(service, clip, options, on_motion, wait=wait)


def end(service, *, keep: bool) -> str:
    """Keep the previewed action (one undo step) or restore the rig; returns what happened."""
    snapshot: PreviewSnapshot | None = service.preview
    service.preview = None
    state = session()
    state.preview_active, state.preview_armature = False, ""
    if snapshot is None:
        return "No preview is running."
    armature = bpy.data.objects.get(snapshot.armature)
    action = bpy.data.actions.get(snapshot.action)
    if keep:
        if action is not None:
            action.name = snapshot.clip.name
        push_undo(f"MoFind: Apply {snapshot.clip.name}")
        message = f"Kept {snapshot.clip.name} on {snapshot.armature}"
    else:
        if armature is not None:
            _restore(armature, snapshot)
        if action is not None and action.users == 0:
            bpy.data.actions.remove(action)
        message = f"Reverted {snapshot.armature}"
    set_status("OK", message)
    return message


def _snapshot(armature, clip: ClipRef) -> PreviewSnapshot:
    scene = bpy.context.scene
    anim = armature.animation_data
    previous = anim.action if anim is not None else None
    slot = getattr(anim, "action_slot", None) if anim is not None else None  # Blender 4.4+ slots
    pose = {bone.name: (bone.rotation_mode, tuple(bone.location), tuple(bone.rotation_quaternion),
                        tuple(bone.rotation_euler), tuple(bone.rotation_axis_angle), tuple(bone.scale))
            for bone in armature.pose.bones}
    return PreviewSnapshot(
        armature=armature.name, clip=clip, previous_action=previous.name if previous else "",
        previous_slot=slot.identifier if slot is not None else "",
        frames=(scene.frame_start, scene.frame_end, scene.frame_current), pose=pose)


def _restore(armature, snapshot: PreviewSnapshot) -> None:
    anim = armature.animation_data
    if anim is not None:
        _drop_preview_strips(anim, snapshot.action)
        previous = bpy.data.actions.get(snapshot.previous_action) if snapshot.previous_action else None
        anim.action = previous
        if previous is not None and snapshot.previous_slot and hasattr(anim, "action_slot"):
            slot = previous.slots.get(snapshot.previous_slot)
            if slot is not None:
                anim.action_slot = slot
    for bone in armature.pose.bones:
        saved = snapshot.pose.get(bone.name)
        if saved is None:
            continue
        mode, location, quaternion, euler, axis_angle, scale = saved
        bone.rotation_mode = mode
        bone.location, bone.rotation_quaternion, bone.rotation_euler = location, quaternion, euler
        bone.rotation_axis_angle, bone.scale = axis_angle, scale
    scene = bpy.context.scene
    scene.frame_start, scene.frame_end = snapshot.frames[0], snapshot.frames[1]
    scene.frame_set(snapshot.frames[2])


def _drop_preview_strips(anim, action_name: str) -> None:
    """Remove NLA strips that use the preview action (only if the retargeter made any)."""
    for track in list(anim.nla_tracks):
        for strip in list(track.strips):
            if strip.action is not None and strip.action.name == action_name:
                track.strips.remove(strip)
