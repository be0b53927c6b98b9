"""The HTTP surface, driven through real HTTP parsing on in-memory transports and a Clock."""

import json

import pytest

from tests.fakes import ManualBroker
from tests.http_harness import Harness
from tests.sse_parser import Dispatched
from twisted_sse.core._channels import MAX_CHANNELS_PER_STREAM


@pytest.fixture
def harness():
    return Harness()


def test_stream_answers_event_stream_headers_and_retry_first(harness):
    """A stream gets 200, the event-stream headers and a retry: line before any event."""
    client = harness.stream("/events/news")
    response = client.response()
    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    assert "content-encoding" not in response.headers
    assert response.body == b"retry: 3000\n"


def test_published_event_reaches_every_stream_of_the_channel(harness):
    """A POST is delivered to every stream of its channel and to no other."""
    news = [harness.stream("/events/news") for _ in range(3)]
    sport = harness.stream("/events/sport")
    answer = harness.publish("news", b"line one\nline two", "?event=headline")
    assert answer.status == 200
    event_id = json.loads(answer.body)["id"]
    assert json.loads(answer.body) == {"channel": "news", "id": event_id}
    for client in news:
        assert client.response().events() == [Dispatched("headline", "line one\nline two", event_id)]
    assert sport.response().events() == []


def test_multi_channel_stream_gets_each_channel(harness):
    """One stream naming several channels gets the events of each."""
    client = harness.stream("/events?channel=a&channel=b&channel=a")
    harness.publish("a", b"1")
    harness.publish("b", b"2")
    harness.publish("c", b"3")
    assert [e.data for e in client.response().events()] == ["1", "2"]
    assert harness.service.hub.channels_held == 2


@pytest.mark.parametrize(
    ("path", "status", "words"),
    [
        ("/events/bad%20name", 400, "invalid channel name"),
        ("/events/" + "x" * 129, 400, "invalid channel name"),
        ("/events/caf%C3%A9", 400, "invalid channel name"),
        ("/events", 400, "name a channel"),
        ("/events?channel=ok&channel=b%2Fad", 400, "invalid channel name"),
        ("/events?" + "&".join(f"channel=c{i}" for i in range(MAX_CHANNELS_PER_STREAM + 1)), 400, "at most"),
        ("/nowhere", 404, "no such resource"),
        ("/events/news/deeper", 404, "no such resource"),
        ("/", 404, "no such resource"),
    ],
)
def test_requests_that_can_never_work_get_a_plain_error(harness, path, status, words):
    """Bad channel names, missing channels and unknown paths get a 4xx with a plain message."""
    response = harness.request("GET", path)
    assert response.status == status
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert words in response.body.decode()
    assert harness.service.hub.streams_open == 0


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("PUT", "/events/news", "GET, HEAD, POST, OPTIONS"),
        ("DELETE", "/events/news", "GET, HEAD, POST, OPTIONS"),
        ("PUT", "/events?channel=a", "GET, HEAD, POST, OPTIONS"),
        ("POST", "/healthz", "GET, HEAD, OPTIONS"),
    ],
)
def test_wrong_method_gets_405_with_allow(harness, method, path, allow):
    """A method a path doesn't take gets 405 and the methods it does take."""
    response = harness.request(method, path, {"Authorization": "Bearer secret"})
    assert response.status == 405
    assert response.headers["allow"] == allow


def test_head_answers_headers_without_holding_a_stream(harness):
    """HEAD gets the stream's headers and ends at once, leaving nothing open."""
    response = harness.request("HEAD", "/events/news")
    assert response.status == 200
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.body == b""
    assert harness.service.hub.streams_open == 0


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"Authorization": "Basic c2VjcmV0"}, 401),
        ({"Authorization": "Bearer "}, 401),
        ({"Authorization": "Bearer wrong"}, 403),
        ({"Authorization": "Bearer secretX"}, 403),
    ],
)
def test_publish_needs_the_token(harness, headers, status):
    """A POST without the right bearer token is refused and delivers nothing."""
    client = harness.stream("/events/news")
    response = harness.request("POST", "/events/news", headers, b"hello")
    assert response.status == status
    if status == 401:
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert client.response().events() == []


