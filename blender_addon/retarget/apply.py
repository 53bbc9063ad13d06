"""Put a retargeted take on an armature as one new Action (the only retarget module that uses bpy).

Rest matrices come from `bone.matrix_local`, the numpy core does the rest, and keys go in with
`keyframe_points.foreach_set` (one call per F-curve, no per-key Python). Blender 4.4+ stores
animation in layered actions (slot -> layer -> keyframe strip -> channelbag -> F-curves; the flat
`action.fcurves` is gone in 5.0), 4.2/4.3 in `action.fcurves`; `_new_channels` hides the difference.
Undo is the calling operator's business: apply_clip makes all its changes in one go.
"""

from __future__ import annotations

from pathlib import PurePath

import bpy
import numpy as np

from . import quat
from .body_check import restrict_to_scope
from .core import (
    RetargetError, RetargetOptions, SourceClip, TargetKeys, TargetRig, WorldPose, control_rotation, retarget,
    retarget_world,
)
from .mapping import DRIVES, BoneMap, BoneMapError, Drive, detect_bone_map

__all__ = ["RetargetError", "apply_clip", "read_rig", "uses_layered_actions"]


def uses_layered_actions() -> bool:
    """Blender 4.4 introduced slotted, layered actions; 5.0 removed the flat F-curve list."""
    return bpy.app.version >= (4, 4, 0)


def apply_clip(context, armature, motion_payload, bone_map=None, *, in_place=False, start_frame=1,
               match_fps=True, push_to_nla=False, name=None, scope="FULL", plant_feet=True,
               set_frame_range=False) -> bpy.types.Action:
    """Retarget `motion_payload` (the get_motion result, arrays decoded) onto `armature` as a new Action.

    Args:
        context: a bpy context; its scene's frame rate is the output rate when `match_fps`.
        armature: the armature object to animate (the motion lands in its own space).
        motion_payload: dict with skeleton {names, parents, offsets}, fps, unit_scale, up_axis,
            rotations (T, J, 4) w,x,y,z, root_translation (T, 3), smpl_to_source and optionally
            joint_translations (T, J, 3), clip_id, source, start_frame, end_frame.
        bone_map: None (detect from bone names), a `BoneMap`, or the plain dict the UI edits.
        in_place: keep the hips over the rig's rest position instead of travelling (root motion off).
        start_frame: scene frame of the first key.
        match_fps: resample (slerp) to the scene frame rate; otherwise one source frame per scene frame.
        push_to_nla: put the action in a new NLA track at `start_frame` instead of making it active.
        name: action name (Blender adds .001 when taken); default from the clip's source and range.
        scope: body part to animate, a key of `body_check.SCOPES` ("FULL" refuses an incomplete map).
        plant_feet: pin planted feet with two-bone leg IK (see `feet.py`).
        set_frame_range: make the scene's frame range the action's.

    Returns the new Action. Raises RetargetError (a ValueError) with a readable message on bad input.
    """
    if armature is None or getattr(armature, "type", None) != "ARMATURE":
        kind = getattr(armature, "type", type(armature).__name__)
        raise RetargetError(f"apply needs an armature object, got {getattr(armature, 'name', armature)!r} ({kind})")
    source = SourceClip.from_payload(motion_payload)
    rig, preset = read_rig(armature, bone_map, scope)
    fps = None
    if match_fps:
        render = context.scene.render
        fps = render.fps / render.fps_base
    options = RetargetOptions(in_place=in_place, fps=fps, plant_feet=plant_feet)
    drive = DRIVES.get(preset or "")
    if drive is not None and drive.fits(rig.names):
        keys = _solve_controls(context, armature, drive, retarget_world(source, rig, options))
    else:
        keys = retarget(source, rig, options)

    action = bpy.data.actions.new(name or default_action_name(motion_payload))
    new_curve, slot = _new_channels(action, armature)
    _write_keys(new_curve, keys, float(start_frame))
    for bone_name, keyed in zip(keys.bone_names, keys.keyed):
        if keyed:
            armature.pose.bones[bone_name].rotation_mode = "QUATERNION"
    action["mofind"] = {
        "clip_id": str(motion_payload.get("clip_id") or ""),
        "source": str(motion_payload.get("source") or ""),
        "preset": preset or "",
        "scope": scope,
        "scale": keys.scale,
        "fps": keys.fps,
    }
    _assign(armature, action, slot, push_to_nla, int(round(start_frame)))
    if set_frame_range:
        scene = context.scene
        scene.frame_start = int(round(start_frame))
        scene.frame_end = int(round(start_frame)) + keys.num_frames - 1
    return action


