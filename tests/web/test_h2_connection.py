"""GuardedH2Connection: a client that breaks HTTP/2 or floods it gets GOAWAY, and nothing more of it is read."""

from __future__ import annotations

import inspect
import struct

import h2.events
import h2.exceptions
import pytest
from twisted.logger import globalLogPublisher

from testbed.h2_attacks import DATA, HEADERS, PING, RST_STREAM, WINDOW_UPDATE, frame
from tests.http_harness import Harness
from tests.web.test_connection import _connect, _get, _h2_client
from twisted_sse.web._connection import HANG_UP_GRACE
from twisted_sse.web._h2_connection import GuardedH2Connection, _h2_connection_class
from twisted_sse.web._h2_frames import ControlBudget


def _server_said(client, transport) -> list[h2.events.Event]:
    events = client.receive_data(transport.value())
    transport.clear()
    return events


def _raw_goaway(data: bytes) -> int | None:
    """The error code of the GOAWAY frame among the frames the server wrote."""
    offset, code = 0, None
    while offset + 9 <= len(data):
        length = int.from_bytes(data[offset : offset + 3], "big")
        if data[offset + 3] == 0x7:
            code = int.from_bytes(data[offset + 13 : offset + 17], "big")
        offset += 9 + length
    return code


def _goaway(events) -> int | None:
    codes = [e.error_code for e in events if isinstance(e, h2.events.ConnectionTerminated)]
    assert len(codes) <= 1
    return int(codes[0]) if codes else None


@pytest.fixture
def h2_connection():
    harness = Harness()
    connection, transport = _connect(harness, b"h2")
    client = _h2_client()
    return harness, connection, transport, client


def _read_no_more(connection) -> list[bytes]:
    """What the channel is handed from now on."""
    handed: list[bytes] = []
    connection.channel.dataReceived = handed.append
    return handed


def test_twisted_internals_the_guarded_connection_relies_on_are_there():
    """The private Twisted HTTP/2 names GuardedH2Connection overrides or reads still exist (else this fails)."""
    h2_class = _h2_connection_class()
    assert list(inspect.signature(h2_class.writeDataToStream).parameters) == ["self", "streamID", "data"]
    assert callable(h2_class.timeoutConnection) and callable(h2_class.dataReceived)
    assert list(inspect.signature(h2_class.writeHeaders).parameters) == ["self", "version", "code", "reason",
                                                                         "headers", "streamID"]  # fmt: skip
    assert list(inspect.signature(h2_class._sendPrioritisedData).parameters) == ["self", "args"]
    assert list(inspect.signature(h2_class._tryToWriteControlData).parameters) == ["self"]
    connection = h2_class(reactor=Harness().clock)
    assert connection.conn.config.client_side is False and connection.conn.max_inbound_frame_size == 16384


def test_an_oversized_frame_gets_goaway_frame_size_error_and_nothing_more_is_read(h2_connection):
    """Its header alone cuts it: GOAWAY FRAME_SIZE_ERROR, no more reading, the transport closes, counted."""
    harness, connection, transport, client = h2_connection
    connection.dataReceived(client.data_to_send() + frame(DATA, 0, 1, length=1 << 20) + bytes(1000))
    assert _goaway(_server_said(client, transport)) == 6
    handed = _read_no_more(connection)
    connection.dataReceived(bytes(1 << 20))
    assert handed == [] and transport.disconnecting and transport.producer is None
    assert harness.site.counters.http2_cuts == {"protocol_error": 1}
    assert harness.site.counters.report()["http2_cut_protocol_error"] == 1


def test_a_client_that_takes_nothing_after_the_hang_up_is_aborted_after_the_grace():
    """The GOAWAY may wait in the transport for a while; then the connection is aborted."""
    harness = Harness()
    connection, transport = _connect(harness, b"h2")
    connection.dataReceived(_h2_client().data_to_send() + frame(DATA, 0, 1, length=1 << 20))
    harness.clock.advance(HANG_UP_GRACE - 0.1)
    assert transport.disconnecting and not transport.disconnected
    harness.clock.advance(0.1)
    assert transport.disconnected  # StringTransport's abortConnection


def test_a_protocol_error_h2_finds_ends_the_stream_and_the_connection(h2_connection):
    """WINDOW_UPDATE of 0 on an open stream's connection: GOAWAY PROTOCOL_ERROR, the stream ends, hung up."""
    harness, connection, transport, client = h2_connection
    _get(client, "/events/news")
    connection.dataReceived(client.data_to_send())
    harness.clock.advance(0)
    assert harness.service.hub.streams_open == 1
    connection.dataReceived(frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)))
    assert _goaway(_server_said(client, transport)) == 1
    assert harness.service.hub.streams_open == 0 and transport.disconnecting and transport.producer is None
    handed = _read_no_more(connection)
    connection.dataReceived(frame(PING, 0, 0, bytes(8)))
    assert handed == [] and harness.site.counters.http2_cuts == {"protocol_error": 1}


