"""The one place where a stream's bytes go onto an HTTP response: the fan-out's hot path.

Everything a stream sends (the opening `retry:`, blocks of events, heartbeats, the
closing `retry:`) goes through a `ResponseWriter`. It writes through `Request.write`,
which frames HTTP/1.1 chunks (and writes HTTP/1.0 bodies raw), except where public facts
prove a shortcut safe: the request is not secure, its transport is exactly a plain
`twisted.internet.tcp.Server` and the response is HTTP/1.1 chunked. Then, while that
transport has nothing buffered, the chunk goes straight to the socket: one send() per
delivery instead of Twisted's buffered path (append, register for writability with
epoll, wait a reactor turn, send, unregister). As soon as a send is short the rest goes
through the transport, and from then on everything does until its buffer drains, so
order and producer back-pressure stay Twisted's own. TLS, UNIX sockets, HTTP/1.0 and
anything else (HTTP/2) always take `Request.write`.

The hub hands the same block to every listener of a channel one after the other, so the
block's chunk is framed once and reused (`_chunk_of`).
"""

from __future__ import annotations

from typing import Any

from twisted.internet import tcp
from twisted.internet.error import ConnectionAborted
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Request

from twisted_sse.core import Block

__all__ = ["ResponseWriter", "chunk", "cut", "takes_shortcut"]


def chunk(data: bytes) -> bytes:
    """`data` as one HTTP/1.1 chunk."""
    return b"%x\r\n%s\r\n" % (len(data), data)


class _LastChunk:
    """The most recent block and its chunk: reused while the hub hands it to listener after listener."""

    block: Block | None = None
    chunk = b""


_last = _LastChunk()


def _chunk_of(block: Block) -> bytes:
    if _last.block is not block:
        _last.block = block
        _last.chunk = chunk(block.data)
    return _last.chunk


def takes_shortcut(request: Request) -> bool:
    """True when `request`'s chunks may be sent straight to its socket (decided by public facts only).

    Call it once the response has started (the first `Request.write` decides chunking).
    """
    channel = request.channel
    return (
        not request.isSecure()
        and isinstance(channel, HTTPChannel)
        and type(channel.transport) is tcp.Server
        and request.clientproto == b"HTTP/1.1"
        and bool(request.chunked)
    )


def transport_is_idle(transport: tcp.Server) -> bool:
    """True when a plain TCP transport is open and has nothing buffered: the only time a send may bypass it.

    This is the one place that reads Twisted's private `FileDescriptor` buffer attributes
    (checked on Twisted 26.x, which setup.py pins); tests/test_writer.py fails if they change.
    """
    return not (
        transport._tempDataLen
        or len(transport.dataBuffer) > transport.offset
        or not transport.connected
        or transport.disconnecting
        or transport._writeDisconnected
    )


def cut(request: Request) -> None:
    """End a response at once, dropping what is unsent.

    HTTP/1.x: its connection is aborted. HTTP/2: a request has no transport of its own
    (its streams share one connection), so only its stream is reset; the others go on.
    """
    if request.transport is not None:
        getattr(request.transport, "abortConnection", request.transport.loseConnection)()
        return
    channel: Any = request.channel
    if channel is not None:
        channel.abortConnection()
        # Twisted's HTTP/2 stream forgets itself on a reset it sent without telling its
        # request: tell it, so that notifyFinish fires and the stream is released.
        request.connectionLost(Failure(ConnectionAborted("response cut")))


class ResponseWriter:
    """Writes a stream's bytes to one response that has started (headers sent)."""

    __slots__ = ("_request", "_transport", "_send")

    def __init__(self, request: Request) -> None:
        self._request = request
        transport: Any = request.channel.transport if takes_shortcut(request) else None
        self._transport = transport
        self._send: Any = transport.getHandle().send if transport is not None else None

    @classmethod
    def start(cls, request: Request, first: bytes) -> ResponseWriter:
        """Send the response headers with `first`, then write through the writer this returns."""
        request.write(first)
        return cls(request)

    @property
    def direct(self) -> bool:
        """Whether this response may take the socket shortcut."""
        return self._transport is not None

    def write(self, data: bytes) -> None:
        """Write bytes of the event stream (whole events, comments or fields). Nothing is written for no
        bytes: framed as a chunk, they would be the last chunk, which ends the response for the client."""
        if not data:
            return
        if self._transport is None:
            self._request.write(data)
        else:
            self._direct(chunk(data))

    def write_block(self, block: Block) -> None:
        """Write a block; its chunk is framed once for all the listeners that get it."""
        if self._transport is None:
            self._request.write(block.data)
        else:
            self._direct(_chunk_of(block))

    def _direct(self, framed: bytes) -> None:
        transport = self._transport
        if not transport_is_idle(transport):
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