def test_generated_token_is_used_when_none_is_configured():
    """Without a configured token the service makes a long random one and requires it."""
    harness = Harness(publish_token=None)
    token = harness.service.publish_token
    assert len(token) >= 24
    assert harness.request("POST", "/events/news", {"Authorization": "Bearer "}, b"x").status == 401
    assert harness.request("POST", "/events/news", {"Authorization": f"Bearer {token}"}, b"x").status == 200
    assert Harness(publish_token=None).service.publish_token != token


def test_publish_over_the_size_limit_gets_413():
    """A body past --max-message-size gets 413; one at the limit is published."""
    harness = Harness(max_message_size=10)
    client = harness.stream("/events/news")
    assert harness.publish("news", b"x" * 11).status == 413
    assert harness.publish("news", b"y" * 10).status == 200
    assert [e.data for e in client.response().events()] == ["y" * 10]


@pytest.mark.parametrize(
    ("query", "body", "words"),
    [
        ("?event=a%0Ab", b"x", "event type"),
        ("?event=a%0Db", b"x", "event type"),
        ("?event=a%00b", b"x", "event type"),
        ("?event=%FF", b"x", "event type"),
        ("?event=" + "e" * 257, b"x", "longer than"),
        ("", b"\xff\xfe", "not valid UTF-8"),
    ],
)
def test_publish_refuses_what_cannot_be_framed(harness, query, body, words):
    """Event types that would break framing, and bodies that aren't UTF-8, get 400."""
    client = harness.stream("/events/news")
    response = harness.publish("news", body, query)
    assert response.status == 400
    assert words in response.body.decode()
    assert client.response().events() == []


def test_empty_body_publishes_an_empty_event(harness):
    """An empty POST is a valid event with empty data."""
    client = harness.stream("/events/news")
    assert harness.publish("news", b"").status == 200
    assert [e.data for e in client.response().events()] == [""]


def test_healthz_reports_streams_and_channels(harness):
    """/healthz reports the broker kind, open streams and channels held."""
    harness.stream("/events/news")
    harness.stream("/events?channel=news&channel=sport")
    response = harness.request("GET", "/healthz")
    assert response.status == 200
    assert json.loads(response.body) == {
        "status": "ok",
        "broker": "memory",
        "connected": True,
        "streams": 2,
        "channels": 2,
        "counters": {"streams_opened": 2},
    }


def test_client_leaving_releases_stream_and_channel(harness):
    """A client that goes away is unregistered at once and its channel released."""
    clients = [harness.stream("/events/news"), harness.stream("/events?channel=news&channel=x")]
    broker = harness.service.broker
    assert broker.subscribed == {"news", "x"}
    clients[0].drop()
    assert harness.service.hub.streams_open == 1
    clients[1].drop()
    assert (harness.service.hub.streams_open, harness.service.hub.channels_held) == (0, 0)
    assert broker.subscribed == set()


def test_heartbeat_writes_a_comment_to_every_stream():
    """One shared timer writes a comment to each open stream every --heartbeat seconds."""
    harness = Harness(heartbeat=15)
    clients = [harness.stream("/events/a"), harness.stream("/events?channel=a&channel=b")]
    assert [c.getTime() for c in harness.clock.getDelayedCalls()].count(15) == 1  # one timer for all streams
    harness.clock.advance(14.9)
    assert all(c.response().body == b"retry: 3000\n" for c in clients)
    harness.clock.advance(0.1)
    assert all(c.response().body == b"retry: 3000\n:\n" for c in clients)
    harness.clock.advance(15)
    assert all(c.response().body.count(b":\n") == 2 for c in clients)


def test_heartbeat_zero_turns_it_off():
    """--heartbeat 0 schedules no timer and writes no comments."""
    harness = Harness(heartbeat=0, max_stream_age=0)
    client = harness.stream("/events/a")
    harness.clock.advance(3600)
    assert client.response().body == b"retry: 3000\n"
    now = harness.clock.seconds()
    assert [c.getTime() - now for c in harness.clock.getDelayedCalls()] == [1.0]  # only the lifetimes' tick


def test_retry_option_is_sent():
    """--retry is what the stream tells the client to wait before reconnecting."""
    assert Harness(retry_ms=1234).stream("/events/a").response().body == b"retry: 1234\n"


