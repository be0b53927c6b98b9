"""The HTTP server around the resource: limits Twisted leaves open, and connection draining.

- A client must finish its request headers within `header_timeout` seconds of
  connecting (or of its previous request ending): Twisted restarts its idle timeout on
  every byte, so a client sending one header byte a minute (slowloris) would hold a
  connection forever.
- A request body past `max_body` bytes is answered 413 and the connection closed as
  soon as the declared length (or the bytes received) says so; Twisted would otherwise
  buffer the whole body to a temporary file before the resource sees it.
- The site knows its open connections, so that shutdown can close them and wait for
  them, for a bounded time.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.internet.protocol import connectionDone
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.http import HTTPChannel
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

__all__ = ["SSESite"]

_log = Logger()


def _abort(transport: Any) -> None:
    """Cut a connection at once (loseConnection for transports that can't abort)."""
    if transport is not None:
        getattr(transport, "abortConnection", transport.loseConnection)()


class _LimitedRequest(Request):
    """A request whose body may not pass the site's `max_body`."""

    _refused = False
    _body_size = 0

    @property
    def _max_body(self) -> int:
        return self.channel.site.max_body  # type: ignore[attr-defined]

    def gotLength(self, length: int | None) -> None:
        if length is not None and length > self._max_body:
            self._refuse()
        super().gotLength(0 if self._refused else length)

    def handleContentChunk(self, data: bytes) -> None:
        if self._refused:
            return
        self._body_size += len(data)
        if self._body_size > self._max_body:
            self._refuse()
        else:
            super().handleContentChunk(data)

    def process(self) -> None:
        if not self._refused:
            super().process()

    def _refuse(self) -> None:
        self._refused = True
        message = b"the body is larger than %d bytes\n" % self._max_body
        self.channel.transport.write(  # type: ignore[union-attr]
            b"HTTP/1.1 413 Payload Too Large\r\nContent-Type: text/plain; charset=utf-8\r\n"
            b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(message), message)
        )
        self.channel.loseConnection()


class _GuardedChannel(HTTPChannel):
    """An HTTP connection with a deadline for request headers, known to its site."""

    _deadline: IDelayedCall | None = None
    site: SSESite

    def connectionMade(self) -> None:
        super().connectionMade()
        self.site.connections.add(self)
        self._arm()

    def allHeadersReceived(self) -> None:
        self._disarm()
        super().allHeadersReceived()

    def requestDone(self, request: Request) -> None:
        super().requestDone(request)
        if self.persistent and not self.requests:
            self._arm()  # the next request's headers get the same deadline

    def lineLengthExceeded(self, line: bytes) -> None:
        # Twisted just closes the connection; say why first.
        on_request_line = getattr(self, "_HTTPChannel__first_line", 0)
        status = b"414 URI Too Long" if on_request_line else b"431 Request Header Fields Too Large"
        message = b"request line or header longer than %d bytes\n" % self.MAX_LENGTH
        self.transport.write(  # type: ignore[union-attr]
            b"HTTP/1.1 %s\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (status, len(message), message)
        )
        self.loseConnection()

    def connectionLost(self, reason: Failure = connectionDone) -> None:
        self._disarm()
        super().connectionLost(reason)
        self.site.forget(self)

    def _arm(self) -> None:
        self._disarm()
        self._deadline = self.callLater(self.site.header_timeout, self._headers_too_slow)

    def _disarm(self) -> None:
        if self._deadline is not None and self._deadline.active():
            self._deadline.cancel()
        self._deadline = None

    def _headers_too_slow(self) -> None:
        self._deadline = None
        _log.info("cutting a client: no complete request headers in {seconds}s", seconds=self.site.header_timeout)
        _abort(self.transport)


class SSESite(Site):
    """A `Site` with a header deadline, a body limit, and a registry of its connections."""

    protocol = _GuardedChannel  # type: ignore[assignment]  # plain HTTP/1.x, no HTTP/2 negotiation
    requestFactory = _LimitedRequest

    def __init__(
        self, resource: IResource, max_body: int, header_timeout: float, reactor: Any, access_log: bool = False
    ) -> None:
        # Publishing reads the raw body: no form parsing (Twisted's raises on some Content-Type bytes, e.g. 0x85).
        super().__init__(resource, reactor=reactor, parsePOSTFormSubmission=False)
        self._access_log = access_log
        self.max_body = max_body
        self.header_timeout = header_timeout
        self.displayTracebacks = False
        self.connections: set[HTTPChannel] = set()
        self._all_closed: Deferred[None] | None = None
        self._reactor = reactor

    def log(self, request: http.Request) -> None:
        """One access-log line per request, only when asked for: streams log their own opening and
        closing, and formatting a line per publish costs more than the rest of the request."""
        if self._access_log:
            super().log(request)

    def close_connections(self, timeout: float) -> Deferred[None]:
        """Close every connection once its output is flushed; abort those still open after `timeout`."""
        for channel in list(self.connections):
            channel.loseConnection()
        if not self.connections:
            return succeed(None)
        self._all_closed = Deferred()
        timer = self._reactor.callLater(timeout, self._abort_all, timeout)
        return self._all_closed.addCallback(lambda _: timer.cancel() if timer.active() else None)

    def forget(self, channel: HTTPChannel) -> None:
        """A connection has closed."""
        self.connections.discard(channel)
        if not self.connections and self._all_closed is not None:
            waiting, self._all_closed = self._all_closed, None
            waiting.callback(None)

    def _abort_all(self, timeout: float) -> None:
        _log.warn("aborting {count} connections still open after {timeout}s", count=len(self.connections),
                  timeout=timeout)  # fmt: skip
        for channel in list(self.connections):
            _abort(channel.transport)