def read_rig(armature, bone_map=None, scope="FULL") -> tuple[TargetRig, str | None]:
    """The armature as the core sees it (bone map checked for `scope`), plus the preset the map came from."""
    bones = armature.data.bones
    names = [bone.name for bone in bones]
    index = {n: i for i, n in enumerate(names)}
    parents = [index[bone.parent.name] if bone.parent else -1 for bone in bones]
    rest = np.array([np.array(bone.matrix_local, dtype=np.float64) for bone in bones]).reshape(len(names), 4, 4)
    try:
        if bone_map is None:
            resolved = detect_bone_map(names)
        elif isinstance(bone_map, BoneMap):
            resolved = bone_map
        else:
            resolved = BoneMap.from_dict(dict(bone_map))
        resolved.checked(names)
        resolved = restrict_to_scope(resolved, names, parents, scope, armature.name)
    except BoneMapError as error:
        message = str(error)
        raise RetargetError(message if message.startswith(f"{armature.name}:") else f"{armature.name}: {message}") \
            from None
    return TargetRig(tuple(names), np.array(parents), rest, resolved.smpl_to_bone), resolved.preset


def _solve_controls(context, armature, drive: Drive, pose: WorldPose) -> TargetKeys:
    """Keys for a control rig: per frame and level, the controls are turned until their deform
    bones (evaluated by Blender, constraints and all) take the wanted orientation, then the
    location control moves the hips to their target.

    Blender evaluates the rig, so this works whatever constraints sit between a control and its
    deform bone, as long as the deform bone turns rigidly with it (Rigify's FK chains do).
    """
    pose_bones = armature.pose.bones
    for bone, prop, value in drive.switches:
        if bone in pose_bones and prop in pose_bones[bone]:
            pose_bones[bone][prop] = value
    controls = list(dict.fromkeys(list(drive.controls) + [drive.location]))
    watched = list(dict.fromkeys(controls + [r for level in drive.levels for _, _, r in level]
                                 + list(pose.hip_joints)))
    rest = {name: _rot(armature.data.bones[name].matrix_local) for name in watched}
    deforms = {d for level in drive.levels for _, d, _ in level}
    rest.update({d: _rot(armature.data.bones[d].matrix_local) for d in deforms})
    animation = armature.animation_data
    held = (animation.action, animation.use_nla) if animation else None
    if animation:
        animation.action, animation.use_nla = None, False
    try:
        for name in controls:
            pose_bones[name].rotation_mode = "QUATERNION"
        _reset(pose_bones, controls)
        _evaluate(context, armature, watched)  # drivers read the switches set above during this update
        evaluated = _evaluate(context, armature, watched)
        # reference = control @ offset, measured with every control at rest
        offsets = {(c, r): control_rotation(_rot(evaluated[c]), _rot(evaluated[r]))
                   for level in drive.levels for c, _, r in level}
        frames = pose.num_frames
        rotations = np.zeros((frames, len(controls), 4))
        locations = np.zeros((frames, 3))
        column = {c: i for i, c in enumerate(controls)}
        settled = len(drive.levels) if drive.hips_settled_after is None else drive.hips_settled_after
        anchors = _plain_fk_anchors(armature, drive)
        for frame in range(frames):
            _reset(pose_bones, controls)
            location_parent = None
            solved = {}  # control -> its world orientation this frame
            for index, level in enumerate(drive.levels + ((),)):  # the empty last level only solves the travel
                if index == len(drive.levels) and (settled < index or pose.hip_target is None):
                    break  # the travel was solved already (or there is none): no last evaluation needed
                needs_rig = any(c not in anchors for c, d, _ in level if d in pose.rotations)
                if needs_rig or (index == settled and pose.hip_target is not None):
                    evaluated = _evaluate(context, armature, watched)
                if index == settled and pose.hip_target is not None:
                    # The hip joints no longer move with the levels left, so the travel is solved now.
                    if location_parent is None:
                        location_parent = _rot(evaluated[drive.location])
                    hips = np.mean([np.array(evaluated[b])[:3, 3] for b in pose.hip_joints], axis=0)
                    locations[frame] = location_parent.T @ (pose.hip_target[frame] - hips)
                for control, deform, reference in level:
                    if deform not in pose.rotations:
                        continue  # outside the scope: the control stays at rest
                    if control in anchors and anchors[control] in solved:
                        anchor = anchors[control]  # plain FK below a solved control: no evaluation needed
                        current = solved[anchor] @ rest[anchor].T @ rest[control]
                    else:
                        current = _rot(evaluated[control])
                    if control == drive.location:
                        location_parent = current
                    wanted_reference = pose.rotations[deform][frame] @ rest[deform].T @ rest[reference]
                    wanted = wanted_reference @ offsets[control, reference].T
                    basis = quat.matrix_to_quat(_orthonormal(current.T @ wanted))
                    pose_bones[control].rotation_quaternion = basis.tolist()
                    rotations[frame, column[control]] = basis
                    solved[control] = wanted
        untouched = ~np.any(rotations, axis=2)
        rotations[untouched, 0] = 1.0
        keyed = ~untouched.all(axis=0)  # controls of body parts outside the scope get no keys
        keyed[column[drive.location]] = True
    finally:
        _reset(pose_bones, controls)
        if animation:
            animation.action, animation.use_nla = held
    return TargetKeys(bone_names=tuple(controls), rotations=quat.make_continuous(rotations, axis=0),
                      keyed=keyed, root_bone=drive.location, root_location=locations,
                      fps=pose.fps, scale=pose.scale, pairs=pose.pairs)


