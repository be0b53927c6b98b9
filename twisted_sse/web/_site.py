"""The HTTP server around the resource: limits Twisted leaves open, and connection draining.

- Each connection is an `HTTPConnection` (twisted_sse/web/_connection.py): HTTP/1.1, or
  HTTP/2 when TLS negotiated `h2`, with a deadline for request headers; a publisher's POSTs
  that arrive whole are answered without Twisted's request machinery (`whole_post`).
- A request body past `max_body` bytes is answered 413 (and an HTTP/1.x connection
  closed) as soon as the declared length (or the bytes received) says so; Twisted would
  otherwise buffer the whole body to a temporary file before the resource sees it.
- The site knows its open connections, so that shutdown can close them and wait for
  them, for a bounded time.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IDelayedCall
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.http import HTTPChannel
from twisted.web.http_headers import Headers
from twisted.web.resource import IResource
from twisted.web.server import Request, Site

from twisted_sse.core import Budget, Counters, Logger, Pacer
from twisted_sse.web._connection import HTTPConnection, abort, request_line, write_raw_answer
from twisted_sse.web._h2_connection import http2_available
from twisted_sse.web._post_channel import WholePostServer

__all__ = ["SSESite"]

_log = Logger()


Refusal = tuple[int, bytes, str]
"""An answer given before a request's body is read: status, reason phrase, plain-text message."""
Screen = Callable[[Request, bytes, bytes], "Refusal | None"]
"""Looks at a request whose headers are in (method, path) and says whether to refuse it now."""


def _close(_: object, channel: Any) -> None:
    """Close a connection once its last response is out (Twisted drops `request.channel` when it finishes)."""
    if channel is not None:
        channel.loseConnection()


class _LimitedRequest(Request):
    """A request answered before its body is read when its headers already say no, whose body may not pass
    the site's `max_body` and must arrive within `body_timeout` seconds."""

    _refused = False
    _body_size = 0
    _gone = False
    _unscreened = False
    _body_deadline: IDelayedCall | None = None

    @property
    def _site(self) -> SSESite:
        return self.channel.site  # type: ignore[attr-defined]

    def gotLength(self, length: int | None) -> None:
        site = self._site
        if length is not None and length > site.max_body:
            self._refuse((413, b"Payload Too Large", f"the body is larger than {site.max_body} bytes"))
        else:
            if isinstance(self.channel, HTTPChannel):
                self._screen()  # every header is in
            else:
                self._unscreened = True  # HTTP/2 reads the length while it still adds headers: screen at the body
            if not self._refused and (length is None or length > 0):
                self._body_deadline = site.reactor.callLater(site.body_timeout, self._body_too_slow)
        super().gotLength(0 if self._refused else length)

    def _screen(self) -> None:
        """Refuse now if the headers alone say no (the site's `screen`)."""
        self._unscreened = False
        site = self._site
        line = request_line(self)
        refusal = site.screen(self, *line) if line is not None and site.screen is not None else None
        if refusal is not None:
            self._refuse(refusal)

    def handleContentChunk(self, data: bytes) -> None:
        if self._unscreened:
            self._screen()
        if self._refused:
            return
        self._body_size += len(data)
        if self._body_size > self._site.max_body:
            self._refuse((413, b"Payload Too Large", f"the body is larger than {self._site.max_body} bytes"))
        else:
            super().handleContentChunk(data)

    def requestReceived(self, command: bytes, path: bytes, version: bytes) -> None:
        if self._unscreened:
            self._screen()
        self._stop_body_deadline()
        super().requestReceived(command, path, version)

    def process(self) -> None:
        if self._site.draining:
            # Read on a connection accepted just before the drain: answered, then the connection closes.
            self.setHeader(b"connection", b"close")
            self.notifyFinish().addBoth(_close, self.channel)
        if not self._refused:
            super().process()

    def connectionLost(self, reason: Failure) -> None:
        self._gone = True
        self._stop_body_deadline()
        super().connectionLost(reason)

    def _stop_body_deadline(self) -> None:
        if self._body_deadline is not None and self._body_deadline.active():
            self._body_deadline.cancel()
        self._body_deadline = None

    def _body_too_slow(self) -> None:
        self._body_deadline = None
        if not self._refused and not self._gone:
            seconds = self._site.body_timeout
            self._refuse((408, b"Request Timeout", f"the body did not arrive within {seconds:g} seconds"))

    def _refuse(self, refusal: Refusal) -> None:
        """Answer now, before the request is processed, and take no more of its body.

        HTTP/1.x: the answer goes out and the connection is closed (the rest of the body
        would otherwise have to be read). HTTP/2: the status goes out on this stream, which
        is then reset so that its sender stops; the connection's other streams go on.
        Twisted builds an HTTP/2 request (and reads its length) before the stream can be
        written to, so that answer waits for the next reactor turn.
        """
        self._refused = True
        self._stop_body_deadline()
        code, reason, text = refusal
        if isinstance(self.channel, HTTPChannel):
            challenge = b'WWW-Authenticate: Bearer realm="twisted-sse"\r\n' if code == 401 else b""
            write_raw_answer(self.channel.transport, b"%d %s" % (code, reason), text.encode("utf-8") + b"\n", challenge)
            self.channel.loseConnection()
        else:
            self._site.reactor.callLater(0, self._refuse_stream, code, reason)

    def _refuse_stream(self, code: int, reason: bytes) -> None:
        if self._gone:
            return
        stream: Any = self.channel  # twisted.web._http2.H2Stream
        stream.writeHeaders(b"HTTP/2", b"%d" % code, reason, Headers({b"content-type": [b"text/plain"]}))
        stream.abortConnection()