def test_a_ping_flood_on_an_open_stream_gets_enhance_your_calm(h2_connection):
    """PINGs within the budget are answered; past it: GOAWAY ENHANCE_YOUR_CALM, the stream ends, counted."""
    harness, connection, transport, client = h2_connection
    _get(client, "/events/news")
    connection.dataReceived(client.data_to_send() + frame(PING, 0, 0, b"12345678") * 100)
    harness.clock.advance(0)
    acks = [e for e in _server_said(client, transport) if isinstance(e, h2.events.PingAckReceived)]
    assert len(acks) == 100 and connection.channel.control_frames == 101  # and the client's SETTINGS
    connection.dataReceived(frame(PING, 0, 0, b"12345678") * 1000)
    events = _server_said(client, transport)
    assert _goaway(events) == 11 and not any(isinstance(e, h2.events.PingAckReceived) for e in events)
    assert harness.service.hub.streams_open == 0 and transport.disconnecting
    assert harness.site.counters.http2_cuts == {"control_flood": 1}


def test_a_client_within_the_budget_for_hours_is_never_cut():
    """A PING a second (what a keepalive does) on a quiet stream, for three hours."""
    harness = Harness(max_stream_age=0)
    connection, transport = _connect(harness, b"h2")
    client = _h2_client()
    _get(client, "/events/news")
    connection.dataReceived(client.data_to_send())
    for _ in range(3 * 3600):
        harness.clock.advance(1)
        connection.dataReceived(frame(PING, 0, 0, b"12345678"))
    assert not transport.disconnecting and harness.service.hub.streams_open == 1
    assert harness.site.counters.http2_cuts == {}


def _request_block(path: str) -> bytes:
    """A HEADERS frame's payload for GET `path`, as the h2 library encodes it."""
    request = _h2_client()
    request.send_headers(1, [(":method", "GET"), (":path", path), (":scheme", "https"), (":authority", "localhost")])
    block = request.data_to_send()[len(_h2_client().data_to_send()) :]
    return block[9 : 9 + int.from_bytes(block[:3], "big")]


def _rapid_reset(connection, transport, pairs: int) -> int:
    """Streams opened and reset, a pair per read, until the connection is cut: the last stream id sent."""
    headers = _request_block("/nowhere")
    for stream_id in range(1, 2 * pairs, 2):
        connection.dataReceived(frame(HEADERS, 0x4, stream_id, headers) + frame(RST_STREAM, 0, stream_id, bytes(4)))
        if transport.disconnecting:
            break
    return stream_id


def test_rapid_reset_is_cut_by_the_budget(h2_connection):
    """Streams opened and reset at once lose a token a pair: cut at about 200 pairs, ENHANCE_YOUR_CALM."""
    harness, connection, transport, client = h2_connection
    connection.dataReceived(client.data_to_send())
    last = _rapid_reset(connection, transport, 1100)
    assert _raw_goaway(transport.value()) == 11
    assert harness.site.counters.http2_cuts == {"control_flood": 1} and 2 * 190 < last < 2 * 210


def test_twisteds_own_bound_on_stream_resets_counts_as_a_control_flood(h2_connection):
    """Past a budget that would allow them, Twisted's bound (1,000 resets) still cuts, and it is counted."""
    harness, connection, transport, client = h2_connection
    connection.dataReceived(client.data_to_send())
    connection.channel._guard.budget = ControlBudget(0.0, burst=10**6)
    last = _rapid_reset(connection, transport, 1100)
    assert _raw_goaway(transport.value()) == 11
    assert harness.site.counters.http2_cuts == {"control_flood": 1} and 2 * 990 < last < 2 * 1010


def test_a_request_and_its_reset_in_one_read_break_nothing(h2_connection):
    """h2 is handed one frame at a time: a stream answered, reset and followed by another in one read raises
    nothing (Twisted used to write to a stream h2 had already closed), and the next stream is answered."""
    harness, connection, transport, client = h2_connection
    first = _get(client, "/healthz")
    client.reset_stream(first)
    second = _get(client, "/healthz")
    connection.dataReceived(client.data_to_send())  # one read: HEADERS, RST_STREAM, HEADERS
    for _ in range(5):
        harness.clock.advance(0)
    events = _server_said(client, transport)
    answered = {e.stream_id: dict(e.headers)[":status"] for e in events if isinstance(e, h2.events.ResponseReceived)}
    assert answered == {second: "200"} and not transport.disconnecting
    assert harness.site.counters.http2_cuts == {}


def test_priority_for_a_thousand_streams_never_opened_is_cut_not_raised(h2_connection):
    """Twisted's priority tree holds 1,000 streams and raises past it: that is a control flood, with GOAWAY."""
    harness, connection, transport, client = h2_connection
    connection.dataReceived(client.data_to_send())
    connection.channel._guard.budget = ControlBudget(0.0, burst=10**6)
    priorities = b"".join(frame(2, 0, n, struct.pack(">IB", 0, 15)) for n in range(1, 2 * 1100, 2))
    connection.dataReceived(priorities)
    assert _goaway(_server_said(client, transport)) == 11 and transport.disconnecting
    assert harness.site.counters.http2_cuts == {"control_flood": 1}


