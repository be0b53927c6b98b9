"""A publisher's connection: whole POSTs answered in order, and Twisted's channel taking over for the rest."""

import json
import re

from twisted.internet.defer import Deferred
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure
from twisted.web.http import HTTPChannel

from tests.http_harness import Client, Harness, SocketClient, _parse
from twisted_sse.core import MemoryBroker
from twisted_sse.web._post_channel import PostChannel


class HeldBroker(MemoryBroker):
    """The in-process broker, whose publishes wait until the test lets them through."""

    def __init__(self):
        super().__init__()
        self.held: list[tuple[list, Deferred]] = []

    def publish(self, publications):
        waiting = Deferred()
        self.held.append((publications, waiting))
        return waiting

    def release(self):
        publications, waiting = self.held.pop(0)
        waiting.callback(super().publish(publications).result)


def _post(channel: str, body: bytes, *headers: bytes) -> bytes:
    lines = [b"POST /events/%s HTTP/1.1" % channel.encode(), b"Host: x", b"Authorization: Bearer secret", *headers,
             b"Content-Length: %d" % len(body)]  # fmt: skip
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def _answers(raw: bytes) -> list[tuple[int, dict]]:
    answers = []
    while raw:
        head, _, rest = raw.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length: *(\d+)", head)[1])
        response = _parse(head + b"\r\n\r\n" + rest[:length])
        answers.append((response.status, json.loads(response.body) if response.status < 300 else response.body))
        raw = rest[length:]
    return answers


def test_pipelined_posts_are_published_and_answered_one_at_a_time_in_order():
    """The second of two POSTs in one read waits for the first's answer, and reading stops meanwhile."""
    broker = HeldBroker()
    harness = Harness(broker=broker)
    listener = harness.stream("/events?channel=a&channel=b&channel=c")
    client = Client(harness.site)
    client.protocol.dataReceived(_post("a", b"one") + _post("b", b"two"))
    assert [p for p, _ in broker.held] == [[("a", b"one", None)]] and client.transport.value() == b""
    client.protocol.dataReceived(_post("c", b"three"))
    assert client.transport.producerState == "paused"
    broker.release()
    assert [status for status, _ in _answers(client.transport.value())] == [200]
    harness.clock.advance(0)
    assert [p for p, _ in broker.held] == [[("b", b"two", None)]] and client.transport.producerState == "producing"
    broker.release()
    harness.clock.advance(0)
    broker.release()
    answers = _answers(client.transport.value())
    assert [a["channel"] for _, a in answers] == ["a", "b", "c"]
    assert [a["id"] for _, a in answers] == [e.last_event_id for e in listener.response().events()]
    assert isinstance(client.protocol.channel, PostChannel)


def test_a_get_after_posts_on_the_same_connection_is_served_by_twisted_and_streams():
    """The first request that isn't a whole POST hands the connection, with that request, to Twisted's channel."""
    harness = Harness()
    client = Client(harness.site)
    client.protocol.dataReceived(_post("a", b"one"))
    assert isinstance(client.protocol.channel, PostChannel)
    client.transport.clear()
    client.send("GET", "/events/a")
    assert isinstance(client.protocol.channel, HTTPChannel)
    harness.publish("a", b"live")
    response = client.response()
    assert response.status == 200 and [e.data for e in response.events()] == ["live"]


def test_a_post_split_over_two_reads_is_read_by_twisted_and_published_once():
    harness = Harness()
    listener = harness.stream("/events/a")
    client = Client(harness.site)
    request = _post("a", b"split body")
    client.protocol.dataReceived(request[:-4])
    client.protocol.dataReceived(request[-4:])
    assert isinstance(client.protocol.channel, HTTPChannel)
    assert client.response().status == 200
    assert [e.data for e in listener.response().events()] == ["split body"]


def test_a_post_that_is_not_a_publish_is_twisteds_to_answer():
    """POST /healthz: 405 from Twisted's request machinery, nothing published."""
    harness = Harness()
    client = Client(harness.site)
    client.protocol.dataReceived(_post("a", b"x").replace(b"/events/a", b"/healthz"))
    assert client.response().status == 405 and isinstance(client.protocol.channel, HTTPChannel)


