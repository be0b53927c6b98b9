"""AuthCallback: what it sends, how answers map, and the cache and single flight, on a fake agent and a Clock."""

from __future__ import annotations

import json

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.python.failure import Failure
from twisted.web.client import ResponseDone
from twisted.web.http_headers import Headers

from twisted_sse.web._auth_callback import AuthCallback, CallbackDenied, CallbackUnavailable


class _Response:
    def __init__(self, code: int, body: bytes = b"") -> None:
        self.code, self._body, self.headers = code, body, Headers()

    def deliverBody(self, protocol) -> None:
        class _Transport:
            def stopProducing(self) -> None:
                pass

        protocol.makeConnection(_Transport())
        protocol.dataReceived(self._body)
        protocol.connectionLost(Failure(ResponseDone()))


class _Agent:
    """Records requests; the test answers them."""

    def __init__(self) -> None:
        self.requests: list[tuple[bytes, bytes, Headers, Deferred]] = []

    def request(self, method, uri, headers=None, bodyProducer=None):
        answer: Deferred = Deferred()
        self.requests.append((method, uri, headers, answer))
        return answer


def _headers(**values: str) -> Headers:
    return Headers({name.replace("_", "-").encode(): [value.encode()] for name, value in values.items()})


def _callback(**kwargs) -> tuple[AuthCallback, _Agent, Clock]:
    agent, clock = _Agent(), Clock()
    return AuthCallback("http://app/sse-auth", agent, clock, **kwargs), agent, clock


def _result(d: Deferred):
    out: list = []
    d.addBoth(out.append)
    assert out, "not fired"
    return out[0]


def test_sends_the_credentials_channels_and_resolved_address():
    """GET carries Cookie, Authorization, Origin, X-SSE-Channels and our X-Forwarded-For, nothing else."""
    callback, agent, _ = _callback()
    client = _headers(cookie="session=a", authorization="Bearer t", origin="https://app", x_forwarded_for="6.6.6.6",
                      user_agent="x")  # fmt: skip
    callback.check(client, ["user.1", "news"], "198.51.100.7")
    method, uri, sent, _ = agent.requests[0]
    assert (method, uri) == (b"GET", b"http://app/sse-auth")
    assert dict(sent.getAllRawHeaders()) == {
        b"Cookie": [b"session=a"], b"Authorization": [b"Bearer t"], b"Origin": [b"https://app"],
        b"X-Sse-Channels": [b"user.1,news"], b"X-Forwarded-For": [b"198.51.100.7"],
    }  # fmt: skip


@pytest.mark.parametrize(
    ("code", "denied"), [(401, 401), (403, 403), (302, 401), (303, 401)]
)  # fmt: skip
def test_denials(code, denied):
    """401 and 403 deny as they say; a redirect (a login page) is a 401."""
    callback, agent, _ = _callback()
    d = callback.check(_headers(cookie="s=1"), ["a"], "1.2.3.4")
    agent.requests[0][3].callback(_Response(code))
    failure = _result(d)
    assert isinstance(failure, Failure) and failure.check(CallbackDenied) and failure.value.code == denied


@pytest.mark.parametrize("code", [500, 404, 429, 100])
def test_other_statuses_are_passing_failures(code):
    """An error or unexpected status is not a denial: the stream is told to retry."""
    callback, agent, _ = _callback()
    d = callback.check(_headers(), ["a"], "1.2.3.4")
    agent.requests[0][3].callback(_Response(code))
    assert _result(d).check(CallbackUnavailable)


def test_no_answer_within_the_timeout_is_a_passing_failure():
    """A hanging application costs at most --auth-timeout, then the stream retries later."""
    callback, agent, clock = _callback(timeout=5)
    d = callback.check(_headers(), ["a"], "1.2.3.4")
    clock.advance(4.9)
    assert not d.called
    clock.advance(0.1)
    assert _result(d).check(CallbackUnavailable)


