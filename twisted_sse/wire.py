"""Writing events to one client: the hot path of fan-out.

An HTTP/1.1 stream is chunked, so the hub frames each block of events as a chunk once,
for every client (`Block`). Writing it goes straight to the socket while the transport has nothing
buffered: one send() per delivery instead of Twisted's buffered path (append, register
for writability with epoll, wait a reactor turn, send, unregister). As soon as a send is
short the rest goes through the transport as usual, and from then on everything does
until its buffer drains, so order and producer back-pressure are Twisted's own.
HTTP/1.0 and TLS responses always take the ordinary `Request.write` path.
"""

from __future__ import annotations

from typing import Any

from twisted.web.server import Request

from twisted_sse.history import EventKey

__all__ = ["frame", "Block", "Writer"]


def frame(data: bytes) -> bytes:
    """`data` as one HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class Block:
    """Events that go out together: encoded once, joined once, framed once, for every client.

    A broker hands the hub what arrived in one read (one reactor turn); every client of a
    channel then gets the whole block in one write. `first` and `last` are the keys of
    its first and last events with ids, for skipping what a client already has.
    """

    __slots__ = ("items", "data", "framed", "first", "last")

    def __init__(self, items: list[tuple[EventKey | None, bytes]]) -> None:
        self.items = items
        self.data = items[0][1] if len(items) == 1 else b"".join(data for _, data in items)
        self.framed = frame(self.data)
        keys = [key for key, _ in items if key is not None]
        self.first = keys[0] if keys else None
        self.last = keys[-1] if keys else None


class Writer:
    """Writes encoded events to one response; call once the response has started."""

    __slots__ = ("_request", "_transport", "_send")

    def __init__(self, request: Request) -> None:
        self._request = request
        transport: Any = request.channel.transport if request.channel is not None else None
        plain_tcp = getattr(transport, "TLS", True) is False and hasattr(transport, "socket")
        self._transport = transport if request.chunked and plain_tcp else None
        self._send: Any = transport.socket.send if self._transport is not None else None

    def write(self, data: bytes, framed: bytes) -> None:
        """Write one encoded event; `framed` is the same bytes framed as a chunk."""
        transport = self._transport
        if transport is None:
            self._request.write(data)
            return
        # Twisted's FileDescriptor buffer: only an idle, open transport may be bypassed.
        if (
            transport._tempDataLen
            or len(transport.dataBuffer) > transport.offset
            or not transport.connected
            or transport.disconnecting
            or transport._writeDisconnected
        ):
            transport.write(framed)
            return
        try:
            sent = self._send(framed)
        except BlockingIOError:
            sent = 0
        except OSError:
            return  # the connection is gone; the reactor reports it and the stream cleans up
        if sent < len(framed):
            transport.write(framed[sent:])