def test_a_percent_encoded_channel_is_decoded_by_twisted():
    """`%` in the path: Twisted's unquoting decides the channel, as it always did."""
    harness = Harness()
    listener = harness.stream("/events/ab")
    client = Client(harness.site)
    client.protocol.dataReceived(_post("%61b", b"x"))
    assert client.response().status == 200 and [e.data for e in listener.response().events()] == ["x"]


def test_a_client_that_leaves_before_its_answer_gets_nothing_written_and_the_event_still_goes_out():
    broker = HeldBroker()
    harness = Harness(broker=broker)
    listener = harness.stream("/events/a")
    client = Client(harness.site)
    client.protocol.dataReceived(_post("a", b"x"))
    client.protocol.connectionLost(Failure(ConnectionDone()))
    broker.release()
    assert client.transport.value() == b"" and [e.data for e in listener.response().events()] == ["x"]
    assert harness.site.connections.get(client.protocol, "gone") == "gone"


def test_a_drain_while_an_answer_is_awaited_writes_it_then_closes():
    broker = HeldBroker()
    harness = Harness(broker=broker)
    client = Client(harness.site)
    client.protocol.dataReceived(_post("a", b"x"))
    harness.site.close_connections(5)
    assert not client.transport.disconnecting
    broker.release()
    assert [status for status, _ in _answers(client.transport.value())] == [200] and client.transport.disconnecting


def test_a_post_during_a_drain_is_answered_by_twisted_with_connection_close():
    harness = Harness()
    client = Client(harness.site)
    client.protocol.dataReceived(_post("a", b"one"))
    harness.site.draining = True
    client.transport.clear()
    client.protocol.dataReceived(_post("a", b"two"))
    response = client.response()
    assert response.status == 200 and response.headers["connection"] == "close"


def test_the_header_deadline_cuts_an_idle_publisher_but_not_one_awaiting_its_answer():
    broker = HeldBroker()
    harness = Harness(broker=broker, header_timeout=10)
    client = Client(harness.site)
    client.protocol.dataReceived(_post("a", b"x"))
    harness.clock.advance(60)
    assert not client.transport.disconnecting and not client.transport.disconnected
    broker.release()
    harness.clock.advance(9)
    assert not client.transport.disconnected
    harness.clock.advance(2)
    assert client.transport.disconnected


def test_a_client_that_does_not_read_its_answers_stops_being_read():
    """The transport's write buffer full: reading stops (this channel is its producer) until it drains."""
    harness = Harness()
    client = SocketClient(harness.site, room=0)  # the socket takes nothing
    transport = client.transport
    request = _post("a", b"x" * 200)
    sent = 0
    while transport in transport.reactor.readers and sent < 1000:
        client.protocol.dataReceived(request)
        sent += 1
    assert 100 < sent < 1000 and client.buffered() and isinstance(client.protocol.channel, PostChannel)
    client.socket.room = 1 << 22
    client.flush()
    assert transport in transport.reactor.readers and not client.buffered()
    assert [status for status, _ in _answers(bytes(client.socket.read()))] == [200] * sent


def test_with_the_access_log_every_request_is_twisteds_and_logged():
    harness = Harness(access_log=True)
    assert harness.site.whole_post is None
    client = Client(harness.site)
    client.protocol.dataReceived(_post("a", b"x"))
    assert isinstance(client.protocol.channel, HTTPChannel) and client.response().status == 200


def test_a_bug_in_publishing_is_a_500_and_the_connection_goes_on(monkeypatch):
    harness = Harness()
    client = Client(harness.site)
    surface = harness.service.resource._surface
    monkeypatch.setattr(surface, "publish", lambda request, channel: 1 / 0)
    client.protocol.dataReceived(_post("a", b"x"))
    monkeypatch.undo()
    client.protocol.dataReceived(_post("a", b"y"))
    assert [status for status, _ in _answers(client.transport.value())] == [500, 200]
