"""What goes through Redis pub/sub, and the one place Redis payloads are decoded.

A payload published by any Redis client is delivered as it is: its bytes are the
event's data, with no type and no id. Durable events (published by the Lua script in
`twisted_sse.redis_scripts`) are wrapped in an envelope:

    NUL "sse1" JSON-header LF data

for example  b'\\x00sse1{"id":"1795725017952-0","event":"headline"}\\nthe data'. The
header is a JSON object on one line (JSON escapes line breaks) with an "id" and an
optional "event" string; the data follows byte for byte. A raw payload only reads as an
envelope if it starts with NUL "sse1" and a valid header, which no text payload does by
accident.
"""

from __future__ import annotations

import json

from twisted_sse.framing import Event

__all__ = ["MARK", "unpack"]

MARK = b"\x00sse1"


def unpack(payload: bytes) -> Event:
    """The event a pub/sub payload stands for: an envelope's, or the raw bytes as data."""
    if payload.startswith(MARK):
        header_bytes, newline, data = payload[len(MARK) :].partition(b"\n")
        if newline:
            try:
                header = json.loads(header_bytes)
                return Event(data, _text(header, "event"), _text(header, "id"))
            except (ValueError, TypeError, AttributeError):
                pass  # not one of ours after all: deliver it raw
    return Event(payload)


def _text(header: dict[str, object], name: str) -> str | None:
    value = header.get(name)
    if value is None or isinstance(value, str):
        return value
    raise TypeError(name)
