"""An event-stream parser written from the WHATWG HTML spec, section 9.2.6, for tests.

It is deliberately independent of `twisted_sse.core._framing`: what it accepts is what a
browser's EventSource would dispatch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(r"\r\n|\r|\n")


@dataclass(frozen=True)
class Dispatched:
    type: str
    data: str
    last_event_id: str


class SSEParser:
    """Feed it bytes as they arrive; it returns the events a browser would dispatch."""

    def __init__(self) -> None:
        self._buffer = ""
        self._bytes = b""
        self._first = True
        self._data = ""
        self._type = ""
        self._last_id = ""
        self.retry: int | None = None
        self.comments: list[str] = []

    def feed(self, chunk: bytes) -> list[Dispatched]:
        self._bytes += chunk
        # Decode only complete UTF-8 sequences; keep a split one for the next chunk.
        for cut in range(len(self._bytes), max(len(self._bytes) - 4, -1), -1):
            try:
                text = self._bytes[:cut].decode("utf-8")
            except UnicodeDecodeError:
                continue
            self._bytes = self._bytes[cut:]
            break
        else:
            text = self._bytes.decode("utf-8", "replace")
            self._bytes = b""
        if self._first and text:
            text = text.removeprefix("\ufeff")
            self._first = False
        self._buffer += text
        events = []
        while True:
            match = _LINE.search(self._buffer)
            # A lone CR at the end may be the first half of CRLF: wait for more.
            if match is None or (match.group() == "\r" and match.end() == len(self._buffer)):
                break
            line, self._buffer = self._buffer[: match.start()], self._buffer[match.end() :]
            event = self._line(line)
            if event is not None:
                events.append(event)
        return events

    def _line(self, line: str) -> Dispatched | None:
        if line == "":
            return self._dispatch()
        if line.startswith(":"):
            self.comments.append(line[1:])
            return None
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "event":
            self._type = value
        elif field == "data":
            self._data += value + "\n"
        elif field == "id":
            if "\0" not in value:
                self._last_id = value
        elif field == "retry":
            if value and all(c in "0123456789" for c in value):
                self.retry = int(value)
        return None

    def _dispatch(self) -> Dispatched | None:
        if self._data == "":
            self._type = ""
            return None
        event = Dispatched(self._type or "message", self._data[:-1], self._last_id)
        self._data = ""
        self._type = ""
        return event


def parse(stream: bytes) -> list[Dispatched]:
    """Every event a browser would dispatch from the complete `stream`."""
    return SSEParser().feed(stream)
