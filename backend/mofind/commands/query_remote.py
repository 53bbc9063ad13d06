"""`mofind query` through a running `mofind serve` for the same index: an answer in well under a second.

Why: in-process, a query pays for importing torch and transformers and loading the model (~15 s on a
2-core machine) before a few milliseconds of search. A server that already holds the same index answers
the same `search` request. This module imports only json, os, pathlib and zmq: everything heavy stays in
the in-process path (`query.run`).

Which server: `--server ADDRESS`, else $MOFIND_SERVER, else the default `mofind serve` address. It is used
only when it answers `info` within `PROBE_MS` and serves the same index folder (and, with `--model`, the same
model name); otherwise the caller falls back to searching in-process.

Keys: `mofind serve` requires CurveZMQ client keys by default (mofind.server.keys). On the same machine the
CLI does what the Blender add-on does: it reads the server's public key from the user's config folder and
enrols its own key pair (`curve/cli/mofind-cli.key*`, owner-only) in the allowed-clients folder, once. A server
started with `--insecure` takes plain connections; the CLI tries keys first, then plain.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

DEFAULT_SERVER = "tcp://127.0.0.1:5555"  # mofind serve's default --bind
PROBE_MS = 300
SEARCH_MS = 60_000


class RemoteUnavailable(Exception):
    """No suitable server: search in-process instead (the message says why, for --verbose)."""


def server_address(explicit: str | None) -> str:
    return explicit or os.environ.get("MOFIND_SERVER") or DEFAULT_SERVER


def search_remote(address: str, index: Path, params: dict, explicit: bool = False) -> dict:
    """The server's `search` result for `params` (RemoteUnavailable when it cannot or should not answer).

    `explicit`: the user named the server, so its errors are reported instead of falling back.
    """
    if not explicit and not _listening(address):
        raise RemoteUnavailable(f"nothing listens on {address}")
    keys = _client_keys()
    attempts = [keys, None] if keys else [None]
    for number, curve in enumerate(attempts):
        try:
            return _search(address, index, params, explicit, curve)
        except RemoteUnavailable:
            if number + 1 == len(attempts):
                raise
    raise AssertionError("unreachable")


def _search(address: str, index: Path, params: dict, explicit: bool, curve: dict | None) -> dict:
    import zmq

    context = zmq.Context.instance()
    sock = context.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        for name, value in (curve or {}).items():
            setattr(sock, name, value)
        sock.connect(address)
        info = _call(sock, "info", {}, 5_000 if explicit else PROBE_MS)
        served = (info.get("index") or {}).get("path")
        if not served or _same_folder(served, index) is False:
            raise RemoteUnavailable(f"{address} serves {served}, not {index}")
        reply = _call(sock, "search", params, SEARCH_MS)
        return reply
    finally:
        sock.close(linger=0)


def _listening(address: str) -> bool:
    """A quick TCP connect, so that no server costs a refused connection (~1 ms), not the probe's timeout."""
    import socket
    from urllib.parse import urlsplit

    if not address.startswith("tcp://"):
        return True  # ipc:// and others: let the probe decide
    parts = urlsplit(address)
    try:
        with socket.create_connection((parts.hostname, parts.port), timeout=PROBE_MS / 1000):
            return True
    except (OSError, ValueError, TypeError):
        return False


def _call(sock, method: str, params: dict, timeout_ms: int) -> dict:
    header = {"v": 1, "id": method, "method": method, "params": params}
    sock.send_multipart([json.dumps(header).encode("utf-8")])
    if not sock.poll(timeout_ms):
        raise RemoteUnavailable(f"no answer to {method} within {timeout_ms} ms")
    reply = json.loads(sock.recv_multipart()[0])
    if not reply.get("ok"):
        error = reply.get("error") or {}
        raise RemoteError(error.get("code", "ERROR"), error.get("message", "the server refused the request"))
    return reply.get("result") or {}


class RemoteError(Exception):
    """The server answered with an error: the request itself is wrong (the same error in-process)."""

    def __init__(self, code: str, message: str):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


def _same_folder(a: str, b: Path) -> bool:
    try:
        return Path(a).resolve() == Path(b).expanduser().resolve()
    except OSError:
        return False


def _client_keys() -> dict | None:
    """CurveZMQ socket options for the local server (enrolling the CLI's own key once); None without keys."""
    try:
        from mofind.server.keys import KeySetupError, KeyStore, create_certificates, load_secret_certificate
    except ImportError:
        return None
    store = KeyStore.default()
    if not store.server_public_file.exists():
        return None  # no server ever made keys here: it runs --insecure or elsewhere
    try:
        folder = store.root / "cli"
        secret_file = folder / "mofind-cli.key_secret"
        if not secret_file.exists():
            create_certificates(folder, "mofind-cli")
        public, secret = load_secret_certificate(secret_file)
        enrolled = store.clients_dir / "mofind-cli.key"
        if not enrolled.exists():
            store.allow(public.decode("ascii"), "mofind-cli")
        server = store.server_public_key().encode("ascii")
    except (KeySetupError, OSError, ValueError):
        return None
    return {"curve_publickey": public, "curve_secretkey": secret, "curve_serverkey": server}
