""""Test Connection": ping the backend, then ask what it serves (model, index size)."""

from __future__ import annotations

from ..tickets import Ticket
from ..wire import Reply
from .status import session, set_status


def check(service, *, wait: bool = False):
    """Ping, then `info`; the status line ends up saying what is connected (or why not)."""
    address = service.settings.address
    if not service.keyed and (service.client is None or service.client.pending_count == 0):
        service.configure(service.settings)  # a local server may have made its keys since: pick them up
    set_status("BUSY", f"Connecting to {address}…")

    def pinged(reply: Reply):
        version = reply.result.get("version", "?")
        set_status("OK", f"Connected to MoFind {version} at {address}")
        return service.call("info", on_reply=lambda info: _describe(info, version, address))

    ticket = service.call("ping", on_reply=pinged, wait=wait,
                          on_error=lambda failure: set_status("ERROR", failure.message))
    if wait and isinstance(ticket.value, Ticket):
        service.wait(ticket.value)  # a backend without `info` still counts as connected
    return ticket


def _describe(reply: Reply, version: str, address: str) -> None:
    info = reply.result
    model = info.get("model") if isinstance(info.get("model"), dict) else {}
    index = info.get("index") if isinstance(info.get("index"), dict) else {}
    clips = index.get("clips")
    if isinstance(clips, int):
        session().index_clips = clips
    set_status("OK", f"Connected to MoFind {version} at {address}: model {model.get('name', '?')}, "
                     f"{clips if clips is not None else '?'} clips indexed")
