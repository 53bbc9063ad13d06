"""Operators refuse bad input with a clear message before sending anything (no backend needed)."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.bpy


@pytest.fixture
def session(bpy, addon):
    return bpy.context.window_manager.mofind


@pytest.mark.parametrize("call, message", [
    (lambda ops: ops.search(prompt="   ", wait=True), "Type a prompt first"),
    (lambda ops: ops.apply_clip(index=0, wait=True), "no results yet"),
    (lambda ops: ops.preview(index=0, wait=True), "no results yet"),
    (lambda ops: ops.explain(wait=True), "no results yet"),
    (lambda ops: ops.similar(wait=True), "no results yet"),
    (lambda ops: ops.index_folder(folder="/no/such/folder", wait=True), "is not a folder"),
    (lambda ops: ops.index_folder(wait=True), "Choose a folder"),
    (lambda ops: ops.index_cancel(wait=True), "No indexing job is running"),
])
def test_bad_input_is_cancelled_with_a_message(bpy, session, service, call, message):
    pending_before = service.client.pending_count
    assert call(bpy.ops.mofind) == {"CANCELLED"}
    assert message in session.status and session.status_level == "ERROR"
    assert service.client.pending_count == pending_before  # nothing was sent


def test_ending_a_preview_that_is_not_running(bpy, session):
    assert bpy.ops.mofind.preview_end(keep=True) == {"CANCELLED"}


def test_a_success_clears_an_earlier_error_banner_but_not_a_warning(bpy, addon, session):
    """The status-bar banner of a failed request (e.g. a key-setup error) stays 15 s; once a later request works,
    the banner would contradict the panel, so an OK status takes it down. A warning (numpy missing) stays."""
    import sys

    status = sys.modules[f"{addon.__name__}.core.status"]
    status.report_in_status_bar("ERROR", "the backend expects a different key setup")
    assert status._SHOWN["level"] == "ERROR"
    status.set_status("OK", "10 clips for 'a person waves'")
    assert status._SHOWN == {}
    status.report_in_status_bar("WARNING", "numpy is missing")
    status.set_status("OK", "10 clips for 'a person waves'")
    assert status._SHOWN["level"] == "WARNING"
    status.clear_status_bar()
    assert status._SHOWN == {}
