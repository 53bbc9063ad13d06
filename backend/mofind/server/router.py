"""ZeroMQ plumbing: a ROUTER front end, a least-recently-used broker, and DEALER worker threads.

        clients (DEALER / REQ)  ->  ROUTER (bind)  ->  broker  ->  ROUTER inproc  ->  DEALER workers
                                                                                   (Backend.handle)

The broker hands a request only to a worker that said it is free (the ZeroMQ guide's load-balancing
broker), so one slow request never queues a quick one behind it while another worker idles. Indexing
runs in the job thread, not in a worker, so it never blocks searches.

Security: every bind needs CurveZMQ (server secret key + a folder of authorised client public keys, the
"ironhouse" pattern), loopback included, since other local users and programs are not to be trusted; the
only way out is an explicit `insecure=True`. The allowed-clients folder is read at each handshake, so
enrolling or revoking a client needs no restart (`keys.AllowedClients`).
"""

from __future__ import annotations

import ipaddress
import logging
import threading
import uuid
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

READY = b"\x00READY"
POLL_MS = 100


class BindRefusedError(ValueError):
    """The bind address or security settings are unsafe or unusable."""


@dataclass(frozen=True)
class Security:
    curve_secret_file: Path | None = None  # a zmq.auth certificate file holding the server's secret key
    curve_clients_dir: Path | None = None  # folder of authorised client public-key certificates
    insecure: bool = False

    @property
    def curve(self) -> bool:
        return self.curve_secret_file is not None


def bind_host(bind: str) -> str:
    """The host part of a tcp:// bind ("" for none); BindRefusedError when it cannot be read."""
    try:
        return urlsplit(bind).hostname or ""
    except ValueError as exc:  # e.g. tcp://[127.0.0.1]:5555 (brackets are for IPv6 only)
        raise BindRefusedError(f"bind address {bind!r} cannot be read ({exc}); write tcp://127.0.0.1:5555 or "
                               "tcp://[::1]:5555") from None


def is_loopback(bind: str) -> bool:
    """True for tcp binds on 127.0.0.0/8, ::1 or localhost, and for ipc:// / inproc:// endpoints."""
    scheme = bind.split("://", 1)[0]
    if scheme in ("ipc", "inproc"):
        return True
    if scheme != "tcp":
        return False
    host = bind_host(bind)
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a DNS name: treat as reachable from elsewhere


def check_bind(bind: str, security: Security) -> list[str]:
    """Refuse unsafe setups (BindRefusedError); returns warnings to print for allowed but risky ones."""
    if "://" not in bind:
        raise BindRefusedError(f"bind address {bind!r} must look like tcp://127.0.0.1:5555")
    loopback = is_loopback(bind)  # also validates the host part
    if bind.startswith("tcp://") and "[" in bind and ":" not in bind_host(bind):
        raise BindRefusedError(f"bind address {bind!r}: brackets are for IPv6 addresses only; write "
                               "tcp://127.0.0.1:PORT")
    if security.curve:
        if security.curve_clients_dir is None:
            raise BindRefusedError("--curve-secret needs --curve-clients DIR (the public keys of the clients "
                                   "allowed to connect)")
        if not Path(security.curve_secret_file).is_file():
            raise BindRefusedError(f"{security.curve_secret_file}: no such key file")
        if not Path(security.curve_clients_dir).is_dir():
            raise BindRefusedError(f"{security.curve_clients_dir}: no such folder of client keys")
        return []
    if not security.insecure:
        raise BindRefusedError(
            f"refusing to serve {bind} without authentication: other users and programs could search the "
            "library, read its files and change the index. Configure CurveZMQ (--curve-secret FILE "
            "--curve-clients DIR; `mofind serve` does this by itself unless told --insecure), or pass "
            "--insecure")
    if loopback:
        return [f"WARNING: serving {bind} without authentication (--insecure): every local user and program "
                "can search the library, read motion files that are in the index and change the index"]
    return [f"WARNING: serving {bind} unencrypted and unauthenticated (--insecure); any host that can reach "
            "this port can search the library and read motion files that are in the index"]


