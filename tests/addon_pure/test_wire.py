"""Protocol v1 framing as the add-on reads it: headers, outcomes, and binary frame references."""

from __future__ import annotations

import json

import numpy as np
import pytest


def test_request_header_round_trips(wire_mod):
    header = json.loads(wire_mod.encode_request("abc-1", "search", {"query": "wave", "k": 5}))
    assert header == {"v": 1, "id": "abc-1", "method": "search", "params": {"query": "wave", "k": 5}}


def test_failure_reply_keeps_the_backend_code(wire_mod):
    frames = [json.dumps({"v": 1, "id": "a", "ok": False, "error": {"code": "BUSY", "message": "later"}}).encode()]
    request_id, header, binary = wire_mod.decode_reply(frames)
    outcome = wire_mod.reply_outcome(header, binary, "search")
    assert isinstance(outcome, wire_mod.Failure)
    assert (outcome.id, outcome.code, outcome.message, outcome.method) == ("a", "BUSY", "later", "search")


def test_reply_meta_is_kept(wire_mod):
    header = {"v": 1, "id": "a", "ok": True, "result": {}, "meta": {"offline": {"clips": 3}}}
    assert wire_mod.reply_outcome(header, [], "search").meta == {"offline": {"clips": 3}}
    assert wire_mod.reply_outcome({"v": 1, "id": "a", "ok": True, "result": {}}, [], "search").meta == {}


def test_reply_without_result_or_error_is_bad_reply(wire_mod):
    outcome = wire_mod.reply_outcome({"v": 1, "id": "a", "ok": True}, [], "search")
    assert isinstance(outcome, wire_mod.Failure) and outcome.code == wire_mod.BAD_REPLY


@pytest.mark.parametrize("frames", [[], [b"\xff\xfe"], [b"[1, 2]"], [b'{"v": 1}']])
def test_malformed_headers_raise_wire_error(wire_mod, frames):
    with pytest.raises(wire_mod.WireError):
        wire_mod.decode_reply(frames)


def test_array_and_bytes_references(wire_mod):
    rotations = np.random.default_rng(0).normal(size=(4, 3, 4)).astype(np.float32)
    frames = [rotations.tobytes(), b"\x89PNG..."]
    result = {"rotations": {"$frame": 0, "dtype": "float32", "shape": [4, 3, 4]}, "fps": 30}
    resolved = wire_mod.resolve_arrays(result, frames)
    np.testing.assert_array_equal(resolved["rotations"], rotations)
    assert resolved["fps"] == 30 and result["rotations"]["$frame"] == 0  # input untouched
    assert wire_mod.frame_bytes({"$frame": 1}, frames) == b"\x89PNG..."
    assert wire_mod.frame_bytes(None, frames) is None


def test_array_reference_that_does_not_fit_its_frame(wire_mod):
    frames = [np.zeros(5, np.float32).tobytes()]
    with pytest.raises(wire_mod.WireError, match="dtype/shape"):
        wire_mod.frame_array({"$frame": 0, "dtype": "float32", "shape": [2, 3]}, frames)
    with pytest.raises(wire_mod.WireError, match="frame 3"):
        wire_mod.frame_bytes({"$frame": 3}, frames)
