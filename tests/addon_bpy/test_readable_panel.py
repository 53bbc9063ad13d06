"""The panel at the sidebar's default width, fed by real replies over ZeroMQ: short unique names, wrapped
errors, the backend's quality verdict, per-result confidence and match sources (and their absence), stale
results after a failure, pose thumbnails cut from the strip, the Bone Map grouped with gaps first, and a
stopped backend reported in under 2 s.
"""

from __future__ import annotations

import struct
import sys
import time
import zlib

import pytest
import zmq

from addon_bpy import rigs
from addon_bpy.conftest import ADDON_MODULE
from addon_bpy.test_panels_draw import AsSelf, RecordingLayout, draw_everything, labels, operators, shown, texts
from addon_pure.zmq_server import ScriptedRouter, ok

pytestmark = pytest.mark.bpy

SOURCES = ["/mocap/studio_a/walk_001.bvh", "/mocap/studio_b/walk_001.bvh",
           "/mocap/studio_b/dataset-2_raise-up-left-hand_elderly_001.bvh"]


def strip_png(poses: int = 4, cell: int = 16) -> bytes:
    """A real PNG filmstrip (poses side by side), each pose a different grey, as the backend sends."""
    width = poses * cell
    rows = b"".join(b"\0" + b"".join(bytes([40 + 50 * (x // cell)] * 3) for x in range(width)) for _ in range(cell))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, cell, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


def hit(i: int, source: str, **extra) -> dict:
    return {"clip_id": f"{i:016x}", "source": source, "score": 0.8 - i / 10, "duration": 9.1, "start_frame": 129,
            "end_frame": 273, "fps": 30.0, "labels": ["walk"], "skeleton": "bandai", **extra}


@pytest.fixture
def session(bpy, addon):
    return bpy.context.window_manager.mofind


def search_against(bpy, prefs, result: dict, *frames: bytes) -> ScriptedRouter:
    """Run the real Search operator against a loopback ROUTER that answers with `result`."""
    with ScriptedRouter(lambda header, _frames, _server: [ok(header, result, *frames)]) as server:
        prefs.address = server.address
        assert bpy.ops.mofind.search(prompt="a person walks", wait=True) == {"FINISHED"}
    return server


def test_rows_show_short_unique_names_and_every_fact(bpy, prefs, session):
    search_against(bpy, prefs, {"results": [hit(i, source) for i, source in enumerate(SOURCES)]})
    assert [item.short_name for item in session.results] == [
        "studio_a/walk_001", "studio_b/walk_001", "dataset-2_raise-up-left-hand_elderly_001"]
    drawn = draw_everything(bpy, sys.modules[ADDON_MODULE])
    shown_texts = texts(drawn)
    assert "studio_a/walk_001" in shown_texts and "studio_b/walk_001" in shown_texts
    # the long name is split over lines, never cut with an ellipsis; put together it is whole
    assert "dataset-2_raise-up-left-hand_elderly_001" not in shown_texts
    assert any(text.startswith("dataset-2_") for text in shown_texts)
    assert not any("…" in text for text in shown_texts)
    for fact in ("score 0.80", "9.1 s", "frames 129–273"):
        assert shown(drawn, fact), fact
    assert "% sure" not in " ".join(shown_texts) and not shown(drawn, "Matched by")  # old backend: not said
    assert operators(drawn).count("mofind.select_result") >= len(SOURCES)


def test_part_of_the_library_offline_is_said(bpy, prefs, session):
    """Damaged chunks or a lost cluster shard: the backend says how much was not searched; so does the panel."""
    offline = {"chunks": ["chunk-000002.safetensors"], "clips": 37, "windows": 120, "reasons": ["checksum"],
               "fix": "mofind index --repair --index /lib/index"}
    reply = {"results": [hit(0, SOURCES[0])]}
    with ScriptedRouter(lambda header, _f, _s: [ok(header, reply, meta={"offline": offline})]) as server:
        prefs.address = server.address
        assert bpy.ops.mofind.search(prompt="a person walks", wait=True) == {"FINISHED"}
    joined = " ".join(texts(draw_everything(bpy, sys.modules[ADDON_MODULE])))
    assert "37 clips were not searched" in joined and "mofind index --repair" in joined
    search_against(bpy, prefs, {"results": [hit(0, SOURCES[0])]})  # everything online again: nothing said
    assert session.offline_message == ""
    assert "not searched" not in " ".join(texts(draw_everything(bpy, sys.modules[ADDON_MODULE])))


def test_select_result_tooltip_is_the_full_path(bpy, prefs, session):
    search_against(bpy, prefs, {"results": [hit(i, source) for i, source in enumerate(SOURCES)]})
    ops_module = sys.modules[f"{ADDON_MODULE}.operators.results"]
    properties = type("Properties", (), {"index": 1})()
    assert SOURCES[1] in ops_module.MOFIND_OT_select_result.description(bpy.context, properties)
    assert bpy.ops.mofind.select_result(index=2) == {"FINISHED"} and session.active_result == 2


def test_quality_banner_confidence_and_match_sources(bpy, prefs, session):
    quality = {"no_good_match": True, "unknown_words": ["florp"],
               "message": "Nothing in the library moves like 'florp'; these are the closest clips."}
    results = [hit(0, SOURCES[0], confidence=0.12, matched=["motion", "name"]), hit(1, SOURCES[1], confidence=0.05)]
    search_against(bpy, prefs, {"results": results, "quality": quality})
    assert session.no_good_match and session.unknown_words == "florp"
    assert session.status_level == "WARNING" and "none a good match" in session.status
    drawn = draw_everything(bpy, sys.modules[ADDON_MODULE])
    joined = " ".join(texts(drawn))
    assert "Nothing in the library moves like 'florp'" in joined
    assert "Words the model does not know" not in joined  # the backend's message names them already
    session.quality_message = "No good match in this library."
    assert "Words the model does not know: florp" in " ".join(texts(draw_everything(bpy, sys.modules[ADDON_MODULE])))
    assert shown(drawn, "12% sure") and shown(drawn, "5% sure")
    assert shown(drawn, "by motion, name") and shown(drawn, "Matched by motion, name")


def test_long_error_is_shown_in_full_on_lines_that_fit(bpy, addon, session):
    message = ("No reply from the MoFind backend at tcp://127.0.0.1:5555 to 'search' after 3 tries of 5 s. "
               "Is it running? Start it with `make run` (or `mofind serve`) and check the address.")
    session.status, session.status_level = message, "ERROR"
    drawn: list = []
    panel = addon.panels.main.MOFIND_PT_main
    panel.draw(AsSelf(panel, RecordingLayout(bpy, drawn)), bpy.context)
    text_module = sys.modules[f"{ADDON_MODULE}.ui.text"]
    measure, width = text_module.measurer(bpy.context), text_module.text_width(bpy.context)
    lines = [text for text in labels(drawn) if text and text in message]
    assert len(lines) > 2 and " ".join(lines) == message
    assert all(measure(line) <= width for line in lines)
    assert any(name == "box" for name, _, _ in drawn)


def test_failed_search_keeps_old_results_marked_as_older(bpy, prefs, session):
    search_against(bpy, prefs, {"results": [hit(0, SOURCES[0])]})
    assert not session.results_stale
    with ScriptedRouter(lambda header, _frames, _server: []) as server:  # answers nothing
        prefs.address, prefs.timeout, prefs.retries = server.address, 0.2, 0
        assert bpy.ops.mofind.search(prompt="a person jumps", wait=True) == {"CANCELLED"}
    assert session.results_stale and len(session.results) == 1
    drawn = draw_everything(bpy, sys.modules[ADDON_MODULE])
    assert shown(drawn, "Older results") and shown(drawn, "last search failed")


def test_strip_thumbnail_becomes_square_poses(bpy, prefs, session, service):
    png = strip_png()
    search_against(bpy, prefs, {"results": [hit(0, SOURCES[0], thumbnail={"$frame": 0})]}, png)
    key = session.results[0].thumbnail
    assert key and service.thumbnails.image_size(key) == (64, 16)
    poses = service.thumbnails._pose_names(key)
    assert len(poses) == 4
    collection = service.thumbnails._collection
    assert all(tuple(collection[name].image_size) == (16, 16) for name in poses)
    # each pose carries its own slice of the strip: the greys differ from left to right
    greys = [round(collection[name].image_pixels_float[0], 2) for name in poses]
    assert greys == sorted(greys) and len(set(greys)) == 4


def test_bone_map_lists_missing_joints_first_grouped_by_region(bpy, addon):
    rig = rigs.build_mixamo_rig()
    assert bpy.ops.mofind.detect_bones(armature=rig.name) == {"FINISHED"}
    for pair in rig.mofind.bone_map:
        if pair.joint in ("head", "left_wrist"):
            pair.bone = ""
    drawn = draw_everything(bpy, addon)
    label_texts = labels(drawn)
    first_region = label_texts.index("Torso and Head")
    assert "Left Wrist" in label_texts[:first_region] and "Head" in label_texts[:first_region]
    assert any("No bone for 2 joints" in text for text in label_texts[:first_region])
    for region in ("Torso and Head", "Left Arm", "Right Arm", "Left Leg", "Right Leg"):
        assert region in label_texts
    assert sum(1 for name, _, _ in drawn if name == "prop_search") == 22


def test_stopped_backend_is_reported_within_two_seconds(bpy, prefs, session):
    """A real socket to a port where nothing listens, with the default 5 s timeout and 2 retries."""
    probe = zmq.Context()
    sock = probe.socket(zmq.ROUTER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    sock.close(linger=0)
    probe.term()
    prefs.address = f"tcp://127.0.0.1:{port}"
    assert (prefs.timeout, prefs.retries) == (5.0, 2)
    started = time.monotonic()
    assert bpy.ops.mofind.search(prompt="a person jumps", wait=True) == {"CANCELLED"}
    assert time.monotonic() - started < 2.0
    assert session.status_level == "ERROR" and "backend is not running" in session.status
    assert prefs.address in session.status and "Backend address" in session.status


def test_every_apply_option_the_operator_takes_is_in_the_panel(bpy, addon, session):
    """Whatever options Apply gains (body scope, feet, frame range), the panel lays them out."""
    add = session.results.add()
    add.clip_id, add.name, add.source = "0" * 16, "walk", SOURCES[0]
    drawn: list = []
    for panel in (addon.panels.results.MOFIND_PT_results, addon.panels.results.MOFIND_PT_apply_options):
        panel.draw(AsSelf(panel, RecordingLayout(bpy, drawn)), bpy.context)
    shown_props = {args[1] for name, args, _ in drawn if name == "prop" and args[0] == bpy.context.scene.mofind}
    operator_options = set(bpy.ops.mofind.apply_clip.get_rna_type().properties.keys())
    expected = operator_options - {"rna_type", "index", "armature", "wait"}
    assert expected and expected <= shown_props, expected - shown_props


def test_results_turn_pages(bpy, prefs, session):
    sources = [f"/mocap/take_{i:02d}.bvh" for i in range(12)]
    search_against(bpy, prefs, {"results": [hit(i, source) for i, source in enumerate(sources)]})
    page_size = sys.modules[f"{ADDON_MODULE}.panels.results"].PAGE_SIZE
    drawn = draw_everything(bpy, sys.modules[ADDON_MODULE])
    assert "Page 1 of 3" in labels(drawn) and "take_00" in texts(drawn) and f"take_{page_size:02d}" not in texts(drawn)
    assert bpy.ops.mofind.results_page(step=1, page_size=page_size) == {"FINISHED"}
    drawn = draw_everything(bpy, sys.modules[ADDON_MODULE])
    assert "Page 2 of 3" in labels(drawn) and f"take_{page_size:02d}" in texts(drawn)
    for _ in range(5):
        bpy.ops.mofind.results_page(step=1, page_size=page_size)
    assert session.results_page == 3  # never past the last page


def test_uncalibrated_confidence_is_marked_as_an_estimate(bpy, prefs, session):
    quality = {"no_good_match": False, "unknown_words": [], "message": "Best match confidence 0.40 (uncalibrated).",
               "calibrated": False}
    search_against(bpy, prefs, {"results": [hit(0, SOURCES[0], confidence=0.4)], "quality": quality})
    drawn = draw_everything(bpy, sys.modules[ADDON_MODULE])
    assert shown(drawn, "~40% sure") and session.status_level == "OK"
