"""The site: header and body deadlines, body limits, what is never parsed, the pending-connection bound."""

import pytest

from tests.http_harness import Client, Harness


class TestHeaderDeadline:
    def test_client_that_never_finishes_its_headers_is_cut(self):
        """A connection whose request headers aren't complete within --header-timeout is cut."""
        harness = Harness(header_timeout=10)
        client = Client(harness.site)
        client.protocol.dataReceived(b"GET /events/a HTTP/1.1\r\nHost: x\r\n")
        for _ in range(19):
            harness.clock.advance(0.5)
            client.protocol.dataReceived(b"X")  # one byte now and then keeps Twisted's idle timer alive
        assert not client.transport.disconnected
        harness.clock.advance(0.6)
        assert client.transport.disconnected

    def test_headers_in_time_are_not_cut_and_the_stream_lives_on(self):
        """Complete headers disarm the deadline: a stream stays open long after it."""
        harness = Harness(header_timeout=10)
        client = harness.stream("/events/a")
        harness.clock.advance(3600)
        assert not client.transport.disconnected

    def test_idle_keep_alive_connection_gets_the_deadline_again(self):
        """After a response, the next request's headers have the same deadline."""
        harness = Harness(header_timeout=10)
        client = Client(harness.site)
        client.send("GET", "/healthz")
        harness.clock.advance(9)
        assert not client.transport.disconnected
        harness.clock.advance(2)
        assert client.transport.disconnected