_TOKEN_IN_QUERY = re.compile(rb"([?&])token=[^&]*")


class _WithoutToken:
    """A request as the access log sees it: `?token=` values replaced by `-`."""

    def __init__(self, request: http.Request) -> None:
        self._request = request
        self.uri = _TOKEN_IN_QUERY.sub(rb"\1token=-", request.uri)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._request, name)


class SSESite(Site):
    """A `Site` with a header deadline, a body limit, HTTP/2 on TLS, and a registry of its connections."""

    protocol = HTTPConnection  # type: ignore[assignment]
    requestFactory = _LimitedRequest

    def __init__(
        self,
        resource: IResource,
        max_body: int,
        header_timeout: float,
        reactor: Any,
        access_log: bool = False,
        body_timeout: float = 10.0,
        screen: Screen | None = None,
        counters: Counters | None = None,
        whole_post: WholePostServer | None = None,
    ) -> None:
        """`screen` refuses requests on their headers alone (a publish without a valid token, say);
        `counters`: where the process counts (the service gives the site the one its hub has);
        `whole_post` answers POSTs that arrive whole without Twisted's request machinery (not with
        `access_log`: Twisted's requests write its lines)."""
        # Publishing reads the raw body: no form parsing (Twisted's raises on some Content-Type bytes, e.g. 0x85).
        super().__init__(resource, reactor=reactor, parsePOSTFormSubmission=False)
        self._access_log = access_log
        self.max_body = max_body
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self.screen = screen
        self.whole_post = whole_post if not access_log else None
        self.displayTracebacks = False
        self.connections: dict[HTTPConnection, None] = {}
        """Open connections, oldest first."""
        self.max_pending = 0
        """Connections that are not streams (yet) held at once; past it the oldest is cut. 0: no bound."""
        self.streams_open: Callable[[], int] = lambda: 0
        self.counters = counters if counters is not None else Counters()
        self.draining = False
        """Shutting down: requests still read are answered with `Connection: close`."""
        self.pacer = Pacer(reactor)
        """Spreads a burst of new connections' requests over reactor turns."""
        self.cut_log = Budget(_log, "HTTP/2 connections cut", reactor)
        """Lines about HTTP/2 clients cut for their frames: a few a second, then a count."""
        self._all_closed: Deferred[None] | None = None
        self._reactor = reactor

    def log(self, request: http.Request) -> None:
        """One access-log line per request, only when asked for: streams log their own opening and
        closing, and formatting a line per publish costs more than the rest of the request.
        A token in the query (--jwt-query) is never written."""
        if self._access_log:
            logged: Any = _WithoutToken(request) if b"token=" in request.uri else request
            super().log(logged)

    def close_connections(self, timeout: float) -> Deferred[None]:
        """Close every connection once its output is flushed; abort those still open after `timeout`.

        A connection that has sent nothing yet was accepted just before the listeners closed
        (a client's request is on its way): it gets that request answered, then closes, so a
        restart refuses nobody who had already connected."""
        self.draining = True
        for channel in list(self.connections):
            if not channel.untouched:
                channel.loseConnection()
        if not self.connections:
            return succeed(None)
        self._all_closed = Deferred()
        timer = self._reactor.callLater(timeout, self._abort_all, timeout)
        return self._all_closed.addCallback(lambda _: timer.cancel() if timer.active() else None)

    def admit(self, connection: HTTPConnection) -> None:
        """A connection arrived. Past `max_pending` connections that are not streams, the oldest of them is cut:
        slow or idle clients can't take every descriptor, and quick requests (a new stream, /healthz) still get in."""
        self.connections[connection] = None
        if not self.max_pending or len(self.connections) - self.streams_open() <= self.max_pending:
            return
        oldest = next((c for c in self.connections if c.pending), connection)
        self.counters.connections_cut_pending += 1
        _log.info("more than {limit} connections are not streams: cutting the oldest", limit=self.max_pending)
        abort(oldest.transport)

    def acceptableProtocols(self) -> list[bytes]:
        """What TLS offers by ALPN: HTTP/2 when Twisted can speak it, and HTTP/1.1."""
        return [b"h2", b"http/1.1"] if http2_available() else [b"http/1.1"]

    def forget(self, channel: HTTPConnection) -> None:
        """A connection has closed."""
        self.connections.pop(channel, None)
        if not self.connections and self._all_closed is not None:
            waiting, self._all_closed = self._all_closed, None
            waiting.callback(None)

    def _abort_all(self, timeout: float) -> None:
        _log.warn("aborting {count} connections still open after {timeout}s", count=len(self.connections),
                  timeout=timeout)  # fmt: skip
        for channel in list(self.connections):
            abort(channel.transport)
