"""Asking the application whether a stream may open (`--auth-url`), the Nchan/Centrifugo-proxy way.

For a stream of private channels twisted-sse sends `GET <auth-url>` carrying the
client's `Cookie`, `Authorization` and `Origin`, the channels as `X-SSE-Channels: a,b`
and the client's address (twisted-sse's own rule, never the client's header) as
`X-Forwarded-For`. A 2xx allows; its body may be JSON `{"channels": [...], "expires":
<unix seconds>}` naming what is allowed (patterns, `*` for any run) and when the stream
ends. 401 and 403 deny, and so does a redirect (a login page: 401). Anything else, or
no answer within the timeout, is a passing failure: the stream gets the EventSource-safe
`retry:` answer, never a denial.

Answers are cached by a hash of EVERY input sent plus the channels, so two users never
share an entry: allowed ones for `cache_ttl` seconds (not past their `expires`), denials
for one second; concurrent misses for the same key share one request, and at most
`concurrency` requests are in flight, so a reconnect storm doesn't flatten the app.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred, DeferredSemaphore, fail, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.internet.protocol import Protocol
from twisted.python.failure import Failure
from twisted.web.client import Agent, HTTPConnectionPool
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgent, IResponse

from twisted_sse.core import ChannelPatterns, Logger

__all__ = ["AuthCallback", "CallbackDenied", "CallbackUnavailable", "make_agent"]

_log = Logger()
MAX_ANSWER_BYTES = 64 * 1024
DENIAL_TTL = 1.0


class CallbackDenied(Exception):
    """The application said no: 401 or 403."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code


class CallbackUnavailable(Exception):
    """The application could not answer (timeout, error, unexpected status): a passing failure."""


@dataclass(frozen=True)
class _Answer:
    allowed: ChannelPatterns | None
    """None: everything requested is allowed."""
    expires: float | None


def make_agent(reactor: Any, connections: int) -> IAgent:
    """An Agent whose pool keeps up to `connections` connections to the application.

    The GET is idempotent, so Twisted's retry of a request that met a pooled connection the
    application had just closed stays on (without it the benchmark saw a third of the calls
    fail under load).
    """
    pool = HTTPConnectionPool(reactor, persistent=True)
    pool.maxPersistentPerHost = connections
    return Agent(reactor, pool=pool)


