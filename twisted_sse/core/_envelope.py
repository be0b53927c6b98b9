"""What goes through Redis pub/sub, and the one place Redis payloads are decoded.

A payload published by any Redis client on a channel's pub/sub name (`sse:news`) is
delivered as it is, whatever it contains: its bytes are the event's data, with no type
and no id. Durable events are published by the Lua script in `twisted_sse.redis._scripts`
on a pub/sub channel of their own, `sse:#events:news`, which no channel name maps to (a
channel name has no `#`), wrapped in an envelope:

    NUL "sse2" JSON-header LF data

for example  b'\\x00sse2{"id":"1795725017952-0","event":"headline"}\\nthe data'. The
header is a JSON object on one line (JSON escapes line breaks) with an "id" and an
optional "event" string; the data follows byte for byte. So a raw PUBLISH can't pass
for a durable event, however it is crafted (version 1 took envelopes from the raw
channel, and a crafted payload could forge an id there).
"""

from __future__ import annotations

import json

from twisted_sse.core._framing import Event

__all__ = ["MARK", "unpack", "raw"]

MARK = b"\x00sse2"


def raw(payload: bytes) -> Event:
    """The event a payload on a channel's raw pub/sub name stands for: its bytes as data."""
    return Event(payload)


def unpack(payload: bytes) -> Event:
    """The event a payload on a durable pub/sub channel stands for (its raw bytes if it is no envelope)."""
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
