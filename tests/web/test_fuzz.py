"""Random requests against the HTTP surface: always a clear answer, never a 500, nothing leaked."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.http_harness import Client, Harness

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
