"""HTTPConnection: HTTP/1.1 or HTTP/2 by what TLS negotiated, one header deadline for both."""

from __future__ import annotations

import inspect

import h2.config
import h2.connection
import h2.events
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from twisted.web.http import HTTPChannel

from tests.http_harness import Harness
from twisted_sse.web._connection import HTTPConnection, request_line
from twisted_sse.web._h2_connection import _h2_connection_class, http2_available


class _TLSTransport(StringTransport):
    """What a TLS transport says after its handshake: the protocol ALPN picked."""

    def __init__(self, negotiated: bytes | None) -> None:
        super().__init__(peerAddress=IPv4Address("TCP", "127.0.0.1", 50123))
        self.negotiatedProtocol = negotiated


def _connect(harness: Harness, negotiated: bytes | None) -> tuple[HTTPConnection, _TLSTransport]:
    connection = harness.site.buildProtocol(IPv4Address("TCP", "127.0.0.1", 50123))
    transport = _TLSTransport(negotiated)
    connection.makeConnection(transport)
    return connection, transport


def _h2_client() -> h2.connection.H2Connection:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
    client.initiate_connection()
    return client


def _get(client: h2.connection.H2Connection, path: str) -> int:
    stream_id = client.get_next_available_stream_id()
    headers = [(":method", "GET"), (":path", path), (":scheme", "https"), (":authority", "localhost")]
    client.send_headers(stream_id, headers, end_stream=True)
    return stream_id


def test_twisted_http2_internals_we_rely_on_are_there():
    """The private Twisted HTTP/2 names that connection.py and writer.cut use still exist (else this fails)."""
    from twisted.web import _http2, http

    assert http2_available() and http.H2_ENABLED
    h2_class = _h2_connection_class()
    assert h2_class is _http2.H2Connection
    connection = h2_class(reactor=Harness().clock)
    assert connection.streams == {} and hasattr(connection.conn, "close_connection")
    assert "_cancelTimeouts" in inspect.signature(h2_class.connectionLost).parameters
    assert _http2.H2Stream.transport is None  # so writer.cut resets the stream, not the connection
    for name in ("abortConnection", "writeHeaders", "loseConnection"):
        assert callable(getattr(_http2.H2Stream, name)), name


def test_http11_when_nothing_was_negotiated():
    """A plain connection (or TLS without ALPN) is served by an HTTP/1.1 channel."""
    connection, transport = _connect(Harness(), None)
    connection.dataReceived(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert isinstance(connection.channel, HTTPChannel) and connection.protocol == b"http/1.1"
    assert transport.value().startswith(b"HTTP/1.1 200 ")


def test_http2_when_tls_negotiated_h2():
    """A connection whose TLS negotiated h2 is served by HTTP/2, with responses on their streams."""
    harness = Harness()
    connection, transport = _connect(harness, b"h2")
    client = _h2_client()
    stream_id = _get(client, "/healthz")
    connection.dataReceived(client.data_to_send())
    harness.clock.advance(0)  # Twisted's HTTP/2 sends DATA frames from a reactor turn
    assert connection.protocol == b"h2"
    events = client.receive_data(transport.value())
    responses = [e for e in events if isinstance(e, h2.events.ResponseReceived)]
    assert [(e.stream_id, dict(e.headers)[":status"]) for e in responses] == [(stream_id, "200")]


def test_http2_connection_without_a_stream_is_cut_at_the_header_deadline():
    """An HTTP/2 connection that opens no stream is cut header_timeout seconds after it connected."""
    harness = Harness(header_timeout=5)
    connection, transport = _connect(harness, b"h2")
    connection.dataReceived(_h2_client().data_to_send())
    harness.clock.advance(4.9)
    assert not transport.disconnecting
    harness.clock.advance(0.1)
    assert transport.disconnecting


def test_http2_connection_with_an_open_stream_outlives_the_deadline():
    """While a stream is open the deadline re-arms instead of cutting; once none is, it cuts."""
    harness = Harness(header_timeout=5)
    connection, transport = _connect(harness, b"h2")
    client = _h2_client()
    stream_id = _get(client, "/events/news")
    connection.dataReceived(client.data_to_send())
    harness.clock.advance(0)
    for _ in range(6):
        harness.clock.advance(5)
    assert not transport.disconnecting and harness.service.hub.streams_open == 1
    client.reset_stream(stream_id)
    connection.dataReceived(client.data_to_send())
    assert harness.service.hub.streams_open == 0
    harness.clock.advance(5)
    assert transport.disconnecting


def test_connection_without_bytes_is_cut_at_the_header_deadline():
    """A connection that sends nothing at all (no protocol chosen yet) is cut at the deadline too."""
    harness = Harness(header_timeout=3)
    connection, transport = _connect(harness, b"h2")
    harness.clock.advance(3)
    assert transport.disconnecting and connection.channel is None


def test_request_line_is_known_before_the_body():
    """Method and path of a request still receiving its body come from where Twisted keeps them (else this fails)."""
    harness = Harness()
    connection, _ = _connect(harness, None)
    connection.dataReceived(b"POST /events/x?y=1 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret\r\n"
                            b"Content-Length: 10\r\n\r\nabc")  # fmt: skip
    assert request_line(connection.channel.requests[-1]) == (b"POST", b"/events/x?y=1")


def test_request_line_on_http2_streams():
    """On HTTP/2 the stream's method and path are read the same way, before the body."""
    harness = Harness()
    connection, _ = _connect(harness, b"h2")
    client = _h2_client()
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, [(":method", "POST"), (":path", "/events/y"), (":scheme", "https"),
                                    (":authority", "localhost"), ("content-length", "5")])  # fmt: skip
    connection.dataReceived(client.data_to_send())
    request = connection.channel.streams[stream_id]._request
    assert request_line(request) == (b"POST", b"/events/y")