class TestBodyLimit:
    def test_declared_length_over_the_limit_is_refused_before_the_body(self):
        """A Content-Length past the limit gets 413 at once and the connection is closed."""
        harness = Harness(max_message_size=100)
        client = Client(harness.site)
        client.protocol.dataReceived(
            b"POST /events/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret\r\nContent-Length: 10000000000\r\n\r\n"
        )
        assert client.transport.value().startswith(b"HTTP/1.1 413 ")
        assert client.transport.disconnecting
        client.protocol.dataReceived(b"x" * 10000)  # more body: discarded, nothing else answered
        assert client.transport.value().count(b"HTTP/1.1") == 1

    def test_chunked_body_over_the_limit_is_refused_when_it_passes(self):
        """A chunked body is refused with 413 as soon as the bytes received pass the limit."""
        harness = Harness(max_message_size=100)
        listener = harness.stream("/events/a")
        client = Client(harness.site)
        client.protocol.dataReceived(
            b"POST /events/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        client.protocol.dataReceived(b"50\r\n" + b"x" * 80 + b"\r\n")
        assert client.transport.value() == b""
        client.protocol.dataReceived(b"50\r\n" + b"x" * 80 + b"\r\n0\r\n\r\n")
        assert client.transport.value().startswith(b"HTTP/1.1 413 ")
        assert listener.response().events() == []

    def test_client_leaving_mid_body_publishes_nothing(self):
        """A POST whose client disconnects mid-body publishes nothing and leaves nothing behind."""
        harness = Harness()
        listener = harness.stream("/events/a")
        client = Client(harness.site)
        client.protocol.dataReceived(
            b"POST /events/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret\r\nContent-Length: 100\r\n\r\nhalf"
        )
        client.drop()
        assert listener.response().events() == []
        assert harness.service.hub.streams_open == 1


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (b"GET /" + b"a" * 20000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", b"414"),
        (b"GET /events/a HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 20000 + b"\r\n\r\n", b"431"),
        (b"GET /events/a HTTP/1.1\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(600)) + b"\r\n", b"400"),
        (b"BREW /events/a HTTP/1.1\r\nHost: x\r\n\r\n", b"405"),
        (b"GET /events/a\r\n\r\n", b"400"),
    ],
)
def test_oversized_or_malformed_requests_get_4xx(raw, status):
    """Oversized request lines and headers, too many headers and malformed lines get a 4xx."""
    harness = Harness()
    client = Client(harness.site)
    client.protocol.dataReceived(raw)
    assert client.transport.value().split(b" ")[1] == status
    assert harness.service.hub.streams_open == 0


@pytest.mark.parametrize(
    "content_type", [b"\x850", b"multipart/form-data; boundary=x", b"application/x-www-form-urlencoded"]
)
def test_publish_body_is_never_parsed_as_a_form(content_type):
    """A POST's body is published as sent whatever its Content-Type (Twisted's form parser raised on byte 0x85)."""
    harness = Harness()
    listener = harness.stream("/events/a")
    client = Client(harness.site)
    body = b"a=1&b=2"
    client.protocol.dataReceived(
        b"POST /events/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret\r\nContent-Type: " + content_type
        + b"\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
    )  # fmt: skip
    assert client.response().status == 200
    assert [e.data for e in listener.response().events()] == ["a=1&b=2"]


def test_bytes_pipelined_behind_a_stream_are_dropped_and_reading_goes_on():
    """A client that pipelines 64 KiB behind its stream keeps being read (so its leaving is seen), nothing is kept."""
    harness = Harness()
    client = harness.stream("/events/a")
    client.protocol.dataReceived(b"GET /events/b HTTP/1.1\r\nHost: x\r\n\r\n" + b"x" * 65536)
    assert client.transport.producerState == "producing"
    assert harness.service.hub.streams_open == 1  # the pipelined request is not served behind a stream
    client.drop()
    assert harness.service.hub.streams_open == 0


class TestBodies:
    @pytest.mark.parametrize(
        ("auth", "status"), [("", b"401"), ("Authorization: Bearer wrong\r\n", b"403")]
    )  # fmt: skip
    @pytest.mark.parametrize("path", [b"/events/a", b"/events", b"/events/"])
    def test_a_publish_without_a_good_token_is_refused_before_its_body(self, auth, status, path):
        """Headers that say no are answered at once and the connection closed: not one body byte is awaited
        (a batch too: its channels are in the body, but no credential publishes on none)."""
        harness = Harness()
        client = Client(harness.site)
        client.protocol.dataReceived(
            b"POST " + path + b" HTTP/1.1\r\nHost: x\r\n" + auth.encode() + b"Content-Length: 1000000\r\n\r\n"
        )
        answer = client.transport.value()
        assert answer.split(b" ")[1] == status and client.transport.disconnecting
        assert (b"WWW-Authenticate: Bearer" in answer) is (status == b"401")
        assert (
            harness.service.hub.counters.report()[
                "refused_unauthenticated" if status == b"401" else "refused_forbidden"
            ]
            == 1
        )

    def test_a_body_that_does_not_arrive_in_time_gets_408(self):
        """--body-timeout after the headers, a body still incomplete is answered 408 and the connection closed."""
        harness = Harness(body_timeout=10)
        listener = harness.stream("/events/a")
        client = Client(harness.site)
        client.protocol.dataReceived(
            b"POST /events/a HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer secret\r\nContent-Length: 100\r\n\r\nhalf"
        )
        harness.clock.advance(9.9)
        assert client.transport.value() == b""
        harness.clock.advance(0.1)
        assert client.transport.value().startswith(b"HTTP/1.1 408 ") and client.transport.disconnecting
        assert listener.response().events() == []

    def test_a_body_in_time_is_published_and_no_timer_is_left(self):
        """A body that arrives in time is published; its deadline is gone with it."""
        harness = Harness(body_timeout=10)
        response = harness.publish("a", b"whole")
        assert response.status == 200
        assert [c for c in harness.clock.getDelayedCalls() if "_body_too_slow" in repr(c.func)] == []


def test_past_max_pending_the_oldest_connection_that_is_no_stream_is_cut():
    """Idle or slow connections can't take every descriptor: the oldest non-stream one goes; streams stay."""
    harness = Harness(max_pending=2)
    stream = harness.stream("/events/a")
    idle = [Client(harness.site) for _ in range(2)]
    assert not any(c.transport.disconnecting for c in idle)
    answer = harness.request("GET", "/healthz")  # a third non-stream connection: the oldest idle one is cut
    assert answer.status == 200
    assert [c.transport.disconnecting for c in idle] == [True, False]
    assert not stream.transport.disconnecting
    assert harness.service.hub.counters.connections_cut_pending == 1


def test_a_connection_that_sent_nothing_before_the_drain_gets_its_request_answered_then_closed():
    """Accepted just before the listeners closed, a client's request is on its way: it is answered with
    Connection: close, not cut; a connection that already had its answer is closed at once."""
    harness = Harness()
    answered = Client(harness.site)
    answered.send("GET", "/healthz")
    assert answered.response().status == 200
    fresh = Client(harness.site)
    closing = harness.site.close_connections(5)
    assert answered.transport.disconnecting and not fresh.transport.disconnecting
    fresh.send("GET", "/healthz")
    response = fresh.response()
    assert response.status == 200 and response.headers["connection"] == "close"
    assert fresh.transport.disconnecting
    fresh.drop()
    answered.drop()
    assert closing.called
