"""The add-on's Lazy Pirate client against a real loopback ROUTER: replies, ids, errors, timeouts, retries."""

from __future__ import annotations

import json
import logging
import time

import numpy as np
import pytest
import zmq

from addon_pure.zmq_server import ScriptedRouter, error, ok


class Outcomes:
    """Collects what the client's callbacks receive."""

    def __init__(self):
        self.replies, self.errors, self.timeouts = [], [], []

    def kwargs(self, with_timeout: bool = True) -> dict:
        extra = {"on_timeout": self.timeouts.append} if with_timeout else {}
        return {"on_reply": self.replies.append, "on_error": self.errors.append, **extra}


@pytest.fixture
def make_client(client_mod):
    clients = []

    def make(address, **kwargs):
        client = client_mod.MoFindClient(address, **kwargs)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


def test_reply_carries_result_and_binary_frames(make_client, wire_mod):
    matrix = np.arange(6, dtype=np.float32).reshape(2, 3)

    def handler(header, frames, server):
        ref = {"$frame": 0, "dtype": "float32", "shape": [2, 3]}
        return [ok(header, {"echo": header["params"]["query"], "matrix": ref}, matrix.tobytes())]

    with ScriptedRouter(handler) as server:
        client = make_client(server.address, timeout_s=5)
        got = Outcomes()
        request_id = client.request("explain", {"query": "wave"}, **got.kwargs())
        client.wait_for(request_id)
    assert not got.errors and not got.timeouts
    (reply,) = got.replies
    assert reply.id == request_id and reply.result["echo"] == "wave"
    resolved = wire_mod.resolve_arrays(reply.result, reply.frames)
    np.testing.assert_array_equal(resolved["matrix"], matrix)
    assert server.requests[0]["v"] == 1 and server.requests[0]["method"] == "explain"


def test_out_of_order_replies_reach_their_own_callbacks(make_client):
    def handler(header, frames, server):
        server.held.append((server.current_identity, header))
        if len(server.held) < 2:
            return []
        # answer the second request first, then the first
        return [ok(h, {"query": h["params"]["query"]}) for _, h in reversed(server.held)]

    with ScriptedRouter(handler) as server:
        client = make_client(server.address, timeout_s=5)
        first, second = Outcomes(), Outcomes()
        id1 = client.request("search", {"query": "walk"}, **first.kwargs())
        id2 = client.request("search", {"query": "run"}, **second.kwargs())
        client.wait_for(id1)
        client.wait_for(id2)
    assert [r.result["query"] for r in first.replies] == ["walk"]
    assert [r.result["query"] for r in second.replies] == ["run"]
    assert first.replies[0].id == id1 and second.replies[0].id == id2
    assert id1 != id2


def test_error_reply_reaches_on_error_with_its_code(make_client):
    with ScriptedRouter(lambda h, f, s: [error(h, "NOT_FOUND", "no clip 'x'")]) as server:
        client = make_client(server.address, timeout_s=5)
        got = Outcomes()
        client.wait_for(client.request("get_motion", {"clip_id": "x"}, **got.kwargs()))
    assert not got.replies and not got.timeouts
    (failure,) = got.errors
    assert failure.code == "NOT_FOUND" and failure.message == "no clip 'x'" and failure.method == "get_motion"


def test_silent_backend_is_retried_then_times_out(make_client, client_mod):
    with ScriptedRouter(lambda h, f, s: []) as server:
        client = make_client(server.address, timeout_s=0.15, retries=2)
        got = Outcomes()
        request_id = client.request("search", {"query": "jump"}, **got.kwargs())
        client.wait_for(request_id)
    assert not got.replies and not got.errors
    (failure,) = got.timeouts
    assert failure.code == client_mod.TIMEOUT and failure.id == request_id
    assert "make run" in failure.message and server.address in failure.message
    # one first try + two resends, all with the same id, each after a fresh reconnect
    assert [r["id"] for r in server.requests] == [request_id] * 3
    assert client.reconnects == 3 and client.pending_count == 0


def test_on_timeout_defaults_to_on_error(make_client, client_mod):
    with ScriptedRouter(lambda h, f, s: []) as server:
        client = make_client(server.address, timeout_s=0.1, retries=0)
        got = Outcomes()
        client.wait_for(client.request("ping", **got.kwargs(with_timeout=False)))
    assert [f.code for f in got.errors] == [client_mod.TIMEOUT]
    assert len(server.requests) == 1


