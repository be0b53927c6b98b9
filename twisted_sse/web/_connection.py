"""One client connection: HTTP/1.1, or HTTP/2 when TLS negotiated it by ALPN, under one header deadline.

`HTTPConnection` is what the site builds for every accepted connection. When the first
bytes arrive the protocol is known (TLS has finished its handshake by then), and it
hands the connection to a channel: Twisted's `HTTPChannel` for HTTP/1.x, Twisted's
HTTP/2 connection for `h2`, each with what twisted-sse adds. When the site answers POSTs
that arrive whole (`whole_post`), an HTTP/1.x connection starts on a `PostChannel`, which
hands it to Twisted's channel at the first request that isn't one (`hand_over`).

It also owns the deadline for request headers, which Twisted doesn't have: a client must
complete its request headers within `header_timeout` seconds of connecting or of its
previous request ending (an HTTP/2 connection: of its last stream ending), else it is cut.
Twisted restarts its idle timeout on every byte, so without this a client sending one
byte a minute (slowloris) would hold a connection forever.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import Protocol, connectionDone
from twisted.protocols.tls import TLSMemoryBIOProtocol
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel
from twisted.web.server import Request

from twisted_sse.core import Logger
from twisted_sse.web._h2_connection import GuardedH2Connection, http2_available
from twisted_sse.web._post_channel import PostChannel

if TYPE_CHECKING:
    from twisted_sse.web._site import SSESite

__all__ = ["HTTPConnection", "abort", "close_without_reading", "request_line", "write_raw_answer"]

_log = Logger()

HANG_UP_GRACE = 5.0
"""Seconds a client that was hung up on has to take the last bytes (a GOAWAY, say) before it is cut."""


def request_line(request: Request) -> tuple[bytes, bytes] | None:
    """Method and path of a request whose headers are in but whose body may not be.

    Twisted puts them on the request only once the body is complete; until then they are
    where its channels keep them: `HTTPChannel._command` and `_path` (private), and
    `H2Stream.command` and `path`. This is the one place that reads them (checked on Twisted
    26.x; tests/test_connection.py fails if they change).
    """
    channel = request.channel
    if isinstance(channel, HTTPChannel):
        method, path = getattr(channel, "_command", None), getattr(channel, "_path", None)
    else:
        method, path = getattr(channel, "command", None), getattr(channel, "path", None)
    return (method, path) if isinstance(method, bytes) and isinstance(path, bytes) else None


def write_raw_answer(transport: Any, status: bytes, message: bytes, extra_headers: bytes = b"") -> None:
    """A complete HTTP/1.1 plain-text answer written straight to `transport`, announcing the close that follows:
    for refusals Twisted's request machinery can't give (its request isn't built, or is still reading)."""
    transport.write(
        b"HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\n%sConnection: close\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (status, extra_headers, len(message), message)
    )


def abort(transport: Any) -> None:
    """Cut a connection at once (loseConnection for transports that can't abort)."""
    if transport is not None:
        getattr(transport, "abortConnection", transport.loseConnection)()


def close_without_reading(transport: Any) -> None:
    """Send what is written to `transport`, then close it, reading nothing more from the peer.

    `loseConnection` alone keeps reading: a TLS transport waits for the peer's close_notify
    (and, while a producer is registered, doesn't even send its own), handing on all the
    while whatever the peer sends. Here the producer goes, TLS sends its close_notify, and
    the TCP transport under it (a TLS transport's own `transport`) stops reading and closes
    once its buffer is out.
    """
    transport.unregisterProducer()
    transport.loseConnection()
    if isinstance(transport, TLSMemoryBIOProtocol) and transport.transport is not None:
        transport.transport.loseConnection()


class HTTPConnection(Protocol):
    """A connection as the site sees it: the channel that speaks its protocol, and its header deadline.

    `site`, `requestFactory`, `timeOut` and `callLater` are set by the site, as on a
    Twisted channel.
    """

    site: SSESite
    requestFactory: type[Request]
    timeOut: float | None
    callLater: Any

    def __init__(self) -> None:
        self.channel: _GuardedChannel | PostChannel | Any = None
        self._deadline: IDelayedCall | None = None
        self._held: list[bytes] | None = None
        """A new connection's first bytes, while it waits for its turn (the site's pacer)."""
        self._hung_up = False

    def connectionMade(self) -> None:
        self.arm()
        self.site.admit(self)

    def dataReceived(self, data: bytes) -> None:
        if self._hung_up:
            return  # bytes the transport had read before it stopped
        if self._held is not None:
            self._held.append(data)
        elif self.channel is not None:
            self.channel.dataReceived(data)
        elif self.site.pacer.admit():
            self._first_bytes(data)
        else:
            # A burst of new connections: this reactor turn has had its share. Stop reading this
            # one and take it up on a coming turn, so that one burst can't block the reactor.
            self._held = [data]
            self.transport.pauseProducing()  # type: ignore[union-attr]
            self.site.pacer.later(self._turn_came)

    def _turn_came(self) -> None:
        held, self._held = self._held, None
        if held is None:
            return  # the connection went meanwhile
        self.transport.resumeProducing()  # type: ignore[union-attr]
        self._first_bytes(b"".join(held))

    def _first_bytes(self, data: bytes) -> None:
        self.channel = self._open_channel()
        self.channel.dataReceived(data)

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._held = None
        self.disarm()
        if self.channel is not None:
            self.channel.connectionLost(reason)
        self.site.forget(self)

    def loseConnection(self) -> None:
        """Close once what is written has gone out (an HTTP/2 connection: once its streams have ended)."""
        if self.channel is not None:
            self.channel.loseConnection()
        else:
            self.transport.loseConnection()  # type: ignore[union-attr]

    def hang_up(self) -> None:
        """Read nothing more from this client: what was written goes out, then the connection closes.

        For a client that broke the protocol or flooded it: whatever else it sends is
        never read, parsed or buffered. A client that doesn't take the last bytes either
        is cut `HANG_UP_GRACE` seconds later."""
        if self._hung_up:
            return
        self._hung_up = True
        self._held = None
        self.disarm()
        close_without_reading(self.transport)  # a channel (only channels hang up) is the transport's producer
        self._deadline = self.callLater(HANG_UP_GRACE, abort, self.transport)

    @property
    def untouched(self) -> bool:
        """True while no request has been read from this connection: its first one is on its way, or waits
        for its turn (the pacer)."""
        return self.channel is None

    @property
    def pending(self) -> bool:
        """True while this connection carries no stream: no request yet, or one that hasn't started streaming."""
        channel = self.channel
        if channel is None or isinstance(channel, PostChannel):
            return True
        if isinstance(channel, HTTPChannel):
            head = channel.requests[0] if channel.requests else None
            return head is None or not head.startedWriting or bool(head.finished)
        return not channel.streams

    @property
    def protocol(self) -> bytes:
        """`h2` or `http/1.1` once the first bytes arrived; b"" before."""
        if self.channel is None:
            return b""
        return b"h2" if isinstance(self.channel, GuardedH2Connection) else b"http/1.1"

    def _open_channel(self) -> Any:
        negotiated = getattr(self.transport, "negotiatedProtocol", None)  # INegotiated, on TLS transports
        if negotiated == b"h2" and http2_available():
            return self._twisted_channel(GuardedH2Connection(self, reactor=self.site.reactor))
        if self.site.whole_post is not None:
            channel = PostChannel(self, self.site.whole_post, self.site.max_body)
            channel.makeConnection(self.transport)
            return channel
        return self._twisted_channel(_GuardedChannel(self))

    def hand_over(self, data: bytes) -> None:
        """Twisted's HTTP/1.x channel reads this connection from now on, starting with `data`
        (a `PostChannel` met a request that isn't a whole POST)."""
        self.channel = self._twisted_channel(_GuardedChannel(self))
        if data:
            self.channel.dataReceived(data)

    def _twisted_channel(self, channel: Any) -> Any:
        channel.site = self.site
        channel.factory = self.factory
        channel.requestFactory = self.requestFactory
        channel.timeOut = self.timeOut
        channel.callLater = self.callLater
        channel.makeConnection(self.transport)
        return channel

    # The header deadline.

    def arm(self) -> None:
        """Start (or restart) the time the client has to complete request headers."""
        if self._hung_up:
            return
        self.disarm()
        self._deadline = self.callLater(self.site.header_timeout, self._expired)

    def disarm(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self.channel is not None and self.channel.busy():
            self.arm()
            return
        _log.info("cutting a client: no complete request headers in {seconds}s", seconds=self.site.header_timeout)
        abort(self.transport)


class _GuardedChannel(HTTPChannel):
    """HTTP/1.x: the header deadline follows its requests, and overlong lines get a status that says why."""

    def __init__(self, connection: HTTPConnection) -> None:
        super().__init__()
        self._connection = connection
        self._host: Any = None

    def getHost(self) -> Any:
        """The local address, asked of the socket once per connection (Twisted's Request asks on every
        request: a getsockname system call each)."""
        if self._host is None:
            self._host = super().getHost()
        return self._host

    def busy(self) -> bool:
        """Never: the deadline is only armed while no request is being served."""
        return False

    def allHeadersReceived(self) -> None:
        self._connection.disarm()
        super().allHeadersReceived()

    def rawDataReceived(self, data: bytes) -> None:
        """Bytes behind a response that is streaming are dropped, and the connection closes after it.

        Nothing pipelined behind a stream would be served before it ends, hours later;
        Twisted would buffer 16 KiB of it and then stop reading, so a client that left
        after pipelining that much went unnoticed until a write failed. Reading on (and
        dropping) notices the close at once. (Bytes that arrive before the response
        starts, while --auth-url is asked, are still buffered by Twisted, 16 KiB at most.)
        """
        head = self.requests[0] if self.requests else None
        if head is not None and head.startedWriting and not head.finished:
            self.persistent = False
            return
        super().rawDataReceived(data)

    def requestDone(self, request: Request) -> None:
        super().requestDone(request)
        if self.persistent and not self.requests:
            self._connection.arm()  # the next request's headers get the same deadline

    def lineLengthExceeded(self, line: bytes) -> None:
        # Twisted just closes the connection; say why first.
        on_request_line = getattr(self, "_HTTPChannel__first_line", 0)
        status = b"414 URI Too Long" if on_request_line else b"431 Request Header Fields Too Large"
        write_raw_answer(self.transport, status, b"request line or header longer than %d bytes\n" % self.MAX_LENGTH)
        self.loseConnection()
