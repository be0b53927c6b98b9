"""The Redis edge: ONE subscriber connection for the whole process, one for commands.

Every stream of the process is served from a single txredisapi `SubscriberProtocol`.
A channel is SUBSCRIBEd when the hub gets its first listener and UNSUBSCRIBEd when the
last one leaves; after a reconnect every channel the hub holds is subscribed again.

txredisapi routes replies to callers by position, which goes wrong on a subscriber
connection (a confirmation can reach the wrong caller). Once the connection is ready,
this module reads every reply itself, by content: messages, subscribe confirmations
(matched per channel, in order), errors.
"""

from __future__ import annotations

import hashlib
from collections import deque
from dataclasses import dataclass
from typing import Any

import txredisapi
from twisted.application.service import Service
from twisted.internet import endpoints
from twisted.internet.defer import Deferred, fail, gatherResults
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.logger import Logger
from twisted.python.failure import Failure

from twisted_sse.envelope import unpack
from twisted_sse.framing import Event
from twisted_sse.history import EventKey, Missed, format_id
from twisted_sse.interfaces import Receiver
from twisted_sse.redis_scripts import PUBLISH_SCRIPT, READ_SCRIPT, keys
from twisted_sse.redis_url import RedisAddress

__all__ = ["RedisBroker", "RedisUnavailable", "redis_endpoint"]

_log = Logger()


class RedisUnavailable(Exception):
    """Redis can't be reached right now."""


def redis_endpoint(reactor: Any, address: RedisAddress) -> IStreamClientEndpoint:
    """The client endpoint for `address`: the one place a Sentinel variant would replace."""
    if address.unix_path is not None:
        return endpoints.UNIXClientEndpoint(reactor, address.unix_path, timeout=5)
    assert address.host is not None
    endpoint = endpoints.HostnameEndpoint(reactor, address.host, address.port, timeout=5)
    if not address.tls:
        return endpoint
    from twisted.internet.ssl import optionsForClientTLS

    return endpoints.wrapClientTLS(optionsForClientTLS(address.host), endpoint)


@dataclass(frozen=True)
class _Script:
    source: bytes
    sha: bytes

    @classmethod
    def of(cls, source: str) -> _Script:
        data = source.encode("utf-8")
        return cls(data, hashlib.sha1(data).hexdigest().encode("ascii"))


_PUBLISH = _Script.of(PUBLISH_SCRIPT)
_READ = _Script.of(READ_SCRIPT)


def _missed(reply: list[Any]) -> Missed:
    """READ_SCRIPT's answer: {lost, [[id, [field, value, ...]], ...]}."""
    lost, entries = reply
    events = []
    for event_id, fields in entries:
        values = dict(zip(fields[::2], fields[1::2], strict=True))
        event = values.get(b"e")
        events.append(Event(values.get(b"d", b""), event.decode("utf-8") if event else None, event_id.decode("ascii")))
    return Missed(bool(lost), events)


def _command(*parts: bytes) -> bytes:
    """One Redis command in RESP."""
    out = [b"*%d\r\n" % len(parts)]
    for part in parts:
        out.append(b"$%d\r\n%s\r\n" % (len(part), part))
    return b"".join(out)


class _Subscriber(txredisapi.SubscriberProtocol):
    """The subscriber connection; hands everything to the broker once it is ready."""

    def connectionMade(self) -> Deferred[None]:
        # The parent authenticates and marks the connection ready: wait for it.
        return super().connectionMade().addCallback(self._maybe_ready)

    def _maybe_ready(self, _: object) -> None:
        if self._ready:
            self.factory.broker._subscriber_ready(self)

    def connectionLost(self, why: object) -> None:
        was_ready = self._ready
        super().connectionLost(why)
        self.factory.broker._subscriber_lost(self, was_ready)

    def replyReceived(self, reply: object) -> None:
        if not self._ready:
            super().replyReceived(reply)  # AUTH's answer, for the parent
        else:
            self.factory.broker._reply(reply)

    def send(self, *parts: bytes) -> None:
        self.transport.write(_command(*parts))


