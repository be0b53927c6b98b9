"""Random requests against the HTTP surface: always a clear answer, never a 500, nothing leaked."""

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.http_harness import Client, Harness, _parse

ANSWERS = {200, 204, 400, 401, 403, 404, 405, 413, 414, 415, 431}

header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255, exclude_characters="\x7f"), max_size=60)
path = st.one_of(
    st.sampled_from(["/events/news", "/events", "/events/", "/healthz", "/", "/events/a/b"]),
    st.builds(lambda p: "/events/" + p, st.text(st.sampled_from("ab%:._-/?&=#\u00e9 20FF"), max_size=30)),
    st.builds(
        lambda cs: "/events?" + "&".join(f"channel={c}" for c in cs),
        st.lists(st.text(st.sampled_from("abc:._-%!"), max_size=5), max_size=70),
    ),
    st.builds(lambda q: "/events/news?" + q, st.text(st.sampled_from("event=lastEventId%0A0D&1-2"), max_size=40)),
)
headers = st.dictionaries(
    st.sampled_from(["Last-Event-ID", "Authorization", "Origin", "Content-Type", "Accept", "X-Junk"]),
    st.one_of(header_text, st.just("Bearer secret"), st.just("1-0"), st.just("application/x-ndjson")),
    max_size=4,
)
request = st.tuples(
    st.sampled_from(["GET", "HEAD", "POST", "OPTIONS", "PUT", "DELETE", "PATCH", "X"]),
    path,
    headers,
    st.one_of(
        st.binary(max_size=300),
        st.lists(
            st.sampled_from(
                [
                    b'{"channel": "news", "data": "x"}',
                    b'{"channel": "n", "data": "y", "event": "e"}',
                    b"",
                    b"{",
                    b'{"channel": 1}',
                    b'{"channel": "n", "data": "\\ud800"}',
                ]
            ),
            max_size=5,
        ).map(b"\n".join),
    ),
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(request, min_size=1, max_size=8))
def test_random_requests_get_clear_answers_and_leave_nothing(requests):
    """Any mix of requests gets well-formed 2xx/4xx answers; once clients leave nothing is held."""
    harness = Harness(max_message_size=200, cors_origins=("https://app.example",))
    clients = []
    for method, target, extra, body in requests:
        client = Client(harness.site)
        lines = [f"{method} {target} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in extra.items())]
        lines.append(f"Content-Length: {len(body)}")
        client.protocol.dataReceived("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
        raw = client.transport.value()
        assert raw.startswith(b"HTTP/1.1 "), raw[:80]
        assert int(raw.split(b" ")[1]) in ANSWERS, raw[:200]
        clients.append(client)
    # A normal stream and publish still work among whatever came before.
    probe = harness.stream("/events/probe")
    assert harness.publish("probe", b"still fine").status == 200
    assert [e.data for e in probe.response().events()] == ["still fine"]
    for client in [*clients, probe]:
        client.drop()
    hub = harness.service.hub
    assert (hub.streams_open, hub.channels_held, harness.service.broker.subscribed) == (0, 0, set())


def _answer_without_ids(raw: bytes) -> tuple[bytes, dict[str, str], object]:
    """An answer's status line, headers (but Date) and body, with publish ids (wall-clock based) made positions."""
    response = _parse(raw)
    headers = {name: value for name, value in response.headers.items() if name != "date"}
    body: object = response.body
    if response.status in (200, 202):
        answer = json.loads(response.body)
        body = {**answer, "id": "id" in answer, "ids": len(answer.get("ids", []))}
    return raw.split(b"\r\n", 1)[0], headers, body


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(st.lists(request.map(lambda r: ("POST", *r[1:])), min_size=1, max_size=6), st.booleans())
def test_whole_posts_are_answered_as_twisteds_request_machinery_answers_them(requests, cors):
    """The same POSTs, each in one read, to the site and to the resource served by Twisted alone (as when
    mounted in an application's own Site): the same answers, byte for byte but the Date, and the same events."""
    settings_ = {"max_message_size": 200, "cors_origins": ("https://app.example", "*") if cors else ()}
    whole, twisted = Harness(**settings_), Harness(**settings_)
    whole.site.screen = twisted.site.screen = None  # the screen refuses before the body: tested on its own
    twisted.site.whole_post = None
    streams = [harness.stream("/events?channel=news&channel=n") for harness in (whole, twisted)]
    for method, target, extra, body in requests:
        lines = [f"{method} {target} HTTP/1.1", "Host: test", *(f"{k}: {v}" for k, v in extra.items())]
        raw = "\r\n".join([*lines, f"Content-Length: {len(body)}"]).encode("latin-1") + b"\r\n\r\n" + body
        answers = []
        for harness in (whole, twisted):
            client = Client(harness.site)
            client.protocol.dataReceived(raw)
            answers.append(_answer_without_ids(client.transport.value()))
        assert answers[0] == answers[1]
    events = [[(e.type, e.data) for e in stream.response().events()] for stream in streams]
    assert events[0] == events[1]
