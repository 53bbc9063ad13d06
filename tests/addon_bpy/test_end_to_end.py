"""End to end: a real `mofind serve` with an index built by `mofind index` from synthetic BVH takes,
driven by the add-on's operators inside bpy (search → apply onto an armature built here, preview,
explain, similar, bulk index), then the same with the backend stopped.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from addon_bpy import rigs
from addon_bpy.backend_process import BACKEND_PYTHON, ServedBackend, build_index, write_library
from addon_bpy.conftest import ADDON_MODULE

pytestmark = [pytest.mark.slow, pytest.mark.bpy]

PROMPT = "a person raises the left hand"
LEFT_ARM_ACTIONS = ("wave_left", "raise_left", "raise_both")


@pytest.fixture(scope="module")
def backend(tmp_path_factory):
    if not BACKEND_PYTHON.is_file():
        pytest.skip(f"no backend Python at {BACKEND_PYTHON} (make venv, or set MOFIND_BACKEND_PYTHON)")
    root = tmp_path_factory.mktemp("e2e")
    library = root / "library"
    takes = write_library(library, kinds=("bandai",), seconds=3.0)
    takes += write_library(library, kinds=("zup",), actions=("walk",), seconds=8.0)  # longer than a window
    report = build_index(library, root / "index")
    assert report["indexed"] == len(takes) and not report["failed"]
    served = ServedBackend(root / "index", root)
    yield SimpleNamespace(served=served, address=served.address, root=root, library=library, takes=takes)
    served.stop()


@pytest.fixture
def connected(bpy, prefs, backend):
    prefs.address = backend.address
    prefs.timeout, prefs.retries = 60.0, 1  # first requests warm the model on a busy 2-core machine
    return backend


@pytest.fixture
def session(bpy):
    return bpy.context.window_manager.mofind


def fcurves_of(action):
    """F-curves of an action on Blender 4.2 (flat) and 4.4+/5.x (layered: layers → strips → channelbags)."""
    if getattr(action, "layers", None):
        return [curve for layer in action.layers for strip in layer.strips
                for bag in strip.channelbags for curve in bag.fcurves]
    return list(action.fcurves)


def keyed_bones(action) -> dict[str, int]:
    """Bone name -> number of keys on its rotation_quaternion W curve."""
    found = {}
    for curve in fcurves_of(action):
        if curve.data_path.endswith("rotation_quaternion") and curve.array_index == 0:
            found[curve.data_path.split('"')[1]] = len(curve.keyframe_points)
    return found


def addon_module(name: str):
    return sys.modules[f"{ADDON_MODULE}.{name}"]


def set_fps(bpy, fps: int):
    """The scene is already empty (autouse factory_scene); only its frame rate changes."""
    scene = bpy.context.scene
    scene.render.fps, scene.render.fps_base = fps, 1.0
    return scene


def search(bpy, prompt=PROMPT, k=5):
    assert bpy.ops.mofind.search(prompt=prompt, k=k, wait=True) == {"FINISHED"}


def test_test_connection_reports_the_served_index(bpy, connected, session, backend):
    assert bpy.ops.mofind.ping(wait=True) == {"FINISHED"}
    assert session.status_level == "OK" and backend.address in session.status
    assert session.index_clips == len(backend.takes)


def test_search_carries_the_backends_match_quality_into_the_panel_state(bpy, connected, session):
    """The real backend's verdict (mofind.quality) reaches what the results panel draws."""
    search(bpy, prompt="xyzzy plugh frobnicate", k=3)
    assert len(session.results) == 3 and session.no_good_match
    assert session.unknown_words == "xyzzy, plugh, frobnicate"
    assert session.quality_message.startswith("No good match in this library: the model has not learned")
    assert all(0.0 <= item.confidence < 0.5 for item in session.results)
    search(bpy, k=3)
    assert session.unknown_words == "" and 0.0 <= session.results[0].confidence <= 1.0


