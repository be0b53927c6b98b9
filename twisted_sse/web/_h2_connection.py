"""HTTP/2 as Twisted speaks it, with what an open internet needs on top: bounds on what a client sends.

`GuardedH2Connection` is Twisted's HTTP/2 connection with:

- a `FrameGuard` (web/_h2_frames.py) in front of h2: a frame too large, a header block
  too long, or control frames past the budget cut the connection before h2 sees (and
  buffers) the bytes;
- the hang-up after any end, ours or h2's: the GOAWAY with its code is written, and
  then nothing more from the client is read (`HTTPConnection.hang_up`). Twisted itself
  closes with `loseConnection`, which on TLS waits for the client's close_notify and
  meanwhile hands on everything it sends: h2, closed, kept appending it to its buffer;
- one log line per cut, within a budget, and a count by reason (`protocol_error`,
  `control_flood`) for the metrics;
- the connection registered as its transport's producer (as Twisted's own HTTP/2 setup
  does), so that when a client stops reading, Twisted's bound on buffered control frames
  applies;
- the site's header deadline: busy while it has streams, and a close that lets them
  finish, then GOAWAY.

What this module relies on about Twisted's private `twisted.web._http2` (checked on
Twisted 26.x, which setup.py pins; tests/web/test_h2_connection.py fails if it changes):
`H2Connection(reactor)`, its `conn` (the h2 connection, replaced here by a subclass that
remembers how it ended), `streams`, `connectionLost(reason, _cancelTimeouts)`,
`timeoutConnection`, `writeHeaders`, `writeDataToStream(streamID, data)` (its streams
call it with every piece of response data), `_sendPrioritisedData` (its sending loop)
and `_tryToWriteControlData` (False once it aborted a client that doesn't read). On a
protocol error its `dataReceived` writes h2's GOAWAY and calls `loseConnection`.
"""

from __future__ import annotations

from contextlib import suppress
from typing import Any, Protocol

import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import priority
from twisted.internet.error import ConnectionLost
from twisted.internet.protocol import connectionDone
from twisted.python.failure import Failure
from twisted.web import http

from twisted_sse.core import Logger
from twisted_sse.web._h2_frames import CONTROL_FLOOD, PROTOCOL_ERROR, ControlBudget, Cut, FrameGuard

__all__ = ["GuardedH2Connection", "Hangs", "http2_available"]

_log = Logger()

MAX_HEADER_LIST_SIZE = 16384
"""The largest header list a request may carry, decoded (as over HTTP/1.1)."""


def _h2_connection_class() -> Any:
    """Twisted's HTTP/2 connection class, or None when `h2` isn't installed.

    The one place that reads Twisted's HTTP/2 internals: `twisted.web.http.H2_ENABLED` and
    the private module `twisted.web._http2`.
    """
    if not getattr(http, "H2_ENABLED", False):
        return None
    from twisted.web._http2 import H2Connection

    return H2Connection


_H2Connection = _h2_connection_class()


def http2_available() -> bool:
    """Whether TLS listeners offer HTTP/2 (`h2` and `priority` are installed)."""
    return _H2Connection is not None


class Hangs(Protocol):
    """The connection under an HTTP/2 channel (an `HTTPConnection`), as far as the channel uses it."""

    def hang_up(self) -> None: ...


class _WatchedConnection(h2.connection.H2Connection):
    """h2's connection, remembering how it ended: the protocol error it raised, the GOAWAY sent or received."""

    error: h2.exceptions.ProtocolError | None = None
    goaway_code: int | None = None
    """The error code of the GOAWAY this side sent; None while none was."""
    peer_left = False
    """The client sent GOAWAY."""

    def receive_data(self, data: Any) -> list[h2.events.Event]:  # h2 types it as a Buffer
        try:
            events = super().receive_data(data)
        except h2.exceptions.ProtocolError as error:
            self.error = error
            raise
        for event in events:
            if isinstance(event, h2.events.ConnectionTerminated):
                self.peer_left = True
        return events

    def close_connection(self, error_code: Any = 0, additional_data: bytes | None = None,
                         last_stream_id: int | None = None) -> None:  # fmt: skip
        self.goaway_code = int(error_code)
        super().close_connection(error_code, additional_data, last_stream_id)

    @property
    def ended(self) -> bool:
        return self.error is not None or self.goaway_code is not None or self.peer_left