def test_answer_can_narrow_channels_and_set_the_end():
    """A JSON answer's channels must cover every requested one; its expires ends the stream."""
    callback, agent, clock = _callback()
    body = json.dumps({"channels": ["user.1", "news.*"], "expires": 1234}).encode()
    d = callback.check(_headers(cookie="s=1"), ["user.1", "news.eu"], "1.2.3.4")
    agent.requests[0][3].callback(_Response(200, body))
    assert _result(d) == 1234.0
    d = callback.check(_headers(cookie="s=2"), ["user.2"], "1.2.3.4")
    agent.requests[1][3].callback(_Response(200, body))
    failure = _result(d)
    assert failure.check(CallbackDenied) and failure.value.code == 403


def test_concurrent_misses_share_one_request_and_answers_are_cached():
    """1,000 identical requests at once make one call; the answer is reused until --auth-cache runs out."""
    callback, agent, clock = _callback(cache_ttl=10)
    waiting = [callback.check(_headers(cookie="s=1"), ["a", "b"], "1.2.3.4") for _ in range(1000)]
    same_set = callback.check(_headers(cookie="s=1"), ["b", "a"], "1.2.3.4")
    assert len(agent.requests) == 1
    agent.requests[0][3].callback(_Response(200))
    assert all(_result(d) is None for d in [*waiting, same_set])
    clock.advance(9.9)
    assert _result(callback.check(_headers(cookie="s=1"), ["a", "b"], "1.2.3.4")) is None
    assert len(agent.requests) == 1
    clock.advance(0.2)
    callback.check(_headers(cookie="s=1"), ["a", "b"], "1.2.3.4")
    assert len(agent.requests) == 2


@pytest.mark.parametrize(
    "other",
    [
        {"cookie": "s=2"},
        {"cookie": "s=1", "authorization": "Bearer x"},
        {"cookie": "s=1", "origin": "https://evil"},
    ],
)
def test_requests_differing_in_any_input_never_share_an_entry(other):
    """Cookie, Authorization, Origin and address are all in the cache key."""
    callback, agent, _ = _callback()
    callback.check(_headers(cookie="s=1"), ["a"], "1.2.3.4")
    agent.requests[0][3].callback(_Response(200))
    callback.check(_headers(**other), ["a"], "1.2.3.4")
    callback.check(_headers(cookie="s=1"), ["a"], "5.6.7.8")
    assert len(agent.requests) == 3


def test_denials_are_cached_for_one_second_and_failures_not_at_all():
    """A denial is reused for a second only; a passing failure is asked again at once."""
    callback, agent, clock = _callback()
    callback.check(_headers(cookie="s=1"), ["a"], "1.2.3.4")
    agent.requests[0][3].callback(_Response(403))
    assert _result(callback.check(_headers(cookie="s=1"), ["a"], "1.2.3.4")).check(CallbackDenied)
    assert len(agent.requests) == 1
    clock.advance(1.1)
    callback.check(_headers(cookie="s=1"), ["a"], "1.2.3.4")
    assert len(agent.requests) == 2
    agent.requests[1][3].callback(_Response(500))
    callback.check(_headers(cookie="s=1"), ["a"], "1.2.3.4")
    assert len(agent.requests) == 3


def test_in_flight_requests_are_bounded():
    """At most `concurrency` different requests go to the application at once; the rest wait their turn."""
    callback, agent, _ = _callback(concurrency=3)
    pending = [callback.check(_headers(cookie=f"s={i}"), ["a"], "1.2.3.4") for i in range(10)]
    assert len(agent.requests) == 3
    agent.requests[0][3].callback(_Response(200))
    assert len(agent.requests) == 4 and _result(pending[0]) is None


def test_oversized_answer_is_a_passing_failure():
    """An answer body past 64 KiB is not read on."""
    callback, agent, _ = _callback()
    d = callback.check(_headers(), ["a"], "1.2.3.4")
    agent.requests[0][3].callback(_Response(200, b" " * (65 * 1024)))
    assert _result(d).check(CallbackUnavailable)
