"""A real HTTP/2 client for tests: the `h2` library on one TLS socket, with every knob in reach.

httpx and curl are the clients users have; this one lets a test stall one stream (never
acknowledge its data, so the server's flow-control window runs out), watch for GOAWAY,
and know for certain that every stream shares one connection.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass, field

import h2.config
import h2.connection
import h2.events

from tests.sse_parser import Dispatched, SSEParser


@dataclass
class H2Stream:
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: bool = False

    def events(self) -> list[Dispatched]:
        return SSEParser().feed(bytes(self.body))


class H2Client:
    """One HTTP/2 connection over TLS to 127.0.0.1:`port`, verified against `cafile`."""

    def __init__(self, port: int, cafile: str) -> None:
        context = ssl.create_default_context(cafile=cafile)
        context.set_alpn_protocols(["h2"])
        raw = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock = context.wrap_socket(raw, server_hostname="localhost")
        assert self.sock.selected_alpn_protocol() == "h2", self.sock.selected_alpn_protocol()
        self.conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.conn.initiate_connection()
        self.conn.increment_flow_control_window(1 << 24)  # the connection never limits; streams keep 64 KiB each
        self._send()
        self.streams: dict[int, H2Stream] = {}
        self.stalled: set[int] = set()
        """Streams whose data is never acknowledged: the server's window for them runs out."""
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.closed = False

    def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"", length: bool = True
    ) -> int:
        """Open a stream; `length=False` sends a body without declaring its length."""
        stream_id = self.conn.get_next_available_stream_id()
        pairs = [(":method", method), (":path", path), (":scheme", "https"), (":authority", "localhost")]
        pairs += list((headers or {}).items())
        if body and length:
            pairs.append(("content-length", str(len(body))))
        self.conn.send_headers(stream_id, pairs, end_stream=not body)
        if body:
            self.conn.send_data(stream_id, body, end_stream=True)
        self.streams[stream_id] = H2Stream()
        self._send()
        return stream_id

    def pump(self, timeout: float = 0.1) -> None:
        """Read what the server sent within `timeout` seconds and act on it."""
        if self.closed:
            time.sleep(timeout)
            return
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except (TimeoutError, ssl.SSLWantReadError):
            return
        except (ConnectionError, ssl.SSLError):
            data = b""
        if not data:
            self.closed = True
            return
        for event in self.conn.receive_data(data):
            self._handle(event)
        self._send()

    def run_until(self, condition, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while not condition():
            if time.monotonic() > deadline:
                raise TimeoutError(f"not true within {timeout}s: {condition}")
            self.pump()

    def close(self) -> None:
        self.sock.close()

    def _handle(self, event: h2.events.Event) -> None:
        if isinstance(event, h2.events.ResponseReceived):
            stream = self.streams[event.stream_id]
            stream.headers = dict(event.headers)
            stream.status = int(stream.headers[":status"])
        elif isinstance(event, h2.events.DataReceived):
            self.streams[event.stream_id].body += event.data
            if event.stream_id not in self.stalled:
                self.conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            self.streams[event.stream_id].ended = True
        elif isinstance(event, h2.events.StreamReset):
            self.streams[event.stream_id].reset = True
        elif isinstance(event, h2.events.ConnectionTerminated):
            self.goaway = event

    def _send(self) -> None:
        data = self.conn.data_to_send()
        if data:
            try:
                self.sock.sendall(data)
            except (ConnectionError, ssl.SSLError):
                self.closed = True
