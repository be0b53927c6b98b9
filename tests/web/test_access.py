"""Private channels through the real HTTP surface: tokens from header, cookie or query, publish grants, expiry."""

from __future__ import annotations

import time

import pytest

from tests.http_harness import Client, Harness
from twisted_sse.tokens import subscriber_token

pytestmark = pytest.mark.usefixtures("both_post_paths")

SECRET = "k" * 32


def _harness(**settings) -> Harness:
    harness = Harness(jwt_key=SECRET, public=("news", "status.*"), **settings)
    harness.clock.advance(time.time())  # token times are wall-clock seconds, as the reactor's are
    return harness


def _token(**grants) -> str:
    return subscriber_token(SECRET, **grants)


def _stream(harness: Harness, path: str, headers: dict[str, str] | None = None) -> Client:
    return harness.stream(path, headers)


def test_without_a_key_everything_is_public():
    """No --jwt-key: any channel streams without a credential, as before."""
    assert Harness().stream("/events/user.42").response().status == 200


def test_public_channels_need_no_token():
    """--public patterns stream without a credential; private ones answer 401 with WWW-Authenticate."""
    harness = _harness()
    assert _stream(harness, "/events/news").response().status == 200
    assert _stream(harness, "/events?channel=news&channel=status.db").response().status == 200
    refused = _stream(harness, "/events/user.42").response()
    assert refused.status == 401 and refused.headers["www-authenticate"].startswith("Bearer")
    assert refused.headers["content-type"].startswith("text/plain") and b"private" in refused.body
    assert harness.service.hub.counters.refused["unauthenticated"] == 1
    assert harness.service.hub.streams_open == 2


@pytest.mark.parametrize("where", ["bearer", "cookie"])
def test_a_token_opens_the_channels_it_grants(where):
    """A token for user.42 opens user.42 (and public channels with it), from the header or the cookie."""
    harness = _harness()
    token = _token(subscribe=["user.42"])
    headers = {"Authorization": f"Bearer {token}"} if where == "bearer" else {"Cookie": f"sse_token={token}"}
    assert _stream(harness, "/events?channel=user.42&channel=news", headers).response().status == 200
    denied = _stream(harness, "/events/user.4", headers).response()
    assert denied.status == 403 and b"user.4" in denied.body
    assert _stream(harness, "/events?channel=user.42&channel=user.43", headers).response().status == 403
    assert harness.service.hub.counters.refused["forbidden"] == 2


def test_patterns_match_only_what_they_say():
    """A grant of user.* covers user.7 but not users or user."""
    harness = _harness()
    headers = {"Authorization": f"Bearer {_token(subscribe=['user.*'])}"}
    assert _stream(harness, "/events/user.7", headers).response().status == 200
    assert _stream(harness, "/events/users", headers).response().status == 403


def test_a_present_but_invalid_credential_is_refused_even_for_public_channels():
    """A bad credential never falls through to the next source or to the public channels."""
    harness = _harness()
    good = _token(subscribe=["user.42"])
    assert _stream(harness, "/events/news", {"Cookie": "sse_token=forged"}).response().status == 401
    both = {"Authorization": "Bearer forged", "Cookie": f"sse_token={good}"}
    assert _stream(harness, "/events/user.42", both).response().status == 401
    assert _stream(harness, "/events/user.42", {"Authorization": f"Basic {good}"}).response().status == 401


def test_query_token_only_when_enabled():
    """?token= is ignored unless --jwt-query is on."""
    token = _token(subscribe=["user.42"])
    assert _stream(_harness(), f"/events/user.42?token={token}").response().status == 401
    assert _stream(_harness(jwt_query=True), f"/events/user.42?token={token}").response().status == 200


def test_expired_and_huge_tokens_are_refused():
    """An expired token and one past the length bound answer 401 and say why."""
    harness = _harness()
    expired = subscriber_token(SECRET, subscribe=["user.42"], ttl=-120)
    answer = _stream(harness, "/events/user.42", {"Authorization": f"Bearer {expired}"}).response()
    assert answer.status == 401 and b"expired" in answer.body
    huge = _stream(harness, "/events/user.42", {"Authorization": "Bearer " + "a" * 9000}).response()
    assert huge.status == 401 and b"longer than" in huge.body


def test_stream_ends_at_the_token_expiry_with_a_retry_hint():
    """A stream whose token expires ends at exp (never after), with retry:, so the client resumes with a new one."""
    harness = _harness(max_stream_age=0)
    token = _token(subscribe=["user.42"], ttl=120)
    client = _stream(harness, "/events/user.42", {"Cookie": f"sse_token={token}"})
    expires = int(time.time()) + 120
    harness.clock.advance(expires - harness.clock.seconds() - 2.5)
    harness.publish("user.42", b"still")
    assert not client.response().complete
    harness.clock.advance(2.5)
    response = client.response()
    assert response.complete and response.body.endswith(b"retry: 3000\n")
    assert [e.data for e in response.events()] == ["still"]
    assert harness.service.hub.streams_open == 0


def test_publishing_with_a_token_needs_a_publish_grant_in_the_header():
    """POST is allowed by the static token or by a JWT granting publish; never by a cookie."""
    harness = _harness()
    listener = _stream(harness, "/events/news")
    publisher = _token(publish=["news"])
    subscriber = _token(subscribe=["news"])

    def post(headers):
        return harness.request("POST", "/events/news", headers, b"hi").status

    assert post({"Authorization": "Bearer secret"}) == 200  # the static --publish-token
    assert post({"Authorization": f"Bearer {publisher}"}) == 200
    assert post({"Authorization": f"Bearer {subscriber}"}) == 403
    assert post({"Cookie": f"sse_token={publisher}"}) == 401
    assert post({"Authorization": "Bearer forged"}) == 403
    assert [e.data for e in listener.response().events()] == ["hi", "hi"]


def test_max_stream_age_ends_streams_with_jitter():
    """--max-stream-age ends a stream within 10% of the age (never later), with retry:."""
    harness = Harness(max_stream_age=100)
    clients = [harness.stream(f"/events/c{i}") for i in range(40)]
    harness.clock.advance(87.9)
    assert not any(c.response().complete for c in clients)
    harness.clock.advance(110 - 87.9)
    assert all(c.response().complete and c.response().body.endswith(b"retry: 3000\n") for c in clients)
    assert harness.service.hub.streams_open == 0