def test_search_then_apply_keys_every_mapped_bone(bpy, connected, session, backend, service):
    bpy.context.scene.mofind.skeleton = "bandai"  # the 30 fps takes only
    names = {path.stem for path in backend.takes if path.stem.startswith("bandai")}
    search(bpy, k=len(names))  # every bandai take comes back: ranking quality is the shipped-model tests' job
    assert len(session.results) == len(names) and session.results_query == PROMPT
    assert {item.name for item in session.results} <= names
    scores = [item.score for item in session.results]
    assert scores == sorted(scores, reverse=True)
    for item in session.results:
        assert item.end_frame > item.start_frame >= 0 and item.fps == 30.0 and item.duration > 0
        assert item.skeleton == "bandai"
        # the backend's 256x64 filmstrip PNG was loaded as a preview (icon ids stay 0 without a UI)
        assert service.thumbnails.image_size(item.thumbnail) == (256, 64)
        assert Path(item.source).parent == backend.library

    scene = set_fps(bpy, 30)
    rig = rigs.build_mixamo_rig()
    # apply a take that certainly moves the left arm, wherever the model ranked it
    index = next(i for i, item in enumerate(session.results) if item.name.endswith(LEFT_ARM_ACTIONS))
    first = session.results[index]
    assert bpy.ops.mofind.apply_clip(index=index, wait=True) == {"FINISHED"}

    action = rig.animation_data.action
    assert action is not None and action.name == first.name
    assert action["mofind"]["clip_id"] == first.clip_id
    mapping = addon_module("retarget.mapping").detect_bone_map([bone.name for bone in rig.data.bones])
    frames = first.end_frame - first.start_frame  # 30 fps source onto a 30 fps scene: one key per frame
    keyed = keyed_bones(action)
    assert set(mapping.smpl_to_bone.values()) <= set(keyed) and len(mapping.smpl_to_bone) >= 20
    assert set(keyed.values()) <= {1, frames}  # bones that never move keep a single key
    assert keyed[mapping.smpl_to_bone["left_shoulder"]] == frames
    assert (int(action.frame_range[0]), int(action.frame_range[1])) == (1, frames)

    arm = rig.pose.bones[mapping.smpl_to_bone["left_shoulder"]]
    scene.frame_set(1)
    start = arm.matrix.to_quaternion()
    scene.frame_set(frames)
    assert start.rotation_difference(arm.matrix.to_quaternion()).angle > 0.05, "the arm moves over the clip"
    assert session.status_level == "OK" and "Applied" in session.status


def test_apply_is_a_single_undo_step(bpy, connected, session):
    set_fps(bpy, 30)
    search(bpy)
    rig_name = rigs.build_mixamo_rig().name
    bpy.ops.ed.undo_push(message="rig built")
    actions_before = set(bpy.data.actions.keys())
    assert bpy.ops.mofind.apply_clip(index=0, wait=True) == {"FINISHED"}
    assert bpy.data.objects[rig_name].animation_data.action is not None
    bpy.ops.ed.undo()
    rig = bpy.data.objects[rig_name]  # undo reloads data: fetch it again
    assert rig.animation_data is None or rig.animation_data.action is None
    assert set(bpy.data.actions.keys()) == actions_before
    bpy.ops.ed.redo()
    assert bpy.data.objects[rig_name].animation_data.action.name == session.results[0].name


def test_apply_options_from_a_script_override_the_panel(bpy, connected, session):
    set_fps(bpy, 24)
    search(bpy)
    rig = rigs.build_mixamo_rig()
    bpy.context.scene.mofind.start_frame = 1
    assert bpy.ops.mofind.apply_clip(index=1, start_frame=101, push_to_nla=True, wait=True) == {"FINISHED"}
    item = session.results[1]
    assert rig.animation_data.action is None  # pushed to the NLA instead
    strips = [strip for track in rig.animation_data.nla_tracks for strip in track.strips]
    assert len(strips) == 1 and strips[0].action.name == item.name
    assert int(strips[0].frame_start) == 101
    resampled = (item.end_frame - item.start_frame - 1) * 24 / item.fps + 1  # match_fps from the panel
    assert abs(max(keyed_bones(strips[0].action).values()) - resampled) <= 1


