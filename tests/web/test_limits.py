"""What a server under pressure answers: refusals EventSource survives, limits, draining."""

import json
import random
import re

from tests.fakes import ManualBroker
from tests.http_harness import Harness
from tests.sse_parser import SSEParser


def _refused(response, retry_ms=3000):
    """The answer EventSource survives: 200, an event stream, a retry: in range, and the end."""
    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.complete
    parser = SSEParser()
    assert parser.feed(response.body) == []
    assert retry_ms <= parser.retry <= 3 * retry_ms
    return parser


def test_server_full_answers_retry_and_close():
    """Past --max-connections a stream gets 200, a jittered retry and a close, and holds nothing."""
    harness = Harness(max_connections=2)
    open_streams = [harness.stream("/events/a"), harness.stream("/events/b")]
    parser = _refused(harness.request("GET", "/events/c"))
    assert "full" in parser.comments[0]
    assert harness.service.hub.streams_open == 2
    assert harness.service.hub.counters.streams_refused == 1
    open_streams[0].drop()
    assert not harness.stream("/events/c").response().complete


def test_refusals_spread_their_retry():
    """Refused clients are told different delays, so they don't all come back at once."""
    harness = Harness(max_connections=1)
    harness.service.resource._surface.rng = random.Random(7)
    harness.stream("/events/a")
    retries = {_refused(harness.request("GET", "/events/a")).retry for _ in range(20)}
    assert len(retries) > 10


def test_broker_down_answers_retry_and_close():
    """While the broker is not connected a stream gets the EventSource-safe answer, not a 5xx."""
    broker = ManualBroker()
    broker.is_connected = lambda: False
    harness = Harness(broker=broker)
    parser = _refused(harness.request("GET", "/events/a"))
    assert "not connected" in parser.comments[0]
    assert harness.request("GET", "/healthz").status == 503


def test_drain_ends_every_stream_with_a_jittered_retry_and_refuses_new_ones():
    """Draining ends each stream with a retry hint in [retry, 3 x retry] and refuses new streams."""
    harness = Harness()
    clients = [harness.stream(f"/events/c{i}") for i in range(30)]
    harness.publish("c1", b"last words")
    harness.service.resource.drain()
    hints = []
    for client in clients:
        response = client.response()
        assert response.complete
        parser = SSEParser()
        parser.feed(response.body)
        hints.append(parser.retry)
    assert all(3000 <= hint <= 9000 for hint in hints) and len(set(hints)) > 20
    assert clients[1].response().events()[0].data == "last words"
    assert harness.service.hub.streams_open == 0
    _refused(harness.request("GET", "/events/new"))
    health = harness.request("GET", "/healthz")
    assert (health.status, json.loads(health.body)["status"]) == (503, "draining")


def test_paused_client_keeps_its_queue_through_close():
    """Events queued for a paused client are written before the closing retry hint, not dropped."""
    harness = Harness()
    client = harness.stream("/events/a")
    client.transport.producer.pauseProducing()
    harness.publish("a", b"queued")
    harness.service.resource.drain()
    assert [e.data for e in client.response().events()] == ["queued"]


def test_streams_per_address_are_bounded_with_the_eventsource_safe_answer():
    """Past --max-streams-per-ip an address gets 200 + retry: + close; a stream it closes makes room again."""
    harness = Harness(max_streams_per_ip=2)
    first, second = harness.stream("/events/a"), harness.stream("/events/b")
    third = harness.stream("/events/c").response()
    assert third.status == 200 and third.complete and re.match(rb"retry: \d+\n:127.0.0.1 has 2 streams", third.body)
    assert harness.service.hub.counters.streams_refused == 1
    first.drop()
    assert not harness.stream("/events/c").response().complete
    assert harness.service.hub.held_by("127.0.0.1") == (2, 2)
    second.drop()


def test_channels_per_address_are_bounded():
    """Past --max-channels-per-ip (all of an address's streams together) a stream is refused the same way."""
    harness = Harness(max_channels_per_ip=3)
    harness.stream("/events?channel=a&channel=b")
    refused = harness.stream("/events?channel=c&channel=d").response()
    assert refused.complete and b"more than 3 channels" in refused.body
    assert not harness.stream("/events/c").response().complete
    assert harness.service.hub.held_by("127.0.0.1") == (2, 3)
