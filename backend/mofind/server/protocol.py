"""Wire protocol v1: JSON header frame + binary frames, validated before any handler sees it.

Every way a request can be wrong maps to one error code (see docs/protocol.md); nothing a client sends
can raise out of `parse_request`, so the server always answers and keeps serving. No pickle anywhere:
headers are JSON, arrays are raw little-endian bytes described by dtype and shape.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field

import numpy as np

PROTOCOL_VERSION = 1

BAD_JSON = "BAD_JSON"
BAD_REQUEST = "BAD_REQUEST"
UNKNOWN_METHOD = "UNKNOWN_METHOD"
TOO_LARGE = "TOO_LARGE"
NOT_FOUND = "NOT_FOUND"
INTERNAL = "INTERNAL"
BUSY = "BUSY"
CANCELLED = "CANCELLED"
VERSION = "VERSION"
FORBIDDEN = "FORBIDDEN"
ERROR_CODES = (BAD_JSON, BAD_REQUEST, UNKNOWN_METHOD, TOO_LARGE, NOT_FOUND, INTERNAL, BUSY, CANCELLED, VERSION,
               FORBIDDEN)
INT_MAX = 2**63 - 1  # integers in a request must fit a signed 64-bit integer (JSON readers disagree beyond)

ID_MAX_CHARS = 128
METHOD_MAX_CHARS = 64


@dataclass(frozen=True)
class Limits:
    """Request caps; anything larger is answered with TOO_LARGE (and never parsed)."""

    max_request_bytes: int = 1 << 20  # all frames of one request together
    max_frames: int = 4  # header + binary frames per request (v1 methods take no binary payload)
    max_query_chars: int = 1000
    max_k: int = 500
    max_paths: int = 10_000
    max_path_chars: int = 4096
    max_clip_ids: int = 100_000
    max_motion_frames: int = 500_000  # source frames one get_motion may return (~70 min at 120 fps)
    max_queued_jobs: int = 8  # indexing jobs waiting or running; index_add beyond it is BUSY
    max_job_failures_listed: int = 100  # `failed` entries per job in index_status (`failed_count` has them all)

    @property
    def socket_max_bytes(self) -> int:
        """Hard cap given to ZeroMQ (ZMQ_MAXMSGSIZE, checked per frame as it arrives): a larger frame drops the
        connection before it is buffered; between this and max_request_bytes the client gets TOO_LARGE."""
        return 4 * self.max_request_bytes

    def to_dict(self) -> dict:
        return {name: getattr(self, name) for name in ("max_request_bytes", "max_frames", "max_query_chars",
                                                       "max_k", "max_paths", "max_clip_ids", "max_motion_frames",
                                                       "max_queued_jobs")}


class ProtocolError(Exception):
    """A request that gets an error reply; `code` is one of ERROR_CODES."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Request:
    id: str | int | None
    method: str
    params: dict
    payloads: list[bytes] = field(default_factory=list)


_ID_RE = re.compile(rb'"id"\s*:\s*("(?:[^"\\]|\\.){0,128}"|-?\d{1,19})[\s,}]')
PEEK_BYTES = 4096  # how much of an oversize header is scanned (not parsed) for its id


def peek_id(header_frame: bytes, max_bytes: int = 1 << 20):
    """Best-effort request id of a header that failed validation, so the error reply can still be matched.

    A header larger than `max_bytes` is never JSON-parsed (the size cap comes first): only its first
    PEEK_BYTES are scanned for an `"id": ...` member.
    """
    if len(header_frame) > max_bytes:
        match = _ID_RE.search(header_frame[:PEEK_BYTES])
        if match is None:
            return None
        header_frame = b'{"id": ' + match.group(1) + b"}"
    try:
        header = json.loads(header_frame)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    if isinstance(header, dict) and _valid_id(header.get("id")):
        return header.get("id")
    return None


