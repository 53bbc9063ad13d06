"""Blender properties: `Scene.mofind` and `Object.mofind` (saved with the .blend), `WindowManager.mofind`
(this session only).

The scene keeps what the user typed and chose (prompt, k, filters, apply options, the folder to
index); the window manager keeps what the backend sent back (results, explanations, job
progress, the status line), which is meaningless in another session and never saved. An armature
keeps its edited bone map (Object.mofind), so the map travels with the rig.
"""

import bpy
from bpy.props import (
    BoolProperty, CollectionProperty, EnumProperty, FloatProperty, IntProperty, IntVectorProperty, PointerProperty,
    StringProperty,
)

from .retarget.body_check import SCOPE_ITEMS

STATUS_LEVELS = [
    ("INFO", "Info", ""), ("OK", "OK", ""), ("BUSY", "Busy", ""), ("WARNING", "Warning", ""), ("ERROR", "Error", ""),
]
JOB_STATES = [
    ("NONE", "None", "No indexing job yet"), ("RUNNING", "Running", ""), ("DONE", "Done", ""),
    ("FAILED", "Failed", ""), ("CANCELLED", "Cancelled", ""),
]


class MOFIND_PG_result(bpy.types.PropertyGroup):
    """One search hit as the backend described it (`name` is the take's file stem)."""

    clip_id: StringProperty()
    source: StringProperty(description="Motion file the clip comes from")
    score: FloatProperty(description="MaxSim score: higher matches the prompt better")
    duration: FloatProperty(description="Seconds")
    start_frame: IntProperty(description="First source frame of the matching window")
    end_frame: IntProperty(description="Source frame after the last one")
    fps: FloatProperty()
    labels: StringProperty()
    skeleton: StringProperty(description="Source skeleton kind the backend recognised (bandai, cmu_bvh, ...)")
    thumbnail: StringProperty(description="Key of the clip's thumbnail in the preview cache ('': none)")
    icon_id: IntProperty(description="Thumbnail preview icon (0: none, or no UI)")
    short_name: StringProperty(description="Shortest path suffix that tells this take from the other results")
    confidence: FloatProperty(default=-1.0, description="How sure the backend is that this clip matches "
                              "(0-1; -1: the backend did not say)")
    matched: StringProperty(description="What matched: 'motion', 'name', 'label' (comma separated; '' = not said)")


class MOFIND_PG_token(bpy.types.PropertyGroup):
    """One word of the prompt and where in the clip it matched best ("Why this clip?")."""

    word: StringProperty()
    part: StringProperty(description="Body part whose patch matched this word best")
    t_start: FloatProperty(description="Seconds into the clip")
    t_end: FloatProperty()
    similarity: FloatProperty()


class MOFIND_PG_bone_pair(bpy.types.PropertyGroup):
    """One row of a rig's bone map: which bone plays this SMPL-22 joint ('' = none)."""

    joint: StringProperty(description="SMPL-22 joint of the motion")
    bone: StringProperty(name="Bone", description="Bone of this armature that receives the joint's rotation")


class MOFIND_PG_rig(bpy.types.PropertyGroup):
    """Per-armature settings saved with the rig (Object.mofind): its edited bone map."""

    bone_map: CollectionProperty(type=MOFIND_PG_bone_pair)
    active_pair: IntProperty()
    preset: StringProperty(description="Rig preset the map was detected from ('' = matched by bone names)")
    use_bone_map: BoolProperty(name="Use This Map", default=True,
                               description="Apply clips with this map (off: detect the map again at every apply)")