class Server:
    """Runs the broker loop (`run`, blocking) or in a thread (`start`); `stop()` from any thread or signal."""

    def __init__(self, backend, bind: str = "tcp://127.0.0.1:5555", *, workers: int = 4,
                 security: Security = Security()):
        check_bind(bind, security)
        self.backend = backend
        self.bind = bind
        self.workers = max(1, workers)
        self.security = security
        self.endpoint: str | None = None  # the bound address (the real port when bind ends in :0 or :*)
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self, timeout: float = 30.0) -> str:
        """Run in a background thread; returns the bound endpoint once clients can connect."""
        self._thread = threading.Thread(target=self._run_safely, name="mofind-broker", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            raise RuntimeError("the server did not start in time")
        if self._error is not None:
            raise self._error
        return self.endpoint

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        if self._thread is not None:
            self._thread.join(timeout)

    def run(self) -> None:
        """Serve until `stop()`; sockets are closed and worker threads joined before returning."""
        import zmq

        context = zmq.Context()
        authenticator = None
        workers: list[threading.Thread] = []
        frontend = backend = None
        try:
            frontend = context.socket(zmq.ROUTER)
            frontend.setsockopt(zmq.LINGER, 0)
            frontend.setsockopt(zmq.MAXMSGSIZE, self.backend.limits.socket_max_bytes)
            if "[" in self.bind:
                frontend.setsockopt(zmq.IPV6, 1)
            if self.security.curve:
                authenticator = self._configure_curve(context, frontend)
            else:
                authenticator = self._refuse_zmtp10(context, frontend)
            if self.bind.endswith(":0"):
                port = frontend.bind_to_random_port(self.bind.rsplit(":", 1)[0])
                self.endpoint = f"{self.bind.rsplit(':', 1)[0]}:{port}"
            else:
                frontend.bind(self.bind)
                self.endpoint = frontend.getsockopt_string(zmq.LAST_ENDPOINT)
            backend = context.socket(zmq.ROUTER)
            backend.setsockopt(zmq.LINGER, 0)
            inproc = f"inproc://mofind-workers-{uuid.uuid4().hex}"
            backend.bind(inproc)
            for number in range(self.workers):
                thread = threading.Thread(target=self._worker, args=(context, inproc), daemon=True,
                                          name=f"mofind-worker-{number}")
                thread.start()
                workers.append(thread)
            self._ready.set()
            self._broker(frontend, backend)
        finally:
            self._stop.set()
            for thread in workers:
                thread.join(10)
            for sock in (frontend, backend):
                if sock is not None:
                    sock.close(linger=0)
            if authenticator is not None:
                authenticator.stop()
            context.term()

    def _run_safely(self) -> None:
        try:
            self.run()
        except BaseException as exc:  # noqa: BLE001 - surfaced to start()'s caller
            self._error = exc
            self._ready.set()
            if not isinstance(exc, Exception):
                raise

    # -- sockets -----------------------------------------------------------------------------------------
    def _configure_curve(self, context, frontend):
        from zmq.auth.thread import ThreadAuthenticator

        from .keys import AllowedClients, KeySetupError, load_secret_certificate

        try:
            public, secret = load_secret_certificate(Path(self.security.curve_secret_file))
        except KeySetupError as exc:
            raise BindRefusedError(str(exc)) from None
        authenticator = ThreadAuthenticator(context)
        authenticator.start()
        authenticator.configure_curve_callback(domain="*",
                                               credentials_provider=AllowedClients(self.security.curve_clients_dir))
        frontend.curve_secretkey = secret
        frontend.curve_publickey = public
        frontend.curve_server = True
        return authenticator

    @staticmethod
    def _refuse_zmtp10(context, frontend):
        """--insecure still refuses ZMTP/1.0 peers: libzmq skips the handshake for them, so bytes a browser
        sends (a cross-site HTTP POST to 127.0.0.1) could be read as a request. With a ZAP domain set, libzmq
        rejects every 1.0 peer; the authenticator lets every ZMTP/3 NULL client in (that is what --insecure
        means)."""
        from zmq.auth.thread import ThreadAuthenticator

        authenticator = ThreadAuthenticator(context)
        authenticator.start()
        frontend.zap_domain = b"mofind"
        return authenticator

    def _broker(self, frontend, backend) -> None:
        import zmq

        free: deque[bytes] = deque()
        workers_only = zmq.Poller()
        workers_only.register(backend, zmq.POLLIN)
        both = zmq.Poller()
        both.register(backend, zmq.POLLIN)
        both.register(frontend, zmq.POLLIN)
        while not self._stop.is_set():
            events = dict((both if free else workers_only).poll(POLL_MS))
            if backend in events:
                worker, *reply = backend.recv_multipart()
                free.append(worker)
                if reply != [READY]:
                    frontend.send_multipart(reply)  # [client identity, (delimiter,) header, frames...]
            if frontend in events and free:
                request = frontend.recv_multipart()
                backend.send_multipart([free.popleft(), *request])

    def _worker(self, context, endpoint: str) -> None:
        import zmq

        sock = context.socket(zmq.DEALER)
        sock.setsockopt(zmq.LINGER, 0)
        sock.connect(endpoint)
        sock.send(READY)
        try:
            while not self._stop.is_set():
                if not sock.poll(POLL_MS):
                    continue
                client, *frames = sock.recv_multipart()
                envelope = [client]
                if frames and frames[0] == b"":  # a REQ client: keep its delimiter frame
                    envelope.append(b"")
                    frames = frames[1:]
                sock.send_multipart([*envelope, *self.backend.handle(frames)])
        finally:
            sock.close(linger=0)
