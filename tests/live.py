"""A live SSE stream for integration tests: a real HTTP/1.1 client reading a real daemon's events."""

from __future__ import annotations

import http.client

from tests.sse_parser import Dispatched, SSEParser


class LiveStream:
    """A real HTTP client reading one event stream."""

    def __init__(self, port: int, path: str, headers: dict[str, str] | None = None, timeout: float = 5):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
        self.conn.request("GET", path, headers=headers or {})
        self.response = self.conn.getresponse()
        self.parser = SSEParser()
        self.events: list[Dispatched] = []

    def read(self, count: int) -> list[Dispatched]:
        """Block until `count` events arrived in all; return them."""
        while len(self.events) < count:
            chunk = self.response.read1(65536)
            if not chunk:
                raise EOFError(f"stream ended after {len(self.events)} events")
            self.events += self.parser.feed(chunk)
        return self.events[:count]

    def close(self) -> None:
        self.conn.close()