def test_whole_take_applies_the_file_not_just_the_matching_window(bpy, connected, session):
    set_fps(bpy, 30)
    search(bpy, prompt="someone walks", k=20)
    index = [item.name for item in session.results].index("zup_walk")
    item = session.results[index]
    take_frames = round(item.duration * item.fps)
    assert 0 < item.end_frame - item.start_frame < take_frames  # the result is one window of the take
    rig = rigs.build_mixamo_rig()
    assert bpy.ops.mofind.apply_clip(index=index, wait=True) == {"FINISHED"}
    window_keys = max(keyed_bones(rig.animation_data.action).values())
    assert bpy.ops.mofind.apply_clip(index=index, whole_take=True, wait=True) == {"FINISHED"}
    whole_keys = max(keyed_bones(rig.animation_data.action).values())
    assert abs(window_keys - ((item.end_frame - item.start_frame - 1) * 30 / item.fps + 1)) <= 1
    assert abs(whole_keys - ((take_frames - 1) * 30 / item.fps + 1)) <= 1


def test_preview_reverts_on_cancel_and_keeps_on_confirm(bpy, connected, session):
    scene = set_fps(bpy, 30)
    search(bpy)
    rig = rigs.build_mixamo_rig()
    bone = rig.pose.bones["mixamorig:LeftArm"]
    bone.rotation_mode = "XYZ"
    bone.rotation_euler = (0.3, 0.0, 0.0)
    idle = bpy.data.actions.new("Idle")
    rig.animation_data_create().action = idle
    scene.frame_start, scene.frame_end, scene.frame_current = 5, 50, 7
    actions_before = set(bpy.data.actions.keys())

    assert bpy.ops.mofind.preview(index=0, wait=True) == {"FINISHED"}
    assert session.preview_active and session.preview_armature == rig.name
    assert rig.animation_data.action.name.startswith("MoFind preview")
    assert bone.rotation_mode == "QUATERNION"

    assert bpy.ops.mofind.preview_end(keep=False) == {"FINISHED"}
    assert not session.preview_active
    assert rig.animation_data.action == idle
    assert set(bpy.data.actions.keys()) == actions_before, "the preview action is gone"
    assert bone.rotation_mode == "XYZ" and tuple(bone.rotation_euler) == pytest.approx((0.3, 0.0, 0.0))
    assert (scene.frame_start, scene.frame_end, scene.frame_current) == (5, 50, 7)

    assert bpy.ops.mofind.preview(index=0, wait=True) == {"FINISHED"}
    assert bpy.ops.mofind.preview_end(keep=True) == {"FINISHED"}
    assert rig.animation_data.action.name == session.results[0].name
    assert bpy.ops.mofind.preview_end() == {"CANCELLED"}  # nothing left to end


def test_why_this_clip_lists_words_with_parts_and_times(bpy, connected, session):
    search(bpy)
    assert bpy.ops.mofind.explain(index=0, wait=True) == {"FINISHED"}
    first = session.results[0]
    assert session.explained_clip == first.clip_id
    words = [token.word for token in session.explanation]
    assert words and all(word.lower().strip("#") in PROMPT for word in words)
    for token in session.explanation:
        assert token.part and 0.0 <= token.t_start < token.t_end <= first.duration + 1e-3
        assert -1.0 <= token.similarity <= 1.0


def test_why_this_clip_explains_the_shorter_prompt_a_relaxed_search_answered(bpy, connected, session):
    """A reply whose quality says the backend left words out of a flagged prompt (`quality.relaxed`): "Why this
    clip?" then asks the real backend about the words that found the results, not the ones it dropped."""
    search(bpy)
    relaxed = "a person raises the hand"
    addon_module("core.search")._store_quality(session, {"no_good_match": True, "message": "left out 'left'",
                                                  "relaxed": {"query": relaxed, "left_out": ["left"]}})
    assert session.results_relaxed == relaxed
    assert bpy.ops.mofind.explain(index=0, wait=True) == {"FINISHED"}
    words = [token.word.lower().strip("#") for token in session.explanation]
    assert words and "left" not in words and all(word in relaxed for word in words)
    addon_module("core.search")._store_quality(session, {"no_good_match": False, "relaxed": None})
    assert session.results_relaxed == ""
    left_out = addon_module("core.search")._left_out  # what the status line says the results leave out
    assert left_out({"relaxed": {"query": "a man waves", "left_out": ["old", "slowly"]}}) == "'old' and 'slowly'"
    assert left_out({"relaxed": None}) == left_out(None) == left_out({"relaxed": {"left_out": "old"}}) == ""