class MOFIND_PG_scene(bpy.types.PropertyGroup):
    prompt: StringProperty(name="Prompt", description="Describe the motion, e.g. 'a person waves with the left hand'")
    k: IntProperty(name="Results", default=10, min=1, max=200, description="How many clips to return")
    min_duration: FloatProperty(name="Min", default=0.0, min=0.0, unit="TIME_ABSOLUTE",
                                description="Skip clips shorter than this (0: no limit)")
    max_duration: FloatProperty(name="Max", default=0.0, min=0.0, unit="TIME_ABSOLUTE",
                                description="Skip clips longer than this (0: no limit)")
    path_prefix: StringProperty(name="Folder", subtype="DIR_PATH",
                                description="Only clips whose file lies under this folder")
    label: StringProperty(name="Label", description="Only clips carrying this label")
    skeleton: StringProperty(name="Skeleton", description="Only clips from this kind of skeleton, e.g. bandai, "
                             "cmu_bvh, mixamo, smpl, custom")
    in_place: BoolProperty(name="In Place", default=False, description="Drop the root's horizontal travel")
    match_fps: BoolProperty(name="Match FPS", default=True,
                            description="Resample the clip to the scene frame rate")
    push_to_nla: BoolProperty(name="Push to NLA", default=False,
                              description="Put the applied action on a new NLA strip")
    start_frame: IntProperty(name="Start Frame", default=1, description="Frame where the applied clip begins")
    whole_take: BoolProperty(name="Whole Take", default=False,
                             description="Apply the entire file, not only the window that matched the prompt")
    names_weight: FloatProperty(name="Name Weight", default=0.25, min=0.0, max=10.0, soft_max=1.0, step=5,
                                description="How much take names and labels count next to the motion itself: "
                                            "0 ranks by motion alone (sent only once you change it; the "
                                            "backend's default is 0.25)")
    body_scope: EnumProperty(name="Body", items=SCOPE_ITEMS, default="FULL",
                             description="Body part to animate (Full Body refuses a bone map with gaps)")
    plant_feet: BoolProperty(name="Plant Feet", default=True,
                             description="Keep feet still while they are planted in the take (leg IK)")
    set_frame_range: BoolProperty(name="Set Frame Range", default=True,
                                  description="Make the scene's frame range the applied action's")
    index_folder: StringProperty(name="Folder", subtype="DIR_PATH", description="Folder of motion files to index")
    index_recursive: BoolProperty(name="Recursive", default=True, description="Include sub-folders")


class MOFIND_PG_session(bpy.types.PropertyGroup):
    results: CollectionProperty(type=MOFIND_PG_result)
    active_result: IntProperty(name="Active Result", default=0)
    results_query: StringProperty(description="The prompt the results answer (empty for 'Find similar')")
    results_relaxed: StringProperty(description="The shorter prompt the results answer when no take showed the "
                                    "whole one and the backend left words out (empty otherwise)")
    results_heading: StringProperty(description="What the results are: \"for 'prompt'\" or 'similar to <clip>'")
    results_stale: BoolProperty(description="The last search failed: the list still shows an older search's results")
    results_page: IntProperty(name="Page", default=1, min=1, description="Which page of results the panel shows")
    no_good_match: BoolProperty(description="The backend found nothing that really matches the prompt")
    quality_message: StringProperty(description="The backend's own words on how well the results match")
    unknown_words: StringProperty(description="Words of the prompt the model does not know (comma separated)")
    offline_message: StringProperty(description="Which part of the library the last search could not reach")
    confidence_calibrated: BoolProperty(default=True, description="The confidences come from a calibrated model "
                                        "(false: the backend's uncalibrated estimate)")
    search_pending: BoolProperty()
    status: StringProperty()
    status_level: EnumProperty(items=STATUS_LEVELS, default="INFO")
    explanation: CollectionProperty(type=MOFIND_PG_token)
    explained_clip: StringProperty(description="Clip id the explanation is about")
    job_id: StringProperty()
    job_state: EnumProperty(items=JOB_STATES, default="NONE")
    job_done: IntProperty()
    job_total: IntProperty()
    job_failed: IntProperty()
    job_message: StringProperty()
    index_clips: IntProperty(description="Clips in the backend's index")
    preview_active: BoolProperty()
    preview_armature: StringProperty()
    preview_action: StringProperty()
    preview_previous_action: StringProperty()
    preview_previous_slot: StringProperty()
    preview_frames: IntVectorProperty(size=3)  # frame_start, frame_end, frame_current before the preview


CLASSES = (MOFIND_PG_result, MOFIND_PG_token, MOFIND_PG_bone_pair, MOFIND_PG_rig, MOFIND_PG_scene,
           MOFIND_PG_session)


def attach() -> None:
    """Hang the property groups on Scene, WindowManager and Object (after CLASSES are registered)."""
    bpy.types.Scene.mofind = PointerProperty(type=MOFIND_PG_scene)
    bpy.types.WindowManager.mofind = PointerProperty(type=MOFIND_PG_session)
    bpy.types.Object.mofind = PointerProperty(type=MOFIND_PG_rig)


def detach() -> None:
    del bpy.types.Object.mofind
    del bpy.types.WindowManager.mofind
    del bpy.types.Scene.mofind
