"""Non-blocking ZeroMQ client for the MoFind backend (the ZeroMQ guide's Lazy Pirate, on a DEALER).

No bpy here: Blender drives the client by calling `poll_once()` from one timer, and scripts,
tests and benchmarks drive it the same way (headless Blender never fires timers). Nothing
ever calls a bare `recv()`: a dead backend costs at most `timeout_s * (retries + 1)` and then
a TIMEOUT failure, never a frozen UI.

Lazy Pirate on a DEALER: many requests may be in flight, each tagged with an id that the
backend echoes back. When one of them gets no reply in time the socket is thrown away
(LINGER 0, so nothing queued survives), a fresh one connects, and every request still
waiting is sent again; a request that has used up its retries fails with TIMEOUT. Replies
whose id is not pending (late duplicates after a resend) are dropped.

Retries only help a backend that is there but slow or lost a message. A socket monitor tells
the client whether a TCP connection exists at all: when the backend's port refuses connections
(nothing listening) every waiting request fails with UNREACHABLE after REFUSED_GRACE_S, and a
request whose attempt ends without any connection ever made fails at its first deadline
instead of being retried: a stopped backend is reported in well under 2 s, not after
`timeout_s * (retries + 1)`.
"""

from __future__ import annotations

import itertools
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import zmq
from zmq.utils.monitor import recv_monitor_message

from .wire import (
    BAD_REPLY, CLOSED, TIMEOUT, UNREACHABLE, Failure, Reply, WireError, decode_reply, encode_request, reply_outcome,
)

log = logging.getLogger(__name__)

ReplyCallback = Callable[[Reply], None]
FailureCallback = Callable[[Failure], None]

DEFAULT_ADDRESS = "tcp://127.0.0.1:5555"
#: How long a refused connection is tolerated before requests fail: a backend that is just starting binds in time.
REFUSED_GRACE_S = 0.5
_LINK_EVENTS = zmq.EVENT_CONNECTED | zmq.EVENT_DISCONNECTED | zmq.EVENT_CONNECT_RETRIED
_HANDSHAKE_EVENTS = zmq.EVENT_HANDSHAKE_FAILED_AUTH | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
KEY_HELP = ("a backend on this computer is found by itself once it has started; for another computer paste its "
            "key (`mofind keys` there) into Server key and enrol this Blender there (`mofind keys allow FILE.key`)")
WHERE_TO_FIX = "the address is set in Edit > Preferences > Add-ons > MoFind > Backend address"


def _ignore(_arg) -> None:
    """Default callback: nobody asked to hear about this outcome."""


@dataclass
class _Pending:
    """One request in flight: everything needed to resend it and to report its outcome."""

    id: str
    method: str
    frames: list[bytes]
    timeout_s: float
    retries: int
    deadline: float
    on_reply: ReplyCallback
    on_error: FailureCallback
    on_timeout: FailureCallback
    sent_at: float = 0.0
    attempts: int = 1


