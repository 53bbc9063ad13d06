"""The add-on's one running service: the ZeroMQ client, the timer that polls it, and the thumbnail cache.

Requests never block Blender: `call()` queues a request and returns a Ticket at once, and one
`bpy.app.timers` function (every FAST_S while something is pending, SLOW_S when idle) calls
`poll_once()`, which runs reply callbacks on Blender's main thread. Scripts and tests, where
timers never fire (headless bpy), pass `wait=True` or call `poll_once()` themselves.

The running Service is the only process state the add-on keeps: `start()` creates it in
`register()`, `stop()` closes it in `unregister()` (timer removed, socket and context closed,
preview icons freed).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import time
from dataclasses import dataclass, field
from ipaddress import ip_address
from typing import Any, Callable
from urllib.parse import urlsplit

import bpy

from .client import MoFindClient, load_client_keys
from .core.keys import local_settings
from .core.status import report_in_status_bar
from .core.motion import MotionCache
from .prefs import ADDON_PACKAGE, ClientSettings, get_settings
from .previews import ThumbnailCache, thumbnail_dir
from .tickets import Ticket, failure_from_exception
from .wire import Failure, Reply

log = logging.getLogger(__name__)

FAST_S = 0.05
SLOW_S = 0.5
NOT_CONNECTED = "NOT_CONNECTED"


@dataclass(order=True)
class _Scheduled:
    due: float
    order: int
    fn: Callable[[], None] = field(compare=False)


class Service:
    """Client + timer + thumbnails. Create with `start()`; callers fetch it with `get()`."""

    def __init__(self, settings: ClientSettings, thumbnails: ThumbnailCache):
        self.thumbnails = thumbnails
        self.motion_cache = MotionCache()
        self.preview: Any = None  # core.preview's snapshot of the rig while a preview plays
        self.client: MoFindClient | None = None
        self.connect_error = ""
        self.settings = settings
        self.on_late_failure: Callable[[Failure], None] | None = None  # failures no operator is there to report
        self._calls = 0  # > 0 while call() runs: an operator is waiting and reports failures itself
        self._scheduled: list[_Scheduled] = []
        self._order = itertools.count()
        self._timer = self._tick  # one bound-method object, so the timer can be found and removed
        self.configure(settings)

    # --- connection -----------------------------------------------------------------------------
    def configure(self, settings: ClientSettings) -> None:
        """(Re)build the client for new settings; a bad address or key becomes `connect_error`."""
        if self.client is not None:
            self.client.close()
            self.client = None
        self.settings = settings
        self.connect_error = ""
        self.keyed = False  # whether the client authenticates (CurveZMQ) to the server
        try:
            _check_address(settings.address)
            if _is_local(settings.address):  # a server of this user on this machine: use and enrol its keys
                settings = local_settings(settings)
            client_keys = load_client_keys(settings.client_key_file) if settings.client_key_file else None
            self.client = MoFindClient(settings.address, timeout_s=settings.timeout_s, retries=settings.retries,
                                       server_key=settings.server_key, client_keys=client_keys)
            self.keyed = bool(settings.server_key)
        except ValueError as exc:
            self.connect_error = f"MoFind cannot connect: {exc}. Fix it in the add-on preferences."
        except Exception as exc:  # zmq.ZMQError for a malformed endpoint; shown to the user, never raised into UI
            self.connect_error = f"MoFind cannot connect to '{settings.address}': {exc}. Fix it in the preferences."

    # --- requests -------------------------------------------------------------------------------
    def call(self, method: str, params: dict | None = None, *, on_reply: Callable[[Reply], Any] | None = None,
             on_error: Callable[[Failure], None] | None = None, wait: bool = False,
             timeout_s: float | None = None) -> Ticket:
        """Send a request; `on_reply`'s return value becomes `ticket.value`.

        An exception raised by `on_reply` (say, applying a motion to a rig that cannot take it)
        turns into a failure with code ADDON, reported like any backend error.
        """
        ticket = Ticket(method)

        def fail(failure: Failure) -> None:
            ticket.failure, ticket.done = failure, True
            if on_error is not None:
                on_error(failure)
            if not self._calls and self.on_late_failure is not None:
                self.on_late_failure(failure)

        def succeed(reply: Reply) -> None:
            ticket.reply = reply
            try:
                ticket.value = on_reply(reply) if on_reply is not None else None
            except Exception as exc:  # surfaced as a clear failure; the traceback goes to the log
                fail(failure_from_exception(method, exc, reply.id))
                return
            ticket.done = True

        self._calls += 1
        try:
            if self.client is None:
                fail(Failure("", method, NOT_CONNECTED, self.connect_error or "MoFind is not connected."))
                return ticket
            ticket.id = self.client.request(method, params, on_reply=succeed, on_error=fail, timeout_s=timeout_s)
            if wait:
                self.wait(ticket)
            return ticket
        finally:
            self._calls -= 1

    def wait(self, ticket: Ticket, step_ms: int = 20) -> Ticket:
        """Drive the client until the ticket is done (scripts and tests; ends by reply or timeout)."""
        while not ticket.done:
            if self.client is None or not self.client.is_pending(ticket.id):
                self.poll_once(0)
                if not ticket.done:  # the client dropped it (closed): nothing more will come
                    ticket.failure = ticket.failure or Failure(ticket.id, ticket.method, "CLOSED",
                                                               "The MoFind client was closed.")
                    ticket.done = True
                break
            self.poll_once(step_ms)
        return ticket

    def run_until(self, condition: Callable[[], bool], step_ms: int = 20) -> None:
        """Drive the service until `condition()` holds or nothing is left that could change it."""
        while not condition() and self.busy:
            self.poll_once(step_ms)

    def later(self, delay_s: float, fn: Callable[[], None]) -> None:
        """Run `fn` from the poll loop after `delay_s` (job progress polling)."""
        heapq.heappush(self._scheduled, _Scheduled(time.monotonic() + delay_s, next(self._order), fn))

    @property
    def busy(self) -> bool:
        return bool(self._scheduled) or (self.client is not None and self.client.pending_count > 0)

    def poll_once(self, wait_ms: int = 0) -> int:
        """Run due scheduled work and deliver arrived replies; returns how many requests finished."""
        now = time.monotonic()
        while self._scheduled and self._scheduled[0].due <= now:
            item = heapq.heappop(self._scheduled)
            try:
                item.fn()
            except Exception:  # scheduled work must not stop the poll loop
                log.exception("MoFind: scheduled work failed")
        if self.client is None:
            return 0
        if self._scheduled and not self.client.pending_count:
            wait_ms = min(wait_ms, max(0, int((self._scheduled[0].due - now) * 1000)))
            time.sleep(wait_ms / 1000)
            return 0
        return self.client.poll_once(wait_ms)

    # --- timer ----------------------------------------------------------------------------------
    def _tick(self) -> float:
        try:
            self.poll_once(0)
        except Exception:  # a raising timer is silently dropped by Blender: log and keep ticking
            log.exception("MoFind: polling the backend failed")
        return FAST_S if self.busy else SLOW_S

    @property
    def timer_registered(self) -> bool:
        return bpy.app.timers.is_registered(self._timer)

    def start_timer(self) -> None:
        if not self.timer_registered:
            bpy.app.timers.register(self._timer, first_interval=SLOW_S, persistent=True)

    def close(self) -> None:
        self.on_late_failure = None  # requests abandoned by closing are no news for the status bar
        if self.timer_registered:
            bpy.app.timers.unregister(self._timer)
        self._scheduled.clear()
        if self.client is not None:
            self.client.close()
        self.thumbnails.close()


def _check_address(address: str) -> None:
    """Refuse endpoints that are not ZeroMQ TCP/IPC, and remote hosts while Blender is offline."""
    parts = urlsplit(address)
    if parts.scheme == "ipc":
        return
    if parts.scheme != "tcp" or not parts.hostname or parts.port is None:
        raise ValueError(f"'{address}' is not a ZeroMQ address like tcp://127.0.0.1:5555")
    if not _is_loopback(parts.hostname) and not bpy.app.online_access:
        raise ValueError(f"'{parts.hostname}' is not this computer and Blender's 'Allow Online Access' is off "
                         "(Preferences > System > Network)")


def _is_local(address: str) -> bool:
    parts = urlsplit(address)
    return parts.scheme == "ipc" or (parts.scheme == "tcp" and _is_loopback(parts.hostname or ""))


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ip_address(host).is_loopback
    except ValueError:
        return False


# --- the running service (created by register(), closed by unregister()) ----------------------
_RUNNING: dict[str, Service] = {}


def start(context=None) -> Service:
    context = context or bpy.context
    stop()
    service = Service(get_settings(context), ThumbnailCache(thumbnail_dir(ADDON_PACKAGE)))
    service.on_late_failure = lambda failure: report_in_status_bar("ERROR", failure.message)
    service.start_timer()
    _RUNNING["service"] = service
    return service


def stop() -> None:
    service = _RUNNING.pop("service", None)
    if service is not None:
        service.close()


def active() -> Service | None:
    return _RUNNING.get("service")


def get() -> Service:
    service = active()
    if service is None:
        raise RuntimeError("The MoFind add-on is not running: enable it in Preferences > Add-ons.")
    return service