def test_resend_after_a_lost_request_succeeds_once(make_client):
    def handler(header, frames, server):
        return [] if len(server.requests) == 1 else [ok(header, {"pong": True})]

    with ScriptedRouter(handler) as server:
        client = make_client(server.address, timeout_s=0.15, retries=3)
        got = Outcomes()
        client.wait_for(client.request("ping", **got.kwargs()))
    assert [r.result for r in got.replies] == [{"pong": True}]
    assert not got.errors and not got.timeouts
    assert len(server.requests) == 2 and server.requests[0]["id"] == server.requests[1]["id"]


def test_unknown_late_and_malformed_replies_are_dropped(make_client, caplog):
    def handler(header, frames, server):
        return [
            [b"not json at all"],
            [json.dumps({"v": 1, "ok": True, "result": {}}).encode()],  # no id
            ok({"id": "someone-else"}, {"stale": True}),
            ok(header, {"mine": True}),
        ]

    with ScriptedRouter(handler) as server, caplog.at_level(logging.DEBUG):
        client = make_client(server.address, timeout_s=5)
        got = Outcomes()
        client.wait_for(client.request("ping", **got.kwargs()))
    assert [r.result for r in got.replies] == [{"mine": True}]
    assert "malformed reply" in caplog.text


def test_cancelled_request_gets_no_callback(make_client):
    def handler(header, frames, server):
        return [ok(header, {"n": len(server.requests)})]

    with ScriptedRouter(handler) as server:
        client = make_client(server.address, timeout_s=5)
        dropped, kept = Outcomes(), Outcomes()
        cancelled = client.request("ping", **dropped.kwargs())
        assert client.cancel(cancelled) and not client.cancel(cancelled)
        client.wait_for(client.request("ping", **kept.kwargs()))
        client.poll_once(50)
    assert len(server.requests) == 2
    assert not (dropped.replies or dropped.errors or dropped.timeouts)
    assert len(kept.replies) == 1


def test_version_mismatch_is_a_clear_failure(make_client):
    def handler(header, frames, server):
        return [[json.dumps({"v": 2, "id": header["id"], "ok": True, "result": {}}).encode()]]

    with ScriptedRouter(handler) as server:
        client = make_client(server.address, timeout_s=5)
        got = Outcomes()
        client.wait_for(client.request("ping", **got.kwargs()))
    (failure,) = got.errors
    assert failure.code == "VERSION" and "protocol v2" in failure.message


def test_raising_callback_is_logged_and_does_not_escape(make_client, caplog):
    def explode(reply):
        raise KeyError("bug in a callback")

    with ScriptedRouter(lambda h, f, s: [ok(h, {})]) as server, caplog.at_level(logging.ERROR):
        client = make_client(server.address, timeout_s=5)
        client.wait_for(client.request("ping", on_reply=explode))
    assert "callback raised" in caplog.text and client.pending_count == 0


def _free_port() -> int:
    probe = zmq.Context()
    sock = probe.socket(zmq.ROUTER)
    port = sock.bind_to_random_port("tcp://127.0.0.1")
    sock.close(linger=0)
    probe.term()  # the port is free again: nobody is listening there
    return port


def test_nothing_listening_fails_in_under_two_seconds_despite_long_timeouts(make_client, client_mod):
    """A stopped backend: the real refused TCP connection, not the retries' 15 s, decides how soon the user hears."""
    client = make_client(f"tcp://127.0.0.1:{_free_port()}", timeout_s=5, retries=2)
    got = Outcomes()
    started = time.monotonic()
    client.wait_for(client.request("search", {"query": "walk"}, **got.kwargs()))
    elapsed = time.monotonic() - started
    (failure,) = got.errors
    assert failure.code == client_mod.UNREACHABLE and not got.timeouts
    assert "not running" in failure.message and client.address in failure.message
    assert "Backend address" in failure.message
    assert client_mod.REFUSED_GRACE_S <= elapsed < 2.0