def parse_request(frames: list[bytes], limits: Limits) -> Request:
    if not frames:
        raise ProtocolError(BAD_REQUEST, "empty message: frame 0 must be the JSON header")
    if len(frames) > limits.max_frames:
        raise ProtocolError(TOO_LARGE, f"{len(frames)} frames; at most {limits.max_frames} per request")
    size = sum(len(f) for f in frames)
    if size > limits.max_request_bytes:
        raise ProtocolError(TOO_LARGE, f"request is {size} bytes; at most {limits.max_request_bytes}")
    try:
        header = json.loads(frames[0].decode("utf-8"), parse_constant=_reject_constant)
    except UnicodeDecodeError:
        raise ProtocolError(BAD_JSON, "frame 0 is not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise ProtocolError(BAD_JSON, f"frame 0 is not valid JSON ({str(exc)[:120]})") from None
    if not isinstance(header, dict):
        raise ProtocolError(BAD_REQUEST, "the header must be a JSON object")
    request_id = header.get("id")
    if not _valid_id(request_id):
        raise ProtocolError(BAD_REQUEST, f"'id' must be a string of at most {ID_MAX_CHARS} characters or an integer")
    version = header.get("v")
    if type(version) is not int:  # true == 1 in Python; the protocol says the integer 1
        raise ProtocolError(BAD_REQUEST, f"'v' must be the integer {PROTOCOL_VERSION}")
    if version != PROTOCOL_VERSION:
        raise ProtocolError(VERSION, f"protocol version {version!r} is not supported; this server speaks "
                                     f"v={PROTOCOL_VERSION}")
    method = header.get("method")
    if not isinstance(method, str) or not method or len(method) > METHOD_MAX_CHARS:
        raise ProtocolError(BAD_REQUEST, "'method' must be a non-empty string")
    params = header.get("params", {})
    if params is None:
        params = {}
    if not isinstance(params, dict):
        raise ProtocolError(BAD_REQUEST, "'params' must be a JSON object")
    unknown = sorted(set(header) - {"v", "id", "method", "params"})
    if unknown:
        raise ProtocolError(BAD_REQUEST, f"unknown header field(s): {', '.join(unknown)[:200]}")
    _check_values(params)
    return Request(id=request_id, method=method, params=params, payloads=list(frames[1:]))


def _check_values(value) -> None:
    """BAD_REQUEST for values no method can use: integers beyond 64 bits, strings that are not Unicode text
    (lone surrogates, which JSON's \\u escapes allow); one place, so no handler meets them."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if not _is_text(key):
                    raise ProtocolError(BAD_REQUEST, "a parameter name is not valid Unicode text")
                stack.append(inner)
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, int) and not isinstance(item, bool) and not -INT_MAX - 1 <= item <= INT_MAX:
            raise ProtocolError(BAD_REQUEST, f"integer {str(item)[:30]}... does not fit 64 bits")
        elif isinstance(item, str) and not _is_text(item) and not _is_escaped_path(item):
            raise ProtocolError(BAD_REQUEST, "a string holds a lone UTF-16 surrogate (not valid Unicode text)")


def _is_text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _is_escaped_path(value: str) -> bool:
    """A file name that is not UTF-8, as Python writes it (os.fsdecode: undecodable bytes -> U+DC80..U+DCFF);
    results carry such paths and clients send them back, so they pass here and only path parameters use them."""
    try:
        value.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return False
    return True


def _valid_id(value) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int):
        return abs(value) < 2**63
    return isinstance(value, str) and len(value) <= ID_MAX_CHARS


def _reject_constant(name: str):
    raise ValueError(f"{name} is not valid JSON")


# -- replies ----------------------------------------------------------------------------------------------
class FrameSet:
    """Binary frames of one reply; `add_*` return the `{"$frame": i, ...}` reference to put in the result."""

    def __init__(self):
        self.frames: list[bytes] = []

    def add_array(self, array: np.ndarray, dtype=np.float32) -> dict:
        array = np.ascontiguousarray(array, dtype=np.dtype(dtype).newbyteorder("<"))
        self.frames.append(array.tobytes())
        return {"$frame": len(self.frames) - 1, "dtype": np.dtype(dtype).name, "shape": list(array.shape)}

    def add_bytes(self, data: bytes, media_type: str) -> dict:
        self.frames.append(bytes(data))
        return {"$frame": len(self.frames) - 1, "type": media_type}


def ok_reply(request_id, result: dict, frames: FrameSet | None = None, meta: dict | None = None) -> list[bytes]:
    header = {"v": PROTOCOL_VERSION, "id": request_id, "ok": True, "result": result}
    if meta:
        header["meta"] = meta
    return [_dump(header), *(frames.frames if frames is not None else [])]


def error_reply(request_id, code: str, message: str) -> list[bytes]:
    header = {"v": PROTOCOL_VERSION, "id": request_id, "ok": False, "error": {"code": code, "message": message}}
    return [_dump(header)]


def _dump(header: dict) -> bytes:
    return json.dumps(header, separators=(",", ":"), allow_nan=False, default=_json_default).encode("utf-8")


def _json_default(value):
    if isinstance(value, np.generic):
        value = value.item()
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


# -- parameter validation ---------------------------------------------------------------------------------
class Params:
    """Typed access to a request's params; every mistake is a BAD_REQUEST naming the field."""

    def __init__(self, data: dict, allowed: tuple[str, ...]):
        unknown = sorted(set(data) - set(allowed))
        if unknown:
            raise ProtocolError(BAD_REQUEST, f"unknown parameter(s): {', '.join(unknown)[:200]}; "
                                             f"allowed: {', '.join(allowed) or 'none'}")
        self.data = data

    def string(self, name: str, *, required: bool = True, default: str | None = None, max_chars: int = 4096,
               non_empty: bool = True, path: bool = False) -> str | None:
        """A string parameter; `path=True` also accepts a surrogate-escaped non-UTF-8 file name."""
        value = self.data.get(name)
        if value is None:
            if required:
                raise ProtocolError(BAD_REQUEST, f"missing parameter '{name}' (a string)")
            return default
        if not isinstance(value, str):
            raise ProtocolError(BAD_REQUEST, f"parameter '{name}' must be a string")
        if not path and not _is_text(value):
            raise ProtocolError(BAD_REQUEST, f"parameter '{name}' is not valid Unicode text (a lone surrogate)")
        if non_empty and not value.strip():
            raise ProtocolError(BAD_REQUEST, f"parameter '{name}' must not be empty")
        if len(value) > max_chars:
            raise ProtocolError(TOO_LARGE, f"parameter '{name}' is longer than {max_chars} characters")
        return value

    def integer(self, name: str, *, default: int | None = None, required: bool = False, low: int | None = None,
                high: int | None = None, high_code: str = BAD_REQUEST) -> int | None:
        value = self.data.get(name)
        if value is None:
            if required:
                raise ProtocolError(BAD_REQUEST, f"missing parameter '{name}' (an integer)")
            return default
        if isinstance(value, bool) or not isinstance(value, int):
            raise ProtocolError(BAD_REQUEST, f"parameter '{name}' must be an integer")
        if low is not None and value < low:
            raise ProtocolError(BAD_REQUEST, f"parameter '{name}' must be at least {low}")
        if high is not None and value > high:
            raise ProtocolError(high_code, f"parameter '{name}' must be at most {high}")
        return value

    def number(self, name: str, *, default: float, low: float, high: float) -> float:
        """A finite number (int or float) in [low, high]; `default` when absent."""
        value = self.data.get(name)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise ProtocolError(BAD_REQUEST, f"parameter '{name}' must be a number")
        if not low <= value <= high:
            raise ProtocolError(BAD_REQUEST, f"parameter '{name}' must be between {low:g} and {high:g}")
        return float(value)

    def boolean(self, name: str, default: bool) -> bool:
        value = self.data.get(name)
        if value is None:
            return default
        if not isinstance(value, bool):
            raise ProtocolError(BAD_REQUEST, f"parameter '{name}' must be true or false")
        return value

    def mapping(self, name: str) -> dict | None:
        value = self.data.get(name)
        if value is not None and not isinstance(value, dict):
            raise ProtocolError(BAD_REQUEST, f"parameter '{name}' must be an object")
        return value

    def strings(self, name: str, *, max_items: int, max_chars: int, required: bool = True,
                path: bool = False) -> list[str] | None:
        value = self.data.get(name)
        if value is None:
            if required:
                raise ProtocolError(BAD_REQUEST, f"missing parameter '{name}' (a list of strings)")
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise ProtocolError(BAD_REQUEST, f"parameter '{name}' must be a list of non-empty strings")
        if not path and not all(_is_text(v) for v in value):
            raise ProtocolError(BAD_REQUEST, f"an item of '{name}' is not valid Unicode text (a lone surrogate)")
        if len(value) > max_items:
            raise ProtocolError(TOO_LARGE, f"parameter '{name}' has {len(value)} items; at most {max_items}")
        if any(len(v) > max_chars for v in value):
            raise ProtocolError(TOO_LARGE, f"an item of '{name}' is longer than {max_chars} characters")
        return value
