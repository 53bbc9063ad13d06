"""A tiny real ZeroMQ ROUTER on loopback, scripted per test, for exercising the add-on client.

Not a mock of the backend: it speaks protocol v1 over real sockets, and each test decides
how it misbehaves (silence, out-of-order replies, errors, garbage).
"""

from __future__ import annotations

import json
import threading
from typing import Callable

import zmq

# handler(header, payload_frames, server) -> list of replies to send now; each reply is a list of frames
Handler = Callable[[dict, list[bytes], "ScriptedRouter"], list[list[bytes]]]


def ok(header: dict, result: dict, *frames: bytes, meta: dict | None = None) -> list[bytes]:
    reply = {"v": 1, "id": header["id"], "ok": True, "result": result}
    if meta is not None:
        reply["meta"] = meta
    return [json.dumps(reply).encode(), *frames]


def error(header: dict, code: str, message: str) -> list[bytes]:
    return [json.dumps({"v": 1, "id": header["id"], "ok": False,
                        "error": {"code": code, "message": message}}).encode()]


class ScriptedRouter:
    """ROUTER socket in a thread; records every request it sees (header dicts, in arrival order)."""

    def __init__(self, handler: Handler, *, curve_secret: bytes | None = None):
        self.handler = handler
        self.requests: list[dict] = []
        self.held: list[tuple[bytes, dict]] = []  # (identity, header) a handler chose to answer later
        self._context = zmq.Context()
        self._socket = self._context.socket(zmq.ROUTER)
        self._socket.setsockopt(zmq.LINGER, 0)
        if curve_secret is not None:
            self._socket.curve_server = True
            self._socket.curve_secretkey = curve_secret
        port = self._socket.bind_to_random_port("tcp://127.0.0.1")
        self.address = f"tcp://127.0.0.1:{port}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def __enter__(self) -> "ScriptedRouter":
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._socket.close(linger=0)
        self._context.term()

    def reply_to(self, identity: bytes, frames: list[bytes]) -> None:
        self._socket.send_multipart([identity, *frames])

    def _serve(self) -> None:
        while not self._stop.is_set():
            if not self._socket.poll(20, zmq.POLLIN):
                continue
            identity, *frames = self._socket.recv_multipart()
            header = json.loads(frames[0])
            self.requests.append(header)
            self._current_identity = identity
            for reply in self.handler(header, frames[1:], self):
                self.reply_to(identity, reply)

    @property
    def current_identity(self) -> bytes:
        """Identity of the client whose request the handler is processing now."""
        return self._current_identity