class MoFindClient:
    """Lazy Pirate request/reply client. Not thread-safe: drive it from one thread.

    Args:
        address: ZeroMQ endpoint of `mofind serve`, e.g. ``tcp://127.0.0.1:5555``.
        timeout_s: how long one attempt waits for its reply.
        retries: how many times a request is resent (after a reconnect) before it fails.
        server_key: the backend's CurveZMQ public key (Z85, 40 characters) to encrypt the
            connection; empty for plain TCP on loopback.
        client_keys: (public, secret) Z85 keys for a backend that authenticates clients;
            a fresh pair is made when a server key is given without them.
        clock: monotonic clock in seconds (injectable so tests can reason about deadlines).
    """

    def __init__(self, address: str = DEFAULT_ADDRESS, *, timeout_s: float = 5.0, retries: int = 2,
                 server_key: str = "", client_keys: tuple[str, str] | None = None,
                 clock: Callable[[], float] = time.monotonic):
        if timeout_s <= 0:
            raise ValueError(f"timeout_s must be positive, got {timeout_s}")
        if retries < 0:
            raise ValueError(f"retries must be >= 0, got {retries}")
        self.address = address
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self._curve = _curve_options(server_key, client_keys)
        self._clock = clock
        self._ids = itertools.count(1)
        self._session = uuid.uuid4().hex[:8]
        self._pending: dict[str, _Pending] = {}
        self.context = zmq.Context()
        self.socket: zmq.Socket | None = None
        self._monitor: zmq.Socket | None = None
        self._poller = zmq.Poller()
        self._linked = False  # a TCP connection to the backend exists now
        self._ever_linked = False  # ... or existed at some point on this socket
        self._refused = False  # the last connection attempt was refused and none has succeeded since
        self.reconnects = 0
        self._connect()

    # --- public API ---------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self.socket is None

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    def is_pending(self, request_id: str) -> bool:
        return request_id in self._pending

    def request(self, method: str, params: dict | None = None, payload: list[bytes] = (), *,
                on_reply: ReplyCallback = _ignore, on_error: FailureCallback = _ignore,
                on_timeout: FailureCallback | None = None, timeout_s: float | None = None,
                retries: int | None = None) -> str:
        """Queue a request and return its id at once; exactly one callback fires later from poll_once.

        `on_timeout` defaults to `on_error`, so callers that only care about "it failed" pass one.
        """
        if self.socket is None:
            raise RuntimeError("MoFindClient is closed")
        request_id = f"{self._session}-{next(self._ids)}"
        timeout = self.timeout_s if timeout_s is None else float(timeout_s)
        pending = _Pending(
            id=request_id, method=method, frames=[encode_request(request_id, method, params), *payload],
            timeout_s=timeout, retries=self.retries if retries is None else int(retries),
            deadline=self._clock() + timeout, on_reply=on_reply, on_error=on_error,
            on_timeout=on_timeout or on_error, sent_at=self._clock(),
        )
        self._pending[request_id] = pending
        self._send(pending)
        return request_id

    def poll_once(self, wait_ms: int = 0) -> int:
        """Deliver every reply that has arrived and expire overdue requests; returns how many finished.

        Waits at most `wait_ms` for the first reply (0 = just look). Callbacks run here, in the
        caller's thread; an exception in a callback is logged, never propagated, so one bad
        callback cannot kill Blender's timer.
        """
        if self.socket is None or not self._pending:
            return 0
        finished = 0
        wait = max(0, min(int(wait_ms), self._ms_to_next_deadline()))
        ready = dict(self._poller.poll(wait))
        if self.socket in ready:
            finished += self._drain()
        self._read_link_events()
        finished += self._fail_unreachable()
        finished += self._expire_overdue()
        return finished

    def wait_for(self, request_id: str, step_ms: int = 20) -> None:
        """Block the caller until `request_id` has finished (reply, error or timeout).

        For scripts and tests only (the UI never calls this). It always ends: every request
        has a deadline and a retry limit.
        """
        while request_id in self._pending:
            self.poll_once(step_ms)

    def cancel(self, request_id: str) -> bool:
        """Forget a request locally; a late reply to it is dropped. Returns whether it was pending."""
        return self._pending.pop(request_id, None) is not None

    def close(self) -> None:
        """Close the socket and the context; pending requests fail with CLOSED (callbacks fire)."""
        if self.socket is None:
            return
        pending, self._pending = list(self._pending.values()), {}
        self._close_socket()
        self.socket = None
        self.context.term()
        for item in pending:
            self._notify(item.on_error, Failure(item.id, item.method, CLOSED,
                                                f"'{item.method}' was abandoned: the MoFind client closed."))

    # --- internals ----------------------------------------------------------------------------
    def _connect(self) -> None:
        socket = self.context.socket(zmq.DEALER)
        socket.setsockopt(zmq.LINGER, 0)
        for option, value in self._curve:
            socket.setsockopt(option, value)
        self._monitor = socket.get_monitor_socket(_LINK_EVENTS | _HANDSHAKE_EVENTS)
        self._linked = self._ever_linked = self._refused = False
        self._handshake_failure = ""  # why the backend refused the security handshake, if it did
        socket.connect(self.address)
        self.socket = socket
        self._poller = zmq.Poller()
        self._poller.register(socket, zmq.POLLIN)
        self._poller.register(self._monitor, zmq.POLLIN)

    def _close_socket(self) -> None:
        self.socket.disable_monitor()
        self._monitor.close(linger=0)
        self._monitor = None
        self.socket.close(linger=0)

    def _reconnect(self) -> None:
        """Lazy Pirate: a silent peer means the socket may be wedged; drop it and start over."""
        self._close_socket()
        self.reconnects += 1
        self._connect()

    def _read_link_events(self) -> None:
        """Follow the socket monitor: is there a TCP connection, and was the last attempt refused?"""
        while self._monitor is not None and self._monitor.poll(0, zmq.POLLIN):
            event = recv_monitor_message(self._monitor, flags=zmq.NOBLOCK)["event"]
            if event == zmq.EVENT_CONNECTED:
                self._linked = self._ever_linked = True
                self._refused = False
            elif event == zmq.EVENT_DISCONNECTED:
                self._linked = False
            elif event == zmq.EVENT_CONNECT_RETRIED and not self._linked:
                self._refused = True
            elif event == zmq.EVENT_HANDSHAKE_FAILED_AUTH:
                self._handshake_failure = (f"The MoFind backend at {self.address} does not know this Blender's key "
                                           f"and refuses it: {KEY_HELP}.")
            elif event == zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL:
                self._handshake_failure = (f"The MoFind backend at {self.address} expects a different key setup "
                                           f"(it lets in only clients it knows): {KEY_HELP}.")

    def _fail_unreachable(self) -> int:
        """Nothing listens at the address: fail every request that has waited REFUSED_GRACE_S, without retries."""
        if not self._refused or self._linked:
            return 0
        now = self._clock()
        failed = [item for item in self._pending.values() if now - item.sent_at >= REFUSED_GRACE_S]
        for item in failed:
            del self._pending[item.id]
        for item in failed:
            self._notify(item.on_error, Failure(
                item.id, item.method, UNREACHABLE,
                f"The MoFind backend is not running: nothing accepts connections at {self.address}. "
                f"Start it with `make run` (or `mofind serve`) and try again; {WHERE_TO_FIX}."))
        return len(failed)

    def _send(self, pending: _Pending) -> None:
        try:
            self.socket.send_multipart(pending.frames, flags=zmq.NOBLOCK)
        except zmq.Again:
            # The outgoing queue is full (backend long gone): the deadline retries or fails it.
            log.debug("MoFind request %s could not be queued yet", pending.id)

    def _ms_to_next_deadline(self) -> int:
        soonest = min(item.deadline for item in self._pending.values())
        if self._refused:
            soonest = min(soonest, min(item.sent_at for item in self._pending.values()) + REFUSED_GRACE_S)
        return max(0, int((soonest - self._clock()) * 1000) + 1)

    def _drain(self) -> int:
        finished = 0
        while self.socket is not None:
            try:
                frames = self.socket.recv_multipart(flags=zmq.NOBLOCK)
            except zmq.Again:
                break
            finished += self._deliver(frames)
        return finished

    def _deliver(self, frames: list[bytes]) -> int:
        if frames and frames[0] == b"":  # tolerate a REQ-style empty delimiter
            frames = frames[1:]
        try:
            request_id, header, binary = decode_reply(frames)
        except WireError as exc:
            log.warning("MoFind: dropped a malformed reply (%s)", exc)
            return 0
        pending = self._pending.pop(request_id, None)
        if pending is None:
            log.debug("MoFind: dropped a late or unknown reply %s", request_id)
            return 0
        outcome = reply_outcome(header, binary, pending.method)
        if isinstance(outcome, Reply):
            self._notify(pending.on_reply, outcome)
        else:
            self._notify(pending.on_error, outcome)
        return 1

    def _expire_overdue(self) -> int:
        now = self._clock()
        overdue = [item for item in self._pending.values() if item.deadline <= now]
        if not overdue:
            return 0
        never_linked = not self._ever_linked  # no TCP connection at all: resending cannot help
        self._read_link_events()
        handshake_failure = self._handshake_failure  # a refused key: resending cannot help either
        failed = [item for item in overdue if item.attempts > item.retries or never_linked or handshake_failure]
        for item in failed:
            del self._pending[item.id]
        self._reconnect()
        for item in self._pending.values():  # the old socket's identity is gone: resend all
            if item.deadline <= now:
                item.attempts += 1
            item.deadline = now + item.timeout_s
            self._send(item)
        for item in failed:
            if handshake_failure:
                self._notify(item.on_timeout, Failure(item.id, item.method, TIMEOUT, handshake_failure))
                continue
            if never_linked:
                failure = Failure(item.id, item.method, UNREACHABLE,
                                  f"Could not reach the MoFind backend at {self.address} within {item.timeout_s:g} s. "
                                  f"Is `mofind serve` running there and the host reachable? {WHERE_TO_FIX[0].upper()}"
                                  f"{WHERE_TO_FIX[1:]}.")
                self._notify(item.on_error, failure)
                continue
            self._notify(item.on_timeout, Failure(
                item.id, item.method, TIMEOUT,
                f"No reply from the MoFind backend at {self.address} to '{item.method}' after "
                f"{item.attempts} tries of {item.timeout_s:g} s. Is it running? Start it with "
                f"`make run` (or `mofind serve`); {WHERE_TO_FIX}."))
        return len(failed)

    @staticmethod
    def _notify(callback, outcome) -> None:
        try:
            callback(outcome)
        except Exception:  # a callback bug must not break the poll loop; it is logged with its traceback
            log.exception("MoFind: a reply callback raised")


