"""Publishing over HTTP: the answer says what Redis and its replicas confirmed."""

import io
import json

import pytest
from twisted.internet.defer import succeed

from tests.http_harness import Harness
from twisted_sse.core import MemoryBroker, Receipt

pytestmark = pytest.mark.usefixtures("both_post_paths")


class Replicating(MemoryBroker):
    """The in-process broker, with replicas that confirm (or not) as the test says."""

    replicated: bool | None = True

    def publish(self, publications):
        receipt = super().publish(publications).result
        return succeed(Receipt(receipt.ids, self.replicated))


def test_a_publish_the_replicas_confirmed_is_200_and_says_so():
    harness = Harness(broker=Replicating())
    response = harness.publish("news", b"x")
    assert response.status == 200
    assert json.loads(response.body) == {"channel": "news", "id": json.loads(response.body)["id"], "replicated": True}


def test_a_publish_the_replicas_did_not_confirm_in_time_is_202_with_its_id():
    """Live already: 202 Accepted with the id, not a failure that invites a duplicate retry."""
    broker = Replicating()
    broker.replicated = False
    harness = Harness(broker=broker)
    stream = harness.stream("/events/news")
    response = harness.publish("news", b"x")
    answer = json.loads(response.body)
    assert response.status == 202 and answer["replicated"] is False and answer["id"]
    assert [e.last_event_id for e in stream.response().events()] == [answer["id"]]


def test_without_replicas_the_answer_is_200_without_a_replicated_field():
    response = Harness().publish("news", b"x")
    assert response.status == 200 and set(json.loads(response.body)) == {"channel", "id"}


NDJSON = {"Authorization": "Bearer secret", "Content-Type": "application/x-ndjson"}


def _batch(harness, body, headers=NDJSON):
    return harness.request("POST", "/events", headers, body)


def test_a_batch_is_published_in_order_and_answered_with_the_ids_in_order():
    harness = Harness()
    news, other = harness.stream("/events/news"), harness.stream("/events/other")
    body = (b'{"channel": "news", "data": "one"}\n{"channel": "other", "data": "two", "event": "update"}\n\n'
            b'{"channel": "news", "data": "th\\u00e9 \\"3\\"\\nlines"}\n')  # fmt: skip
    response = _batch(harness, body)
    assert response.status == 200
    ids = json.loads(response.body)["ids"]
    assert len(ids) == 3 and ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-"))))
    assert [(e.data, e.last_event_id) for e in news.response().events()] == [
        ("one", ids[0]), ('thé "3"\nlines', ids[2]),
    ]  # fmt: skip
    assert [(e.type, e.data, e.last_event_id) for e in other.response().events()] == [("update", "two", ids[1])]
    assert harness.service.counters.published_events == 3 and harness.service.counters.publishes == {"ok": 1}


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b'{"channel": "news", "data": "ok"}\n{"channel": "bad name", "data": "x"}', "line 2: invalid channel name"),
        (b'{"channel": "news", "data": "ok"}\nnot json', "line 2: not a JSON object"),
        (b"[1, 2]", "line 1: not a JSON object"),
        (b'{"channel": "news", "data": {"a": 1}}', "line 1: channel and data must be strings"),
        (b'{"channel": "news", "data": "x", "evnt": "t"}', "line 1: unknown field 'evnt'"),
        (b'{"channel": "news", "data": "x", "event": "a\\nb"}', "line 1: "),
        (b'{"channel": "news", "data": "x", "event": "' + b"e" * 257 + b'"}', "line 1: the event type is longer"),
        (b'\n\n{"channel": "news", "data": "\\ud800"}', "line 3: data is not valid Unicode"),
        (b"\xff\xfe", "line 1: not a JSON object"),
        (b"\n \n", "no events"),
    ],
)
def test_one_bad_line_refuses_the_whole_batch_naming_the_line(body, words):
    harness = Harness()
    stream = harness.stream("/events/news")
    response = _batch(harness, body)
    assert response.status == 400 and words in response.body.decode(), response.body
    assert response.body.startswith(b"nothing published: ")
    assert stream.response().events() == []  # not even the good lines before it


def test_a_batch_is_bounded_by_the_body_size_and_the_line_count():
    harness = Harness(max_message_size=200, max_batch=3)
    line = b'{"channel": "n", "data": "x"}\n'
    assert _batch(harness, line * 3).status == 200
    too_many = _batch(harness, line * 4)
    assert too_many.status == 400 and b"line 4: more than 3 events" in too_many.body
    assert _batch(harness, line * 7).status == 413  # 210 bytes


def test_a_batch_must_say_it_is_ndjson():
    response = _batch(Harness(), b'{"channel": "n", "data": "x"}', {"Authorization": "Bearer secret"})
    assert response.status == 415 and b"application/x-ndjson" in response.body


def test_a_batch_needs_the_publish_token_or_a_jwt_covering_every_channel():
    import time

    from twisted_sse.tokens import subscriber_token

    secret = "k" * 32
    harness = Harness(jwt_key=secret)
    harness.clock.advance(time.time())
    body = b'{"channel": "chat.1", "data": "x"}\n{"channel": "chat.2", "data": "y"}\n{"channel": "admin", "data": "z"}'
    assert _batch(harness, body, {"Content-Type": "application/x-ndjson"}).status == 401
    token = subscriber_token(secret, publish=["chat.*"])
    jwt = {"Content-Type": "application/x-ndjson", "Authorization": f"Bearer {token}"}
    refused = _batch(harness, body, jwt)
    assert refused.status == 403 and b"admin" in refused.body
    assert _batch(harness, body.rsplit(b"\n", 1)[0], jwt).status == 200
    assert _batch(harness, body).status == 200  # the static token publishes anywhere


def test_a_failed_batch_is_a_503_and_none_of_it_is_answered_as_published():
    from twisted.internet.defer import fail

    class Down(MemoryBroker):
        def publish(self, publications):
            return fail(RuntimeError("Redis is not connected"))

    response = _batch(Harness(broker=Down()), b'{"channel": "n", "data": "x"}\n{"channel": "m", "data": "y"}')
    assert response.status == 503 and b"publishing failed" in response.body


def test_the_resource_trusts_the_sites_screen_only_for_the_very_channel_it_checked():
    """`SSEResource.screen` checks a publish on its headers and records the channel; the resource then
    skips checking that channel again (a JWT is verified once), and checks any other."""
    from twisted.web.test.requesthelper import DummyRequest

    from twisted_sse.web._resource import _SCREENED

    harness = Harness()

    def post(channel, screened):
        request = DummyRequest([b"events", channel.encode()])
        request.method = b"POST"
        request.content = io.BytesIO(b"x")
        setattr(request, _SCREENED, screened)
        harness.service.resource.getChildWithDefault(b"events", request).getChildWithDefault(
            channel.encode(), request
        ).render(request)
        return request

    assert post("news", screened="other").responseCode == 401  # no token, and not this channel's screen
    allowed = post("news", screened="news")
    assert allowed.responseCode in (None, 200) and json.loads(b"".join(allowed.written))["channel"] == "news"