def test_a_sending_loop_that_breaks_cuts_the_connection(h2_connection):
    """Should Twisted's sending loop raise, the connection is cut (GOAWAY INTERNAL_ERROR), not left unsent."""
    harness, connection, transport, client = h2_connection
    _get(client, "/healthz")
    connection.dataReceived(client.data_to_send())

    def broken(*args, **kwargs):
        raise h2.exceptions.StreamClosedError(1)

    connection.channel.conn.send_data = broken
    harness.clock.advance(0)
    assert _goaway(_server_said(client, transport)) == 2 and transport.disconnecting
    assert harness.site.counters.http2_cuts == {"protocol_error": 1}


def test_a_header_list_past_16_kib_is_a_control_flood(h2_connection):
    """Header lists as large as HTTP/1.1 takes: past 16 KiB decoded, GOAWAY ENHANCE_YOUR_CALM."""
    harness, connection, transport, client = h2_connection
    client.send_headers(1, [(":method", "GET"), (":path", "/healthz"), (":scheme", "https"),
                            (":authority", "x"), *[("x-big", "y" * 1000)] * 17], end_stream=True)  # fmt: skip
    connection.dataReceived(client.data_to_send())
    assert _raw_goaway(transport.value()) == 11
    assert harness.site.counters.http2_cuts == {"control_flood": 1}
    small = _h2_client()
    _get(small, "/healthz")
    other, other_transport = _connect(harness, b"h2")
    other.dataReceived(small.data_to_send())
    assert not other_transport.disconnecting


def test_a_client_that_says_goodbye_is_hung_up_on_and_not_counted(h2_connection):
    """The client's own GOAWAY: nothing more is read, and it is no attack."""
    harness, connection, transport, client = h2_connection
    client.close_connection()
    connection.dataReceived(client.data_to_send())
    handed = _read_no_more(connection)
    connection.dataReceived(frame(PING, 0, 0, bytes(8)))
    assert handed == [] and transport.disconnecting and harness.site.counters.http2_cuts == {}


def test_the_drain_says_goaway_and_hangs_up_without_counting_what_follows(h2_connection):
    """Shutting down: GOAWAY NO_ERROR once the streams are done; frames the client sends after are no error."""
    harness, connection, transport, client = h2_connection
    connection.dataReceived(client.data_to_send())
    _server_said(client, transport)
    harness.site.close_connections(5)
    assert _goaway(_server_said(client, transport)) == 0 and transport.disconnecting
    connection.dataReceived(frame(PING, 0, 0, bytes(8)))
    assert harness.site.counters.http2_cuts == {}


def test_cuts_are_logged_one_line_each_within_the_budget():
    """Thirty clients cut in one second: ten lines, then one that counts the rest; no traceback anywhere."""
    harness = Harness()
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        for _ in range(30):
            connection, _ = _connect(harness, b"h2")
            connection.dataReceived(_h2_client().data_to_send() + frame(DATA, 0, 1, length=1 << 20))
        harness.clock.advance(1)
    finally:
        globalLogPublisher.removeObserver(events.append)
    mine = [e for e in events if e.get("log_namespace") == "twisted_sse.web._h2_connection"]
    assert len(mine) == 10 and all("log_failure" not in e for e in events)
    assert "a DATA frame of 1048576 bytes" in mine[0]["message"]
    summary = [e for e in events if e.get("what") == "HTTP/2 connections cut"]
    assert [e["count"] for e in summary] == [20]
    assert harness.site.counters.http2_cuts == {"protocol_error": 30}


def test_a_guarded_connection_is_its_transports_producer(h2_connection):
    """Registered as Twisted's own HTTP/2 setup does: a client that stops reading pauses it."""
    _, connection, transport, _ = h2_connection
    connection.dataReceived(_h2_client().data_to_send())
    assert isinstance(connection.channel, GuardedH2Connection) and transport.producer is connection.channel


def test_a_client_that_never_reads_its_ping_answers_is_aborted_and_counted(h2_connection):
    """Transport full (producer paused): Twisted keeps at most 17 KiB of answers, then aborts; a control flood."""
    harness, connection, transport, client = h2_connection
    connection.dataReceived(client.data_to_send())
    connection.channel._guard.budget = ControlBudget(0.0, burst=10**6)
    connection.channel.pauseProducing()  # what the transport does when the client stops reading
    connection.dataReceived(frame(PING, 0, 0, bytes(8)) * 2000)
    assert transport.disconnected and harness.site.counters.http2_cuts == {"control_flood": 1}
    handed = _read_no_more(connection)
    connection.dataReceived(frame(PING, 0, 0, bytes(8)))
    assert handed == []