class _Collect(Protocol):
    def __init__(self, done: Deferred[bytes]) -> None:
        self._done = done
        self._parts: list[bytes] = []
        self._size = 0

    def dataReceived(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > MAX_ANSWER_BYTES:
            self.transport.stopProducing()  # type: ignore[union-attr]
        else:
            self._parts.append(data)

    def connectionLost(self, reason: Failure | None = None) -> None:
        if self._size > MAX_ANSWER_BYTES:
            self._done.errback(CallbackUnavailable(f"answer longer than {MAX_ANSWER_BYTES} bytes"))
        else:
            self._done.callback(b"".join(self._parts))


class AuthCallback:
    """Decides stream requests by asking the application; results cached and shared."""

    def __init__(
        self,
        url: str,
        agent: IAgent,
        clock: IReactorTime,
        timeout: float = 5.0,
        cache_ttl: float = 10.0,
        concurrency: int = 20,
    ) -> None:
        self._url = url.encode("ascii")
        self._agent = agent
        self._clock = clock
        self._timeout = timeout
        self._cache_ttl = cache_ttl
        self._cache: dict[bytes, tuple[float, _Answer | CallbackDenied]] = {}
        self._in_flight: dict[bytes, list[Deferred[_Answer | CallbackDenied]]] = {}
        self._gate = DeferredSemaphore(concurrency)
        self.requests_sent = 0

    def check(self, headers: Headers, channels: Sequence[str], address: str) -> Deferred[float | None]:
        """Fires with the stream's end (the answer's `expires`, or None); fails with CallbackDenied
        or CallbackUnavailable."""
        sent = Headers()
        for name in (b"cookie", b"authorization", b"origin"):
            values = headers.getRawHeaders(name)
            if values:
                sent.setRawHeaders(name, values)
        sent.setRawHeaders(b"x-sse-channels", [",".join(channels).encode("ascii")])
        sent.setRawHeaders(b"x-forwarded-for", [address.encode("ascii", "replace")])
        key = _key(sent, channels)
        now = self._clock.seconds()
        cached = self._cache.get(key)
        if cached is not None and cached[0] > now:
            return self._apply(cached[1], channels)
        self._cache.pop(key, None)
        waiter: Deferred[_Answer | CallbackDenied] = Deferred()
        waiting = self._in_flight.get(key)
        if waiting is not None:
            waiting.append(waiter)
        else:
            self._in_flight[key] = [waiter]
            self._gate.run(self._ask, sent).addBoth(self._settle, key)
        return waiter.addCallback(lambda answer: self._apply(answer, channels))

    def _apply(self, answer: _Answer | CallbackDenied, channels: Sequence[str]) -> Deferred[float | None]:
        if isinstance(answer, CallbackDenied):
            return fail(answer)
        if answer.allowed is not None:
            refused = [c for c in channels if not answer.allowed.matches(c)]
            if refused:
                return fail(CallbackDenied(403, f"the application does not allow {', '.join(refused[:5])}"))
        return succeed(answer.expires)

    def _settle(self, result: _Answer | Failure, key: bytes) -> None:
        """One answer for every request that waited on it; cached unless it was a passing failure."""
        waiters = self._in_flight.pop(key, [])
        now = self._clock.seconds()
        outcome: _Answer | CallbackDenied | Failure = result
        denied = result.value if isinstance(result, Failure) else None
        if isinstance(denied, CallbackDenied):
            outcome = denied
            self._cache[key] = (now + DENIAL_TTL, denied)
        elif isinstance(result, _Answer):
            until = now + self._cache_ttl if result.expires is None else min(now + self._cache_ttl, result.expires)
            self._cache[key] = (until, result)
        self._forget_expired(now)
        for waiter in waiters:
            if isinstance(outcome, Failure):
                waiter.errback(outcome)
            else:
                waiter.callback(outcome)

    def _forget_expired(self, now: float) -> None:
        if len(self._cache) > 10_000:
            for key in [k for k, (until, _) in self._cache.items() if until <= now]:
                del self._cache[key]

    def _ask(self, headers: Headers) -> Deferred[_Answer]:
        self.requests_sent += 1
        asked: Any = self._agent.request(b"GET", self._url, headers)
        asked.addTimeout(self._timeout, self._clock)
        asked.addCallback(self._read)
        return asked.addErrback(self._unavailable)

    def _read(self, response: IResponse) -> Deferred[_Answer] | _Answer:
        code = response.code
        if 300 <= code < 400 or code == 401:
            response.deliverBody(Protocol())
            raise CallbackDenied(401, "the application asks for a login")
        if code == 403:
            response.deliverBody(Protocol())
            raise CallbackDenied(403, "the application does not allow these channels")
        if not 200 <= code < 300:
            response.deliverBody(Protocol())
            raise CallbackUnavailable(f"the application answered {code}")
        body: Deferred[bytes] = Deferred()
        response.deliverBody(_Collect(body))
        return body.addCallback(_parse_answer)

    @staticmethod
    def _unavailable(failure: Failure) -> Failure:
        if failure.check(CallbackDenied, CallbackUnavailable):
            return failure
        kind = getattr(failure.type, "__name__", "error")
        _log.warn("auth callback failed: {error}", error=failure.getErrorMessage() or kind)
        return Failure(CallbackUnavailable(f"the application did not answer ({kind})"))


def _key(headers: Headers, channels: Sequence[str]) -> bytes:
    digest = hashlib.sha256()
    for name in (b"cookie", b"authorization", b"origin", b"x-forwarded-for"):
        for value in headers.getRawHeaders(name) or [b"\x00none"]:
            digest.update(name + b"\x00" + value + b"\x01")
    digest.update(b"\x02" + "\x00".join(sorted(channels)).encode("ascii"))
    return digest.digest()


def _parse_answer(body: bytes) -> _Answer:
    if not body.strip():
        return _Answer(None, None)
    try:
        answer = json.loads(body)
    except ValueError:
        return _Answer(None, None)  # a 2xx with a page of its own: allowed, as said
    if not isinstance(answer, dict):
        raise CallbackUnavailable("the application's answer is not a JSON object")
    allowed = None
    if "channels" in answer:
        try:
            channels = answer["channels"]
            if not isinstance(channels, list):
                raise ValueError("not a list")
            allowed = ChannelPatterns(channels)
        except ValueError as error:
            raise CallbackUnavailable(f"the application's channels: {error}") from None
    expires = answer.get("expires")
    if expires is not None and not isinstance(expires, int | float):
        raise CallbackUnavailable("the application's expires is not a number")
    return _Answer(allowed, float(expires) if expires is not None else None)