def test_backend_that_stops_mid_session_is_reported_fast(make_client, client_mod):
    with ScriptedRouter(lambda h, f, s: [ok(h, {"pong": True})]) as server:
        client = make_client(server.address, timeout_s=5, retries=2)
        first = Outcomes()
        client.wait_for(client.request("ping", **first.kwargs()))
    assert [r.result for r in first.replies] == [{"pong": True}]
    after = Outcomes()
    started = time.monotonic()
    client.wait_for(client.request("ping", **after.kwargs()))
    assert [f.code for f in after.errors] == [client_mod.UNREACHABLE]
    assert time.monotonic() - started < 2.0


def test_close_fails_pending_requests_and_terminates_the_context(client_mod):
    with ScriptedRouter(lambda h, f, s: []) as server:
        client = client_mod.MoFindClient(server.address, timeout_s=5)
        got = Outcomes()
        client.request("search", {"query": "x"}, **got.kwargs())
        client.close()
        client.close()  # idempotent
    assert [f.code for f in got.errors] == [client_mod.CLOSED]
    assert client.closed and client.context.closed
    with pytest.raises(RuntimeError, match="closed"):
        client.request("ping")


def test_poll_once_without_pending_requests_returns_at_once(make_client):
    with ScriptedRouter(lambda h, f, s: [ok(h, {})]) as server:
        client = make_client(server.address)
        assert client.poll_once(10_000) == 0


@pytest.mark.skipif(not zmq.has("curve"), reason="pyzmq built without CurveZMQ")
def test_curve_encrypted_connection(make_client):
    server_public, server_secret = zmq.curve_keypair()
    with ScriptedRouter(lambda h, f, s: [ok(h, {"secure": True})], curve_secret=server_secret) as server:
        client = make_client(server.address, timeout_s=5, server_key=server_public.decode())
        got = Outcomes()
        client.wait_for(client.request("ping", **got.kwargs()))
        assert [r.result for r in got.replies] == [{"secure": True}]
        # the same server refuses a plain-text client: it hears nothing and the request times out
        plain = make_client(server.address, timeout_s=0.1, retries=0)
        refused = Outcomes()
        plain.wait_for(plain.request("ping", **refused.kwargs()))
        assert len(refused.timeouts) == 1 and len(server.requests) == 1


@pytest.mark.skipif(not zmq.has("curve"), reason="pyzmq built without CurveZMQ")
def test_ironhouse_lets_in_only_the_client_whose_key_file_is_authorised(make_client, client_mod, tmp_path):
    import zmq.auth
    from zmq.auth.thread import ThreadAuthenticator

    server_public_file, server_secret_file = zmq.auth.create_certificates(str(tmp_path), "server")
    allowed = tmp_path / "clients"
    allowed.mkdir()
    _, client_secret_file = zmq.auth.create_certificates(str(allowed), "blender")
    _, stranger_secret_file = zmq.auth.create_certificates(str(tmp_path), "stranger")
    server_public, server_secret = zmq.auth.load_certificate(server_secret_file)

    with ScriptedRouter(lambda h, f, s: [ok(h, {"hello": True})], curve_secret=server_secret) as server:
        auth = ThreadAuthenticator(server._context)
        auth.start()
        try:
            auth.configure_curve(domain="*", location=str(allowed))
            keys = client_mod.load_client_keys(client_secret_file)
            good = make_client(server.address, timeout_s=5, server_key=server_public.decode(), client_keys=keys)
            stranger = make_client(server.address, timeout_s=0.2, retries=0, server_key=server_public.decode(),
                                   client_keys=client_mod.load_client_keys(stranger_secret_file))
            welcomed, refused = Outcomes(), Outcomes()
            good.wait_for(good.request("ping", **welcomed.kwargs()))
            stranger.wait_for(stranger.request("ping", **refused.kwargs()))
        finally:
            auth.stop()
    assert [r.result for r in welcomed.replies] == [{"hello": True}]
    assert len(refused.timeouts) == 1 and len(server.requests) == 1
    with pytest.raises(ValueError, match="only a public key"):
        client_mod.load_client_keys(server_public_file)
    with pytest.raises(ValueError, match="cannot read"):
        client_mod.load_client_keys(str(tmp_path / "missing.key_secret"))


def test_bad_settings_fail_clearly(client_mod):
    with pytest.raises(ValueError, match="40 Z85"):
        client_mod.MoFindClient("tcp://127.0.0.1:1", server_key="short")
    with pytest.raises(ValueError, match="timeout_s"):
        client_mod.MoFindClient("tcp://127.0.0.1:1", timeout_s=0)
