"""Enabling and disabling the add-on leaves nothing behind: classes, properties, timer, socket, threads."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from addon_bpy.conftest import ADDON_MODULE

OUR_TYPES = ("MOFIND_PT_main", "MOFIND_PT_results", "MOFIND_PT_bone_map", "MOFIND_OT_search",
             "MOFIND_OT_apply_clip", "MOFIND_OT_preview", "MOFIND_OT_index_folder")


def handler_counts(bpy) -> dict[str, int]:
    return {name: len(getattr(bpy.app.handlers, name)) for name in dir(bpy.app.handlers)
            if isinstance(getattr(bpy.app.handlers, name), list)}


def os_threads() -> int:
    return len(os.listdir("/proc/self/task"))


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def test_enable_registers_everything(bpy, addon, service):
    for name in OUR_TYPES:
        assert hasattr(bpy.types, name), name
    assert isinstance(bpy.context.scene.mofind.k, int)
    assert len(bpy.context.window_manager.mofind.results) == 0
    assert service.timer_registered
    assert service.client is not None and not service.client.closed
    assert service.client.address == "tcp://127.0.0.1:5555"
    assert addon.__package__ == ADDON_MODULE


def test_disable_removes_timer_socket_properties_and_classes(bpy, addon, service):
    before = handler_counts(bpy)
    client, thumbnails = service.client, service.thumbnails
    bpy.ops.preferences.addon_disable(module=ADDON_MODULE)
    assert not service.timer_registered
    assert client.closed and client.context.closed
    assert thumbnails.closed
    assert sys.modules[f"{ADDON_MODULE}.service"].active() is None
    assert not hasattr(bpy.types.Scene, "mofind") and not hasattr(bpy.types.WindowManager, "mofind")
    assert not hasattr(bpy.types.Object, "mofind")
    for name in OUR_TYPES:
        assert not hasattr(bpy.types, name), name
    assert handler_counts(bpy) == before


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc to count threads and fds")
def test_enable_disable_cycles_leak_no_threads_or_sockets(bpy, dev_repo):
    bpy.ops.preferences.addon_enable(module=ADDON_MODULE)
    bpy.ops.preferences.addon_disable(module=ADDON_MODULE)  # first cycle imports modules, opens caches
    threads, fds = os_threads(), open_fds()
    for _ in range(3):
        bpy.ops.preferences.addon_enable(module=ADDON_MODULE)
        running = sys.modules[f"{ADDON_MODULE}.service"].get()
        assert os_threads() > threads  # a live ZeroMQ context runs its own I/O threads...
        running.call("ping")  # ...and a queued request opens a connection attempt
        bpy.ops.preferences.addon_disable(module=ADDON_MODULE)
    assert os_threads() == threads  # ...which unregister() stops
    assert open_fds() == fds


def test_changing_preferences_rebuilds_the_client(bpy, prefs, service):
    old = service.client
    prefs.address = "tcp://127.0.0.1:5999"
    assert old.closed and service.client.address == "tcp://127.0.0.1:5999"
    prefs.timeout, prefs.retries = 0.5, 1
    assert service.client.timeout_s == 0.5 and service.client.retries == 1


@pytest.mark.parametrize("address, expected", [
    ("localhost:5555", "is not a ZeroMQ address"),
    ("tcp://10.1.2.3:5555", "Allow Online Access"),
])
def test_bad_address_is_a_clear_message_not_an_exception(bpy, prefs, service, address, expected):
    if "Online" in expected and bpy.app.online_access:
        pytest.skip("this Blender allows online access")
    prefs.address = address
    assert service.client is None and expected in service.connect_error
    assert bpy.ops.mofind.search(prompt="a person waves", wait=True) == {"CANCELLED"}
    session = bpy.context.window_manager.mofind
    assert expected in session.status and session.status_level == "ERROR"


def test_bad_server_key_is_a_clear_message(bpy, prefs, service):
    prefs.server_key = "not-a-key"
    assert service.client is None and "40 Z85 characters" in service.connect_error


def test_timer_ticks_fast_while_requests_are_pending_and_slow_when_idle(bpy, prefs, service):
    from addon_bpy.backend_process import free_port

    module = sys.modules[f"{ADDON_MODULE}.service"]
    prefs.address = f"tcp://127.0.0.1:{free_port()}"  # nobody listens there
    assert service._timer() == module.SLOW_S
    service.call("ping")
    assert service._timer() == module.FAST_S
    service.client.cancel(next(iter(service.client._pending)))
    assert service._timer() == module.SLOW_S


def test_backend_banner_names_labels_that_exist_in_the_ui(bpy, addon, prefs):
    """`mofind serve` tells the user where to click; those words must be the add-on's real labels."""
    banner = (Path(__file__).resolve().parents[2] / "backend" / "mofind" / "commands" / "serve.py").read_text()
    panel = addon.panels.index.MOFIND_PT_index.bl_label
    button = addon.operators.bulk_index.MOFIND_OT_index_folder.bl_label
    address = type(prefs).bl_rna.properties["address"].name
    assert f"MoFind > {panel} > {button}" in banner
    assert f"Add-ons > MoFind > {address} =" in banner