class RedisBroker(Service):
    """A broker on Redis pub/sub; see `twisted_sse.interfaces.Broker`."""

    kind = "redis"

    def __init__(
        self,
        address: RedisAddress,
        prefix: str,
        reactor: Any,
        history: int = 1000,
        history_ttl: float = 0,
        timeout: float = 5.0,
    ) -> None:
        self.address = address
        self._prefix = prefix.encode("utf-8")
        self._bounds = [b"%d" % history, b"%d" % int(history_ttl * 1000)]
        self._reactor = reactor
        self._timeout = timeout
        self._receiver: Receiver | None = None
        self._wanted: set[str] = set()
        self._confirming: dict[str, deque[list[Deferred[None]]]] = {}
        self._subscriber: _Subscriber | None = None
        self._was_connected = False
        # Never a dbid on the subscriber: SELECT after SUBSCRIBE fails and ends reconnection.
        self._subscriber_factory = txredisapi.SubscriberFactory(isLazy=True)
        self._subscriber_factory.protocol = _Subscriber
        self._subscriber_factory.broker = self
        self._subscriber_factory.charset = None  # payloads stay bytes
        self._subscriber_factory.convertNumbers = False  # "007" stays "007"
        self._subscriber_factory.password = address.password
        self._subscriber_factory.username = address.username
        self._commands = txredisapi.RedisFactory(
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

    # Service

    def startService(self) -> None:
        super().startService()
        _log.info("connecting to Redis at {address}", address=self.address.describe())
        self._subscriber_factory.startConnecting(redis_endpoint(self._reactor, self.address))
        self._commands.startConnecting(redis_endpoint(self._reactor, self.address))

    def stopService(self) -> Deferred[list[object]]:
        super().stopService()
        return gatherResults([self._subscriber_factory.disconnect(), self._commands.disconnect()], consumeErrors=True)

    # Broker

    def set_receiver(self, receiver: Receiver) -> None:
        self._receiver = receiver

    def is_connected(self) -> bool:
        return self._subscriber is not None

    def subscribe(self, channel: str) -> Deferred[None]:
        self._wanted.add(channel)
        if self._subscriber is None:
            return fail(RedisUnavailable("Redis is not connected"))
        waiter: Deferred[None] = Deferred()
        self._confirming.setdefault(channel, deque()).append([waiter])
        self._subscriber.send(b"SUBSCRIBE", self._prefix + channel.encode("ascii"))
        return waiter.addTimeout(self._timeout, self._reactor)

    def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        if self._subscriber is not None:
            self._subscriber.send(b"UNSUBSCRIBE", self._prefix + channel.encode("ascii"))

    def publish(self, channel: str, data: bytes, event: str | None = None) -> Deferred[str | None]:
        name = channel.encode("ascii")
        args = [self._prefix + name, name, data, (event or "").encode("utf-8"), *self._bounds]
        d = self._script(_PUBLISH, keys(self._prefix, name), args)
        return d.addCallback(lambda event_id: event_id.decode("ascii"))

    def history(self, channel: str, after: EventKey) -> Deferred[Missed]:
        name = channel.encode("ascii")
        d = self._script(_READ, keys(self._prefix, name), [name, format_id(after).encode("ascii"), *self._bounds])
        return d.addCallback(_missed)

    def _script(self, script: _Script, script_keys: list[bytes], args: list[bytes]) -> Deferred[Any]:
        """Run a Lua script by its hash, loading it when Redis doesn't know it yet; time-bounded."""
        handler = self._commands.handler

        def unknown(failure: Failure) -> Deferred[Any]:
            failure.trap(txredisapi.ResponseError)
            if "NOSCRIPT" not in str(failure.value):
                return failure  # type: ignore[return-value]
            return handler.execute_command("EVAL", script.source, len(script_keys), *script_keys, *args)

        d = handler.execute_command("EVALSHA", script.sha, len(script_keys), *script_keys, *args)
        return d.addErrback(unknown).addTimeout(self._timeout, self._reactor)

    # What the subscriber connection reports

    def _subscriber_ready(self, subscriber: _Subscriber) -> None:
        _log.info(
            "Redis {what} at {address}: subscribing {count} channels",
            what="reconnected" if self._was_connected else "connected",
            address=self.address.describe(),
            count=len(self._wanted),
        )
        self._was_connected = True
        self._subscriber = subscriber
        self._confirming = {}
        for channel in sorted(self._wanted):
            self._confirming[channel] = deque([[]])
            subscriber.send(b"SUBSCRIBE", self._prefix + channel.encode("ascii"))

    def _subscriber_lost(self, subscriber: _Subscriber, was_ready: bool) -> None:
        if subscriber is not self._subscriber:
            return
        self._subscriber = None
        if self.running:
            _log.warn("Redis subscriber connection lost; reconnecting")
        confirming, self._confirming = self._confirming, {}
        for entries in confirming.values():
            for waiters in entries:
                for waiter in waiters:
                    waiter.errback(RedisUnavailable("Redis connection lost"))

    def _reply(self, reply: object) -> None:
        if isinstance(reply, list) and len(reply) == 3:
            kind, channel, payload = reply
            if kind == b"message":
                self._message(channel, payload)
            elif kind == b"subscribe":
                self._confirmed(channel)
            return
        if isinstance(reply, Exception):
            _log.error("Redis answered the subscriber with an error: {error}", error=reply)

    def _message(self, channel: bytes, payload: bytes) -> None:
        if self._receiver is None or not channel.startswith(self._prefix):
            return
        name = channel[len(self._prefix) :].decode("ascii", "replace")
        self._receiver(name, unpack(payload))

    def _confirmed(self, channel: bytes) -> None:
        name = channel[len(self._prefix) :].decode("ascii", "replace")
        entries = self._confirming.get(name)
        if not entries:
            return
        for waiter in entries.popleft():
            if not waiter.called:
                waiter.callback(None)
        if not entries:
            del self._confirming[name]
        _log.debug("Redis confirmed subscription to {channel}", channel=name)
