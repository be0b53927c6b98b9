"""txredisapi at arm's length: connections that keep trying, and the raw subscriber.

Everything here is about getting and keeping connections; what to do with them is
`twisted_sse.redis._broker`'s job. What this module relies on about txredisapi 1.6.0
(read in its source, and exercised against a real redis-server by the integration tests):

- connections are made with `factory.startConnecting(endpoint)` (`reactor.connectTCP` with
  its factories raises AttributeError); `redis_endpoint` is the one place that turns an
  address into an endpoint (a Sentinel variant replaces it);
- a failed AUTH makes txredisapi call `stopTrying`, and it never reconnects again: these
  factories keep trying, with txredisapi's jittered, capped backoff (driven by the global
  reactor, so only a real Redis can test it);
- the subscriber never gets a database: a SELECT after SUBSCRIBE fails, which also ends
  reconnection (pub/sub ignores databases anyway);
- `charset=None` keeps payloads as bytes and `convertNumbers=False` keeps "007" from
  arriving as the int 7; both are factory attributes;
- `connectionMade` returns a Deferred that fires once AUTH is done and `_ready` is set:
  only then is the connection the owner's; txredisapi does not subscribe again after a
  reconnect (the broker does);
- replies are routed to callers by position, which goes wrong on a subscriber connection
  (a PING after a SUBSCRIBE of several channels got a subscribe confirmation): once ready,
  `Subscriber` hands every reply to its owner, unparsed by role;
- commands on a lazy connection wait for ever while Redis is down: the broker puts a
  timeout on each;
- replies are parsed with hiredis when it is installed (a dependency: without it a bulk
  reply is parsed a reactor turn later, and much slower);
- importing txredisapi installs the global reactor: only `twisted_sse.redis._broker` and
  this module import it, and nothing imports them before `twistd` has chosen a reactor.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Protocol

import txredisapi
from twisted.internet import endpoints
from twisted.internet.defer import Deferred, succeed
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.python.failure import Failure

from twisted_sse.core import Logger, RedisAddress

__all__ = ["redis_endpoint", "command_factory", "subscriber_factory", "Subscriber", "Script", "run_script"]

_log = Logger()

INITIAL_DELAY = 0.5
"""Seconds before the first reconnection attempt; each failure multiplies it by e."""
MAX_DELAY = 5.0
"""The backoff's cap, in seconds (txredisapi adds about 12% jitter)."""


def redis_endpoint(reactor: Any, address: RedisAddress) -> IStreamClientEndpoint:
    """The client endpoint for `address` (through the sentinels, for a redis+sentinel:// one)."""
    if address.sentinels:
        from twisted_sse.redis._sentinel import SentinelEndpoint

        return SentinelEndpoint(reactor, address)
    if address.unix_path is not None:
        return endpoints.UNIXClientEndpoint(reactor, address.unix_path, timeout=5)
    assert address.host is not None
    endpoint = endpoints.HostnameEndpoint(reactor, address.host, address.port, timeout=5)
    if not address.tls:
        return endpoint
    from twisted.internet.ssl import optionsForClientTLS

    return endpoints.wrapClientTLS(optionsForClientTLS(address.host), endpoint)


class _KeepTrying:
    """Ignores txredisapi's decision to stop reconnecting (after a failed AUTH, say)."""

    def stopTrying(self) -> Deferred[None]:
        _log.warn("Redis refused the connection (wrong password?); retrying with backoff")
        return succeed(None)


class _CommandFactory(_KeepTrying, txredisapi.RedisFactory):
    initialDelay = INITIAL_DELAY
    maxDelay = MAX_DELAY


class _SubscriberFactory(_KeepTrying, txredisapi.SubscriberFactory):
    initialDelay = INITIAL_DELAY
    maxDelay = MAX_DELAY


def command_factory(address: RedisAddress, timeout: float) -> txredisapi.RedisFactory:
    """A lazy pool of one command connection (publishing, history), not yet connecting."""
    return _CommandFactory(
        None,
        address.db or None,
        1,
        isLazy=True,
        charset=None,
        password=address.password,
        username=address.username,
        replyTimeout=timeout,
        convertNumbers=False,
    )


class SubscriberOwner(Protocol):
    def subscriber_ready(self, subscriber: Subscriber) -> None: ...
    def subscriber_lost(self, subscriber: Subscriber) -> None: ...
    def reply(self, reply: object) -> None: ...
    def received_all(self) -> None: ...


def subscriber_factory(address: RedisAddress, owner: SubscriberOwner) -> txredisapi.SubscriberFactory:
    """The factory of the one subscriber connection; `owner` hears everything it does."""
    factory = _SubscriberFactory(isLazy=True)
    factory.protocol = Subscriber
    factory.owner = owner
    factory.charset = None  # payloads stay bytes
    factory.convertNumbers = False  # "007" stays "007"
    factory.password = address.password
    factory.username = address.username
    return factory


class Subscriber(txredisapi.SubscriberProtocol):
    """The subscriber connection: authenticates through txredisapi, then reports to its owner."""

    def connectionMade(self) -> Deferred[None]:
        # The parent authenticates and marks the connection ready: wait for it.
        return super().connectionMade().addCallback(self._maybe_ready)

    def _maybe_ready(self, _: object) -> None:
        if self._ready:
            self.factory.owner.subscriber_ready(self)

    def connectionLost(self, why: object) -> None:
        was_ready = self._ready
        super().connectionLost(why)
        if was_ready:
            self.factory.owner.subscriber_lost(self)

    def dataReceived(self, data: bytes, unpause: bool = False) -> None:
        super().dataReceived(data, unpause)
        if self._ready:
            self.factory.owner.received_all()

    def replyReceived(self, reply: object) -> None:
        if not self._ready:
            super().replyReceived(reply)  # AUTH's answer, for the parent
        else:
            self.factory.owner.reply(reply)

    def send(self, *parts: bytes) -> None:
        self.transport.write(_command(*parts))

    def abort(self) -> None:
        self.transport.abortConnection()


def _command(*parts: bytes) -> bytes:
    """One Redis command in RESP."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


@dataclass(frozen=True)
class Script:
    """A Lua script and its SHA1, for EVALSHA."""

    source: bytes
    sha: bytes

    @classmethod
    def of(cls, source: str) -> Script:
        data = source.encode("utf-8")
        return cls(data, hashlib.sha1(data).hexdigest().encode("ascii"))


def run_script(factory: txredisapi.RedisFactory, script: Script, keys: list[bytes], args: list[bytes]) -> Deferred[Any]:
    """Run `script` by its hash, loading it when Redis doesn't know it yet."""
    handler = factory.handler

    def unknown(failure: Failure) -> Deferred[Any]:
        failure.trap(txredisapi.ResponseError)
        if "NOSCRIPT" not in str(failure.value):
            return failure  # type: ignore[return-value]
        return handler.execute_command("EVAL", script.source, len(keys), *keys, *args)

    return handler.execute_command("EVALSHA", script.sha, len(keys), *keys, *args).addErrback(unknown)
