"""Server-Sent Events wire format: an `Event` value and its encoding to bytes.

Pure code: no I/O, no Twisted. Data is split into lines on CR, LF and CRLF exactly as
the WHATWG HTML spec's event-stream parser splits them, so every client reassembles the
very bytes that were published (``str.splitlines`` would also split on U+2028, ``\\x0b``
and others, and would drop an empty event).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

__all__ = ["Event", "encode", "encode_comment", "encode_retry", "check_field"]

_LINE_BREAK = re.compile(rb"\r\n|\r|\n")
_FORBIDDEN_IN_FIELD = ("\r", "\n", "\0")


def check_field(name: str, value: str) -> None:
    """Raise ValueError when `value` can't be sent as the single-line field `name`."""
    if any(c in value for c in _FORBIDDEN_IN_FIELD):
        raise ValueError(f"{name} must not contain CR, LF or NUL")


@dataclass(frozen=True, slots=True)
class Event:
    """One event: raw `data` bytes plus an optional type and id (text, one line each)."""

    data: bytes
    event: str | None = None
    id: str | None = None

    def __post_init__(self) -> None:
        if self.event is not None:
            check_field("event type", self.event)
        if self.id is not None:
            check_field("event id", self.id)


def encode(event: Event) -> bytes:
    """The event as it goes on the wire, blank line included."""
    parts = []
    if event.id is not None:
        parts.append(b"id: " + event.id.encode("utf-8") + b"\n")
    if event.event is not None:
        parts.append(b"event: " + event.event.encode("utf-8") + b"\n")
    for line in _LINE_BREAK.split(event.data):
        parts.append(b"data: " + line + b"\n")
    parts.append(b"\n")
    return b"".join(parts)


def encode_comment(text: bytes = b"") -> bytes:
    """Comment lines (ignored by clients; keep idle connections alive).

    No blank line follows: a blank line ends an event, and some clients (httpx-sse)
    report an empty event for every blank line, also one after a comment.
    """
    return b"".join(b":" + line + b"\n" for line in _LINE_BREAK.split(text))


def encode_retry(milliseconds: int) -> bytes:
    """Tell the client how long to wait before it reconnects: one field line, no blank line after it.

    A client sets its reconnection time when it reads the line; the event (if any) that
    the line ends up in dispatches as it would without it.
    """
    return b"retry: " + str(int(milliseconds)).encode("ascii") + b"\n"
