"""Ticket: what a caller holds while a request is in flight, and how errors become Failures."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from .wire import Failure, Reply

log = logging.getLogger(__name__)

ADDON_ERROR = "ADDON"


@dataclass
class Ticket:
    """The outcome of one request and of the work its reply triggered (`value`)."""

    method: str
    id: str = ""
    done: bool = False
    reply: Reply | None = None
    failure: Failure | None = None
    value: Any = None

    @property
    def ok(self) -> bool:
        return self.done and self.failure is None

    @property
    def message(self) -> str:
        return self.failure.message if self.failure else ""


def failure_from_exception(method: str, exc: Exception, request_id: str = "") -> Failure:
    """An add-on side error (bad reply content, a rig that cannot take the clip) as a Failure.

    The traceback goes to the log for bug reports; the user sees the exception's message.
    """
    expected = isinstance(exc, (ValueError, LookupError))  # user-facing conditions need no traceback
    log.error("MoFind: handling '%s' failed: %s", method, exc, exc_info=None if expected else exc)
    return Failure(request_id, method, ADDON_ERROR, str(exc) or type(exc).__name__)