def test_http2_publish_whose_length_comes_before_its_token_is_screened_on_all_headers():
    """HTTP/2 reads content-length while it still adds headers: the token after it still counts."""
    harness = Harness()
    listener = harness.stream("/events/x")
    connection, transport = _connect(harness, b"h2")
    client = _h2_client()
    stream_id = client.get_next_available_stream_id()
    client.send_headers(stream_id, [(":method", "POST"), (":path", "/events/x"), (":scheme", "https"),
                                    (":authority", "localhost"), ("content-length", "2"),
                                    ("authorization", "Bearer secret")])  # fmt: skip
    client.send_data(stream_id, b"hi", end_stream=True)
    connection.dataReceived(client.data_to_send())
    harness.clock.advance(0)
    statuses = [dict(e.headers)[":status"] for e in client.receive_data(transport.value())
                if isinstance(e, h2.events.ResponseReceived)]  # fmt: skip
    assert statuses == ["200"]
    assert [e.data for e in listener.response().events()] == ["hi"]


def test_a_burst_of_new_connections_is_read_a_reactor_turn_at_a_time():
    """Once this turn's share is spent, a new connection's request waits (its reading paused) for a coming turn,
    then is answered; one that leaves while it waits costs nothing more."""
    from tests.core.test_pacer import _one_turn
    from tests.http_harness import Client

    harness = Harness()
    pacer, clock = harness.site.pacer, harness.clock
    assert pacer.admit()
    clock.rightNow += 0.05  # this turn has worked 50 ms already
    waiting, leaving = Client(harness.site), Client(harness.site)
    waiting.send("GET", "/healthz")
    leaving.send("GET", "/healthz")
    assert waiting.transport.value() == b"" and waiting.transport.producerState == "paused"
    leaving.drop()
    _one_turn(clock)
    assert waiting.response().status == 200 and waiting.transport.producerState == "producing"
    assert leaving.transport.value() == b""


def test_a_connection_waiting_for_its_turn_when_the_drain_begins_is_answered_not_cut():
    """Its request was read but paced to a coming turn: the drain lets it be answered (Connection: close)."""
    from tests.core.test_pacer import _one_turn
    from tests.http_harness import Client

    harness = Harness()
    pacer, clock = harness.site.pacer, harness.clock
    assert pacer.admit()
    clock.rightNow += 0.05
    waiting = Client(harness.site)
    waiting.send("GET", "/healthz")
    harness.site.close_connections(5)
    assert not waiting.transport.disconnecting
    _one_turn(clock)
    response = waiting.response()
    assert response.status == 200 and response.headers["connection"] == "close" and waiting.transport.disconnecting