def _plain_fk_anchors(armature, drive: Drive) -> dict[str, str]:
    """control -> the control of an earlier level it hangs below through plain parenting.

    Between them only bones without constraints (or with Copy Scale alone) that inherit rotation
    and are never posed by Apply: the control's orientation then follows from the anchor's without
    asking Blender (Rigify's shin, foot, toe, forearm and hand FK controls).
    """
    level_of = {c: i for i, level in enumerate(drive.levels) for c, _, _ in level}
    anchors = {}
    for control, level in level_of.items():
        bone = armature.pose.bones[control]
        if bone.constraints or not bone.bone.use_inherit_rotation:
            continue
        parent = bone.parent
        while parent is not None and parent.name not in level_of:
            if any(c.type != "COPY_SCALE" for c in parent.constraints) or not parent.bone.use_inherit_rotation:
                break
            if not np.allclose(np.array(parent.matrix_basis), np.eye(4)):
                break  # posed by the user: let Blender account for it
            parent = parent.parent
        else:
            if parent is not None and level_of[parent.name] < level:
                anchors[control] = parent.name
    return anchors


def _reset(pose_bones, names) -> None:
    for name in names:
        pose_bones[name].rotation_quaternion = (1.0, 0.0, 0.0, 0.0)
        pose_bones[name].location = (0.0, 0.0, 0.0)


def _evaluate(context, armature, names) -> dict:
    """Pose matrices (armature space) of the named bones as Blender evaluates them now."""
    context.view_layer.update()
    bones = armature.evaluated_get(context.evaluated_depsgraph_get()).pose.bones
    return {name: bones[name].matrix for name in names}


def _rot(matrix) -> np.ndarray:
    return _orthonormal(np.array(matrix, dtype=np.float64)[:3, :3])


def _orthonormal(matrix: np.ndarray) -> np.ndarray:
    u, _, vt = np.linalg.svd(matrix)
    return u @ vt


def default_action_name(payload) -> str:
    """'MoFind walk_01 120-240': the clip's file stem (or id) and its source frame range."""
    source = payload.get("source") or payload.get("clip_id") or "clip"
    label = PurePath(str(source)).stem or str(source)
    if "start_frame" in payload and "end_frame" in payload:
        return f"MoFind {label} {int(payload['start_frame'])}-{int(payload['end_frame'])}"
    return f"MoFind {label}"


def _new_channels(action, armature):
    """(new_curve(data_path, index, group) -> FCurve, slot or None) for a fresh action.

    Layered actions (4.4+): one slot for this object, one layer, one keyframe strip, and its
    channelbag. `fcurves.new` only takes a group name from 5.0 on, so groups are made and
    assigned by hand, the same way on 4.4, 4.5 and 5.x.
    """
    if uses_layered_actions():
        slot = action.slots.new(id_type="OBJECT", name=armature.name)
        strip = action.layers.new("MoFind").strips.new(type="KEYFRAME")
        bag = strip.channelbag(slot, ensure=True)
        groups = {}

        def new_curve(data_path, index, group):
            curve = bag.fcurves.new(data_path, index=index)
            if group not in groups:
                groups[group] = bag.groups.new(group)
            curve.group = groups[group]
            return curve

        return new_curve, slot

    action.id_root = "OBJECT"

    def new_flat_curve(data_path, index, group):
        return action.fcurves.new(data_path, index=index, action_group=group)

    return new_flat_curve, None


def _write_keys(new_curve, keys: TargetKeys, start_frame: float) -> None:
    frames = start_frame + np.arange(keys.num_frames, dtype=np.float64)
    channels = []
    for b in np.flatnonzero(keys.keyed):
        bone = keys.bone_names[b]
        channels += [(bone, "rotation_quaternion", i, keys.rotations[:, b, i]) for i in range(4)]
    channels += [(keys.root_bone, "location", i, keys.root_location[:, i]) for i in range(3)]
    linear = bpy.types.Keyframe.bl_rna.properties["interpolation"].enum_items["LINEAR"].value
    for bone, prop, index, values in channels:
        curve = new_curve(f'pose.bones["{bpy.utils.escape_identifier(bone)}"].{prop}', index, bone)
        # A channel that never changes (bones pinned to rest) needs one key, not one per frame.
        count = 1 if np.ptp(values) < 1e-9 else len(values)
        co = np.empty((count, 2), dtype=np.float32)
        co[:, 0] = frames[:count]
        co[:, 1] = values[:count]
        points = curve.keyframe_points
        points.add(count)
        points.foreach_set("co", co.ravel())
        points.foreach_set("interpolation", np.full(count, linear, dtype=np.int32))
        curve.update()


def _assign(armature, action, slot, push_to_nla: bool, start_frame: int) -> None:
    animation = armature.animation_data or armature.animation_data_create()
    if push_to_nla:
        track = animation.nla_tracks.new()
        track.name = action.name
        strip = track.strips.new(action.name, start_frame, action)
        if slot is not None:
            strip.action_slot = slot
        return
    animation.action = action
    if slot is not None:
        animation.action_slot = slot