def test_paused_client_gets_queued_events_when_it_resumes(harness):
    """While the socket is full events wait in the stream, in order, and heartbeats are skipped."""
    client = harness.stream("/events/news")
    client.transport.producer.pauseProducing()
    harness.publish("news", b"1")
    harness.publish("news", b"2")
    harness.service.hub.heartbeat(b":\n")
    assert client.response().events() == []
    client.transport.producer.resumeProducing()
    assert [e.data for e in client.response().events()] == ["1", "2"]
    assert b":\n" not in client.response().body


def test_client_too_slow_is_cut_without_delaying_others():
    """A paused client whose queue passes max_queue is disconnected; the others still get everything."""
    harness = Harness(max_queue=100)
    slow, fast = harness.stream("/events/news"), harness.stream("/events/news")
    slow.transport.producer.pauseProducing()
    for i in range(10):
        harness.publish("news", b"%d" % i + b"x" * 20)
    assert slow.transport.disconnected  # StringTransport.abortConnection sets this
    assert harness.service.hub.counters.slow_clients_cut == 1  # once, however much more arrives
    slow.drop()  # what the reactor does once the socket is closed
    assert len(fast.response().events()) == 10
    assert harness.service.hub.streams_open == 1


def test_stream_fails_cleanly_when_the_broker_refuses_the_subscription():
    """When the broker can't subscribe, the stream ends (client retries) and nothing is left held."""
    broker = ManualBroker()
    harness = Harness(broker=broker)
    client = harness.stream("/events/news")
    broker.pending["news"].errback(RuntimeError("redis down"))
    response = client.response()
    assert response.status == 200 and response.complete
    assert (harness.service.hub.streams_open, harness.service.hub.channels_held) == (0, 0)


class TestCORS:
    def test_no_cors_headers_by_default(self, harness):
        """Without --cors-origin no CORS header is sent."""
        response = harness.request("GET", "/healthz", {"Origin": "https://app.example"})
        assert "access-control-allow-origin" not in response.headers

    def test_listed_origin_is_echoed_with_vary(self):
        """A listed origin is allowed by name, with Vary: Origin; others get no allowance."""
        harness = Harness(cors_origins=("https://app.example",))
        client = harness.stream("/events/news", {"Origin": "https://app.example"})
        headers = client.response().headers
        assert headers["access-control-allow-origin"] == "https://app.example"
        assert headers["access-control-allow-credentials"] == "true"
        assert headers["vary"] == "Origin"
        other = harness.request("HEAD", "/events/news", {"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers

    def test_star_allows_any_origin(self):
        """--cors-origin * allows every origin."""
        harness = Harness(cors_origins=("*",))
        response = harness.request("HEAD", "/events/news", {"Origin": "https://x.example"})
        assert response.headers["access-control-allow-origin"] == "*"
        assert "access-control-allow-credentials" not in response.headers  # browsers refuse * with credentials

    def test_listed_origins_get_credentials_beside_star(self):
        """With * and listed origins, a listed origin is echoed with credentials and others get * alone."""
        harness = Harness(cors_origins=("*", "https://app.example"))
        listed = harness.request("HEAD", "/events/news", {"Origin": "https://app.example"}).headers
        other = harness.request("HEAD", "/events/news", {"Origin": "https://x.example"}).headers
        assert (listed["access-control-allow-origin"], listed["access-control-allow-credentials"]) == (
            "https://app.example", "true")  # fmt: skip
        assert other["access-control-allow-origin"] == "*" and "access-control-allow-credentials" not in other

    def test_preflight_answers_methods_and_headers(self):
        """OPTIONS answers a CORS preflight with methods, headers and a max age, and opens nothing."""
        harness = Harness(cors_origins=("https://app.example",))
        response = harness.request(
            "OPTIONS",
            "/events/news",
            {"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
        )
        assert response.status == 204
        assert response.headers["access-control-allow-methods"] == "GET, HEAD, POST, OPTIONS"
        assert "Authorization" in response.headers["access-control-allow-headers"]
        assert "Last-Event-ID" in response.headers["access-control-allow-headers"]
        assert harness.service.hub.streams_open == 0
