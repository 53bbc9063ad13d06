"""The MoFind wire format (protocol v1): JSON header frame + binary frames, never pickle.

No bpy and no zmq here, so the format can be tested and reused on its own. See
docs/architecture.md ("Wire protocol") and docs/protocol.md for the full text.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 1

#: Error codes the client itself produces (the backend's own codes pass through unchanged).
TIMEOUT = "TIMEOUT"
UNREACHABLE = "UNREACHABLE"  # no connection to the backend at all (nothing listening, host unreachable)
BAD_REPLY = "BAD_REPLY"
CLOSED = "CLOSED"
NOT_SENT = "NOT_SENT"


class WireError(ValueError):
    """A reply that does not follow protocol v1 (not JSON, no id, wrong version...)."""


@dataclass
class Reply:
    """A successful reply: `result` with every `{"$frame": i}` reference still in place."""

    id: str
    result: dict
    frames: list[bytes] = field(default_factory=list)
    meta: dict = field(default_factory=dict)  # e.g. {"offline": {...}}: part of the library was not searched


@dataclass
class Failure:
    """Why a request failed: a backend error reply, a timeout, or a malformed reply."""

    id: str
    method: str
    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.message} [{self.code}]"


def encode_request(request_id: str, method: str, params: dict | None = None) -> bytes:
    """Frame 0 of a request."""
    header = {"v": PROTOCOL_VERSION, "id": request_id, "method": method, "params": params or {}}
    return json.dumps(header, separators=(",", ":")).encode("utf-8")


def decode_reply(frames: list[bytes]) -> tuple[str, dict, list[bytes]]:
    """Split a reply into (request id, header, binary frames); raises WireError when malformed."""
    if not frames:
        raise WireError("empty reply")
    try:
        header = json.loads(frames[0].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise WireError(f"reply header is not JSON: {exc}") from None
    if not isinstance(header, dict) or not isinstance(header.get("id"), str):
        raise WireError("reply header has no request id")
    return header["id"], header, list(frames[1:])


def reply_outcome(header: dict, frames: list[bytes], method: str) -> Reply | Failure:
    """Turn a decoded reply header into a Reply or a Failure (never raises)."""
    request_id = header["id"]
    if header.get("v") != PROTOCOL_VERSION:
        return Failure(request_id, method, "VERSION",
                       f"The MoFind backend speaks protocol v{header.get('v')}, this add-on v{PROTOCOL_VERSION}: "
                       "update the add-on or the backend so they match.")
    if header.get("ok") is True and isinstance(header.get("result"), dict):
        meta = header.get("meta")
        return Reply(request_id, header["result"], frames, meta if isinstance(meta, dict) else {})
    error = header.get("error")
    if header.get("ok") is False and isinstance(error, dict):
        return Failure(request_id, method, str(error.get("code", "INTERNAL")),
                       str(error.get("message") or "the backend reported an error without a message"))
    return Failure(request_id, method, BAD_REPLY, f"The MoFind backend sent a malformed reply to '{method}'.")


def frame_bytes(ref: Any, frames: list[bytes]) -> bytes | None:
    """The bytes a `{"$frame": i}` reference points at (thumbnails), None for null/absent references."""
    if not isinstance(ref, dict) or "$frame" not in ref:
        return None
    index = ref["$frame"]
    if not isinstance(index, int) or not 0 <= index < len(frames):
        raise WireError(f"reply references frame {index!r} but carries {len(frames)} binary frames")
    return frames[index]


def frame_array(ref: Any, frames: list[bytes]):
    """The numpy array a `{"$frame": i, "dtype": ..., "shape": [...]}` reference describes."""
    import numpy as np  # Blender ships numpy; imported here so the header code needs nothing

    data = frame_bytes(ref, frames)
    if data is None:
        raise WireError("expected an array frame reference, got " + repr(ref))
    try:
        dtype = np.dtype(ref["dtype"])
        shape = tuple(int(n) for n in ref["shape"])
        return np.frombuffer(data, dtype=dtype).reshape(shape).copy()
    except (KeyError, TypeError, ValueError) as exc:
        raise WireError(f"array frame {ref.get('$frame')} does not match its dtype/shape: {exc}") from None


def resolve_arrays(result: dict, frames: list[bytes]) -> dict:
    """A copy of `result` where every top-level array reference is replaced by its numpy array."""
    resolved = dict(result)
    for key, value in result.items():
        if isinstance(value, dict) and "$frame" in value and "dtype" in value:
            resolved[key] = frame_array(value, frames)
    return resolved