def load_client_keys(path: str) -> tuple[str, str]:
    """(public, secret) Z85 keys from a `zmq.auth` secret certificate file (``*.key_secret``)."""
    import zmq.auth

    try:
        public, secret = zmq.auth.load_certificate(path)
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the client key file '{path}': {exc}") from None
    if secret is None:
        raise ValueError(f"'{path}' holds only a public key; choose the '.key_secret' file")
    return public.decode("ascii"), secret.decode("ascii")


def _curve_options(server_key: str, client_keys: tuple[str, str] | None) -> list[tuple[int, bytes]]:
    """Socket options for CurveZMQ, or none for plain TCP; a malformed key fails here, clearly."""
    server_key = (server_key or "").strip()
    if not server_key:
        return []
    if len(server_key) != 40:
        raise ValueError(f"the CurveZMQ server key must be 40 Z85 characters, got {len(server_key)}")
    if not zmq.has("curve"):
        raise ValueError("this pyzmq build has no CurveZMQ support; clear the server key to connect in plain TCP")
    public, secret = client_keys or (key.decode("ascii") for key in zmq.curve_keypair())
    return [(zmq.CURVE_SERVERKEY, server_key.encode("ascii")),
            (zmq.CURVE_PUBLICKEY, public.encode("ascii")),
            (zmq.CURVE_SECRETKEY, secret.encode("ascii"))]


__all__ = ["MoFindClient", "load_client_keys", "Reply", "Failure", "DEFAULT_ADDRESS", "TIMEOUT", "UNREACHABLE",
           "BAD_REPLY", "CLOSED"]