_H2Base: Any = _H2Connection if _H2Connection is not None else object


class GuardedH2Connection(_H2Base):
    """Twisted's HTTP/2 connection behind a `FrameGuard`, hanging up after any end."""

    conn: _WatchedConnection
    _closing: Any = None
    _lost = False

    def __init__(self, connection: Hangs, reactor: Any) -> None:
        super().__init__(reactor)
        self.conn = _WatchedConnection(config=self.conn.config)
        # Header lists as large as HTTP/1.1 allows (16 KiB), not h2's 64 KiB: each header costs decoding.
        self.conn.local_settings = h2.settings.Settings(client=False, initial_values={
            h2.settings.SettingCodes.MAX_CONCURRENT_STREAMS: 100,
            h2.settings.SettingCodes.MAX_HEADER_LIST_SIZE: MAX_HEADER_LIST_SIZE,
        })  # fmt: skip
        self.conn.decoder.max_header_list_size = MAX_HEADER_LIST_SIZE
        self._connection = connection
        self._clock = reactor
        self._guard = FrameGuard(ControlBudget(reactor.seconds()), max_frame_size=self.conn.max_inbound_frame_size)

    @property
    def control_frames(self) -> int:
        """Control frames this client has sent so far."""
        return self._guard.budget.spent

    def connectionMade(self) -> None:
        super().connectionMade()
        self.transport.registerProducer(self, True)

    def dataReceived(self, data: bytes) -> None:
        guard = self._guard
        cut = guard.feed(data, self._clock.seconds())
        if cut is not None:
            self._cut(cut)
            return
        start = 0
        for end in guard.ends:  # h2 gets one frame at a time
            if self._lost:
                return  # Twisted ended the connection itself (a client that doesn't read its answers)
            if end > start and not self._receive(data[start:end]):
                return
            start = end
        if start < len(data) and not self._lost:
            self._receive(data[start:])  # the start of a frame that the next read completes

    def _receive(self, data: bytes) -> bool:
        """Hand `data` (one frame, or the start of one) to Twisted and h2; False once the connection ended."""
        conn = self.conn
        ended_before = conn.ended
        try:
            super().dataReceived(data)
        except Exception as error:  # Twisted's HTTP/2 (or the resource under it) broke on what the client sent
            self._cut(_unexpected(error))
            return False
        if not conn.ended:
            return True
        if ended_before:
            self._connection.hang_up()  # what a client sent after our GOAWAY
        elif conn.error is not None:  # h2 raised; Twisted wrote its GOAWAY
            # h2's DenialOfServiceError: a header list past MAX_HEADER_LIST_SIZE, say.
            reason = CONTROL_FLOOD if isinstance(conn.error, h2.exceptions.DenialOfServiceError) else PROTOCOL_ERROR
            self._cut(Cut(reason, int(conn.error.error_code), _described(conn.error)), goaway_written=True)
        elif conn.goaway_code == h2.errors.ErrorCodes.ENHANCE_YOUR_CALM:  # Twisted's bound on stream resets
            self._cut(Cut(CONTROL_FLOOD, conn.goaway_code, "too many stream resets"), goaway_written=True)
        else:
            self._connection.hang_up()  # the client said goodbye
        return False

    def writeHeaders(self, version: bytes, code: bytes, reason: bytes, headers: Any, streamID: int) -> None:
        """As Twisted's, which drops the headers of a stream the client closed, also for one h2 has forgotten."""
        try:
            super().writeHeaders(version, code, reason, headers, streamID)
        except h2.exceptions.StreamIDTooLowError:
            return

    def _tryToWriteControlData(self) -> bool:
        """Twisted's, which aborts a client that leaves more than 17 KiB of control frames unread (and logs
        it): counted here as a control flood."""
        lost_before = self._lost
        still_open: bool = super()._tryToWriteControlData()
        if not still_open and not lost_before:
            self.site.counters.http2_cut(CONTROL_FLOOD)
            self._connection.hang_up()
        return still_open

    def _sendPrioritisedData(self, *args: Any) -> None:
        """Twisted's sending loop (it runs from the reactor): if it breaks, the connection is cut, not left
        with streams that would never be written to again."""
        try:
            super()._sendPrioritisedData(*args)
        except Exception as error:
            self._cut(_unexpected(error))

    def writeDataToStream(self, streamID: int, data: bytes) -> None:
        self._guard.budget.data_sent(len(data))
        super().writeDataToStream(streamID, data)

    def _cut(self, cut: Cut, goaway_written: bool = False) -> None:
        """End the connection for `cut`: GOAWAY with its code, streams told, nothing more read."""
        site = self.site
        site.counters.http2_cut(cut.reason)
        if site.cut_log.allows():
            _log.info("cutting an HTTP/2 client {peer}: {message} ({reason})", peer=_peer(self.transport),
                      message=cut.message, reason=cut.reason)  # fmt: skip
        if not goaway_written and not self._lost:
            with suppress(h2.exceptions.ProtocolError):
                self.conn.close_connection(error_code=cut.code)
                self.transport.write(self.conn.data_to_send())
        if not self._lost:
            self.connectionLost(Failure(ConnectionLost(f"HTTP/2 {cut.reason}")))
        self._connection.hang_up()

    def busy(self) -> bool:
        """True while streams are open; then Twisted's idle timeout restarts too (a stream may be quiet for hours)."""
        if self.streams:
            self.resetTimeout()
            return True
        return False

    def loseConnection(self) -> None:
        """Wait for every stream to end (each was told when to reconnect), then GOAWAY and close."""
        self._closing = None
        if self._lost:
            return
        if self.streams:
            self._closing = self.callLater(0.02, self.loseConnection)
            return
        self.conn.close_connection()
        self.transport.write(self.conn.data_to_send())
        self._connection.hang_up()

    def timeoutConnection(self) -> None:
        super().timeoutConnection()  # GOAWAY
        self._connection.hang_up()

    def connectionLost(self, reason: Failure = connectionDone, _cancelTimeouts: bool = True) -> None:
        if not self._lost:
            budget = self._guard.budget
            _log.debug("HTTP/2 connection from {peer} closed: {streams} streams, {frames} control frames, "
                       "at most {used} of {burst} in use", peer=_peer(self.transport),
                       streams=self._guard.streams_opened, frames=budget.spent,
                       used=round(budget.burst - budget.lowest), burst=budget.burst)  # fmt: skip
        self._lost = True
        if self._closing is not None and self._closing.active():
            self._closing.cancel()
        super().connectionLost(reason, _cancelTimeouts)


def _unexpected(error: Exception) -> Cut:
    """Why a connection is cut whose HTTP/2 handling raised `error` (a bug we have not met yet, or this)."""
    if isinstance(error, priority.TooManyStreamsError):  # PRIORITY frames for a thousand streams never opened
        return Cut(CONTROL_FLOOD, h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, "PRIORITY frames for too many streams")
    return Cut(PROTOCOL_ERROR, h2.errors.ErrorCodes.INTERNAL_ERROR, _described(error))


def _described(error: Exception) -> str:
    """`error` in one printable line for the log (its message may quote the client's bytes)."""
    return ascii(f"{type(error).__name__}: {error}")[1:-1][:200]


def _peer(transport: Any) -> str:
    address = transport.getPeer()
    host, port = getattr(address, "host", None), getattr(address, "port", None)
    return f"{host}:{port}" if host is not None else str(address)
