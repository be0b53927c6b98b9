"""An HTTP/1.1 connection served whole POST by whole POST, until Twisted's channel takes it over.

A publisher's keep-alive connection is a row of POSTs each in one read: this channel reads
each with `read_whole_post`, hands it to the site's `whole_post` (the resource's publishing
code) and writes the answer in one write. The first request that is not a whole POST, or
one the resource leaves to Twisted (a path that isn't a publish), goes with every byte
after it to Twisted's channel, which reads the connection from then on: streams,
`/healthz`, anything chunked, split over reads or malformed, every error of HTTP itself.

One request is answered at a time, in order: bytes that arrive while an answer is awaited
(a pipelining client) are held, and reading stops until it is written. The transport's
write buffer stops reading too (this channel is its push producer, as Twisted's is), so a
client that sends and never reads makes the server hold one write buffer of answers, and
the answers to the requests of the one read in hand.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from twisted.internet.interfaces import IPushProducer, ITCPTransport
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_sse.core import Logger
from twisted_sse.web._post_request import WholePost, read_whole_post

if TYPE_CHECKING:
    from twisted_sse.web._connection import HTTPConnection

__all__ = ["PostChannel", "WholePostServer"]

_log = Logger()

WholePostServer = Callable[[WholePost], "int | bytes | None"]
"""Answers a whole POST (its answer's body now, or NOT_DONE_YET: it will `finish` it), or None before
doing anything: the request is Twisted's to serve."""


@implementer(IPushProducer)
class PostChannel:
    """Serves whole POSTs on one connection; the first request that isn't one goes to Twisted's channel."""

    def __init__(self, connection: HTTPConnection, serve: WholePostServer, max_body: int) -> None:
        self._connection = connection
        self._serve = serve
        self._max_body = max_body
        self._buffer = b""
        self._offset = 0
        """Where the bytes not yet served start in `_buffer`."""
        self._answering: WholePost | None = None
        self._closing = False
        self._held = False
        """Reading stopped: bytes came while an answer was awaited."""
        self._full = False
        """Reading stopped: the transport's write buffer is full."""
        self.transport: Any = None

    def makeConnection(self, transport: Any) -> None:
        self.transport = transport
        if ITCPTransport.providedBy(transport):
            transport.setTcpNoDelay(True)  # as Twisted's channel does: an answer is one small write
        transport.registerProducer(self, True)

    def dataReceived(self, data: bytes) -> None:
        self._buffer = self._buffer[self._offset :] + data if self._offset < len(self._buffer) else data
        self._offset = 0
        if self._answering is not None:
            if not self._held:
                self._held = True
                self.transport.pauseProducing()
            return
        self._serve_buffered()

    def _serve_buffered(self) -> None:
        while self._offset < len(self._buffer) and self._answering is None and not self._closing:
            site = self._connection.site
            read = None if site.draining else read_whole_post(self._buffer, self._max_body, self._offset)
            if read is None:
                self._hand_over()
                return
            target, headers, body, end = read
            request = WholePost(self, target, headers, body)
            start, self._offset = self._offset, end
            self._connection.disarm()
            self._answering = request
            try:
                answer = self._serve(request)
            except Exception:  # a bug: answered as Twisted's Request answers one, and the connection goes on
                _log.failure("answering POST {target!r}", target=target)
                request.setResponseCode(500)
                request.setHeader(b"content-type", b"text/plain; charset=utf-8")
                answer = b"the server failed to answer this request\n"
            if answer is None:
                self._answering, self._offset = None, start
                self._hand_over()
                return
            if isinstance(answer, bytes):
                request.write(answer)
                request.finish()

    def answered(self, request: WholePost, answer: bytes) -> None:
        """`request`'s answer is ready: write it, then go on with what came meanwhile."""
        self._answering = None
        self.transport.write(answer)
        if self._closing:
            self.transport.loseConnection()
            return
        self._connection.arm()  # the next request's headers get the same deadline
        if self._held:
            self._held = False
            if not self._full:
                self.transport.resumeProducing()
        if self._offset < len(self._buffer):
            # The next request came with this one, or meanwhile: it is served on a reactor turn of its own.
            self._connection.site.reactor.callLater(0, self._serve_buffered)

    def _hand_over(self) -> None:
        """Twisted's channel reads this connection from here on, starting with the bytes not served."""
        rest, self._buffer, self._offset = self._buffer[self._offset :], b"", 0
        self.transport.unregisterProducer()
        if self._held or self._full:
            self.transport.resumeProducing()  # Twisted's channel pauses reading itself, when it needs to
        self._connection.hand_over(rest)

    # As the connection's channel.

    def busy(self) -> bool:
        """Never: the header deadline is only armed while no request is being answered."""
        return False

    def loseConnection(self) -> None:
        """Close now, or once the awaited answer is written."""
        self._closing = True
        if self._answering is None:
            self.transport.loseConnection()

    def connectionLost(self, reason: Failure) -> None:
        answering, self._answering = self._answering, None
        self._buffer, self._offset = b"", 0
        if answering is not None:
            answering.connection_lost(reason)

    # IPushProducer, for the transport: its write buffer is full, or has room again.

    def pauseProducing(self) -> None:
        if not self._full:
            self._full = True
            if not self._held:
                self.transport.pauseProducing()

    def resumeProducing(self) -> None:
        if self._full:
            self._full = False
            if not self._held:
                self.transport.resumeProducing()

    def stopProducing(self) -> None:
        """The connection is going; `connectionLost` follows."""