def test_find_similar_lists_other_takes(bpy, connected, session):
    search(bpy)
    example = session.results[0].clip_id
    example_name = session.results[0].name
    assert bpy.ops.mofind.similar(index=0, k=4, wait=True) == {"FINISHED"}
    assert len(session.results) == 4 and example not in {item.clip_id for item in session.results}
    assert session.results_heading == f"similar to {example_name}" and session.results_query == ""


def test_bulk_index_adds_a_folder_with_progress(bpy, connected, session, backend):
    more = backend.root / "more"
    new_takes = write_library(more, kinds=("cmu",), actions=("walk", "wave_left"), seconds=2.0)
    assert bpy.ops.mofind.index_folder(folder=str(more), wait=True) == {"FINISHED"}
    assert session.job_state == "DONE" and session.job_failed == 0
    assert (session.job_done, session.job_total) == (2, 2)
    assert session.index_clips == len(backend.takes) + len(new_takes)
    bpy.context.scene.mofind.path_prefix = str(more)
    search(bpy, prompt="someone walks forward", k=10)
    assert {item.name for item in session.results} == {path.stem for path in new_takes}


def test_cancelling_bulk_indexing_ends_the_job(bpy, connected, session, backend):
    folder = backend.root / "to_cancel"
    takes = write_library(folder, kinds=("bandai", "cmu", "zup"), seconds=2.0)
    assert bpy.ops.mofind.index_folder(folder=str(folder)) == {"FINISHED"}  # returns at once
    assert session.job_state == "RUNNING"
    service = sys.modules[f"{ADDON_MODULE}.service"].get()
    service.run_until(lambda: bool(session.job_id))  # index_add answered with the job id
    assert bpy.ops.mofind.index_cancel(wait=True) == {"FINISHED"}
    assert session.job_state in {"CANCELLED", "DONE"}  # DONE only if it finished before the cancel arrived
    if session.job_state == "CANCELLED":
        assert session.job_done < len(takes) and session.job_message.startswith("Indexing cancelled")
    assert bpy.ops.mofind.index_cancel(wait=True) == {"CANCELLED"}  # nothing left to cancel


def test_backend_error_reply_is_a_clear_message(bpy, connected, session):
    set_fps(bpy, 30)
    search(bpy)
    rig = rigs.build_mixamo_rig()
    session.results[0].clip_id = "0123456789abcdef"  # not in the index
    assert bpy.ops.mofind.apply_clip(index=0, wait=True) == {"CANCELLED"}
    assert session.status_level == "ERROR" and "0123456789abcdef" in session.status
    assert rig.animation_data is None or rig.animation_data.action is None


def test_applying_to_a_non_armature_is_refused_before_any_request(bpy, connected, session):
    set_fps(bpy, 30)
    search(bpy)
    mesh = bpy.data.objects.new("Plane", bpy.data.meshes.new("Plane"))
    bpy.context.scene.collection.objects.link(mesh)
    bpy.context.view_layer.objects.active = mesh
    assert bpy.ops.mofind.apply_clip(index=0, wait=True) == {"CANCELLED"}
    assert "not an armature" in session.status
    assert bpy.ops.mofind.apply_clip(index=99, wait=True) == {"CANCELLED"}
    assert "no result #99" in session.status


def test_stopped_backend_gives_a_clear_message_and_no_exception(bpy, connected, prefs, session, backend):
    set_fps(bpy, 30)
    search(bpy)
    rig = rigs.build_mixamo_rig()
    backend.served.stop()
    started = time.monotonic()  # default timeout (5 s) and retries (2): the refused connection decides
    assert bpy.ops.mofind.search(prompt="a person jumps", wait=True) == {"CANCELLED"}
    assert time.monotonic() - started < 2.0
    assert session.status_level == "ERROR" and "backend is not running" in session.status
    assert not session.search_pending
    assert session.results_stale and len(session.results) > 0  # kept, but shown as older results
    assert bpy.ops.mofind.apply_clip(index=0, wait=True) == {"CANCELLED"}
    assert "not running" in session.status
    assert rig.animation_data is None or rig.animation_data.action is None
    assert bpy.ops.mofind.ping(wait=True) == {"CANCELLED"}
