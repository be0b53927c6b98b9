"""Fan-out: which streams listen to which channel, and the broker subscriptions they need.

Bookkeeping, no I/O. A channel is subscribed at the broker when its first listener
arrives and unsubscribed when its last one leaves; every message is encoded once and the
same bytes are handed to each listener, after at most `coalesce` seconds on a clock.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable

from twisted.internet.defer import Deferred, FirstError, fail, gatherResults, succeed
from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.python.failure import Failure

from twisted_sse.core._block import Block
from twisted_sse.core._counters import Counters
from twisted_sse.core._framing import Event, encode
from twisted_sse.core._history import EventKey, parse_id
from twisted_sse.core._interfaces import Broker, Listener
from twisted_sse.core._logs import Logger

__all__ = ["Hub"]

_log = Logger()
_PENDING = object()


_versions = itertools.count(1)


class _Channel:
    """Listeners of one channel, the state of its broker subscription, and its version: a number
    drawn anew when the channel is held and whenever a message of it arrives."""

    __slots__ = ("listeners", "outcome", "waiting", "version")

    def __init__(self) -> None:
        self.listeners: set[Listener] = set()
        self.outcome: Failure | None | object = _PENDING
        self.waiting: list[Deferred[None]] = []
        self.version = next(_versions)


def _first_failure(failure: Failure) -> Failure:
    """The broker's own failure, not gatherResults' wrapper around it."""
    first = failure.value
    return first.subFailure if isinstance(first, FirstError) else failure


class Hub:
    """The registry of open streams and the channels they listen to."""

    def __init__(
        self, broker: Broker, clock: IReactorTime | None = None, coalesce: float = 0.0, counters: Counters | None = None
    ) -> None:
        """`coalesce` > 0 (seconds, needs `clock`): hold messages that long, then write them as one block;
        `counters`: where the process counts (the service shares one with its site)."""
        self._broker = broker
        self._clock = clock
        self._coalesce = coalesce if clock is not None else 0.0
        self._held: list[tuple[str, Event]] = []
        self._flush_call: IDelayedCall | None = None
        self._channels: dict[str, _Channel] = {}
        self._streams: dict[Listener, tuple[str, ...]] = {}
        self._client_of: dict[Listener, str] = {}
        self._held_by: dict[str, list[int]] = {}
        """client -> [streams, channels] its open streams hold (for per-client limits)."""
        self.counters = counters if counters is not None else Counters()
        """Counts since start, for every layer that holds the hub: reported by /healthz."""
        self._passed: EventKey | None = None
        """The newest id handed to listeners (a broker hands ids on in increasing order, each once)."""
        broker.set_receiver(self.deliver)

    @property
    def streams_open(self) -> int:
        return len(self._streams)

    @property
    def channels_held(self) -> int:
        return len(self._channels)

    def listeners(self) -> list[Listener]:
        """Every open stream."""
        return list(self._streams)

    def held_by(self, client: str) -> tuple[int, int]:
        """How many streams, and channels in all, the open streams of `client` hold."""
        streams, channels = self._held_by.get(client, (0, 0))
        return streams, channels

    def add(self, listener: Listener, channels: Iterable[str], client: str | None = None) -> Deferred[None]:
        """Register `listener` on `channels` (for `client`, when given); fires once the broker delivers all of them."""
        names = tuple(dict.fromkeys(channels))
        if listener in self._streams:
            raise ValueError("listener is already registered")
        self._streams[listener] = names
        if client is not None:
            self._client_of[listener] = client
            held = self._held_by.setdefault(client, [0, 0])
            held[0] += 1
            held[1] += len(names)
        self.counters.streams_opened += 1
        waiting = [waiter for waiter in (self._listen(name, listener) for name in names) if waiter is not None]
        if not waiting:
            return succeed(None)  # the usual case on a busy channel: no Deferred per channel
        if len(waiting) == 1:
            return waiting[0]
        return gatherResults(waiting, consumeErrors=True).addCallbacks(lambda _: None, _first_failure)

    def remove(self, listener: Listener) -> None:
        """Forget `listener`; channels left without listeners are unsubscribed. Idempotent."""
        names = self._streams.pop(listener, ())
        client = self._client_of.pop(listener, None)
        if client is not None:
            held = self._held_by[client]
            held[0] -= 1
            held[1] -= len(names)
            if not held[0]:
                del self._held_by[client]
        for name in names:
            channel = self._channels.get(name)
            if channel is None or listener not in channel.listeners:
                continue
            channel.listeners.remove(listener)
            if not channel.listeners:
                # Waiters belong to listeners that are gone: they are dropped unfired.
                del self._channels[name]
                self._broker.unsubscribe(name)
                _log.debug("channel {channel} released", channel=name)

    def deliver(self, messages: list[tuple[str, Event]]) -> None:
        """Hand messages that arrived together to the listeners of their channels.

        Each message is encoded once; each channel's messages become one block, and a
        listener gets one block: its channel's, or for a multi-channel listener its
        channels' messages merged in arrival order.
        """
        self.counters.messages += len(messages)
        channels = self._channels
        for name, _ in messages:
            channel = channels.get(name)
            if channel is not None:
                channel.version = next(_versions)
        if self._coalesce:
            self._held.extend(messages)
            if self._flush_call is None:
                assert self._clock is not None
                self._flush_call = self._clock.callLater(self._coalesce, self.flush)
            return
        self._fan_out(messages)

    def flush(self) -> None:
        """Write what coalescing holds now (before streams are closed, for one)."""
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        self._flush_call = None
        held, self._held = self._held, []
        if held:
            self._fan_out(held)

    def _fan_out(self, messages: list[tuple[str, Event]]) -> None:
        started = self._clock.seconds() if self._clock is not None else 0.0
        counters = self.counters
        encoded: dict[str, list[tuple[int, EventKey | None, bytes]]] = {}
        for position, (channel, event) in enumerate(messages):
            if channel in self._channels:
                key = parse_id(event.id)
                encoded.setdefault(channel, []).append((position, key, encode(event)))
                if key is not None:
                    self._passed = key
        merged: dict[Listener, list[tuple[int, EventKey | None, bytes]]] = {}
        for channel, items in encoded.items():
            block = Block([(key, data) for _, key, data in items])
            listeners = list(self._channels[channel].listeners)
            direct = 0
            for listener in listeners:
                if len(self._streams.get(listener, ())) == 1:
                    listener.deliver(block)
                    direct += 1
                else:
                    merged.setdefault(listener, []).extend(items)
            counters.deliveries += direct * len(block.items)  # once per block, not per client
            counters.sent_bytes += direct * len(block.data)
        for listener, items in merged.items():
            if listener in self._streams:
                block = Block([(key, data) for _, key, data in sorted(items)])
                listener.deliver(block)
                counters.deliveries += len(block.items)
                counters.sent_bytes += len(block.data)
        if self._clock is not None:
            counters.fanout_seconds.observe(self._clock.seconds() - started)

    def version(self, name: str) -> int | None:
        """Channel `name`'s version while the broker delivers it (None otherwise): unchanged only while no
        message of it arrived and it was not released, so a history read made at one version is
        still all there is to read, up to its `as_of`, while the version stays."""
        channel = self._channels.get(name)
        if channel is None or channel.outcome is not None:
            return None
        return channel.version

    def synced(self, through: EventKey) -> Deferred[None]:
        """Fires once every event up to `through` of the channels held has reached their listeners.

        The broker hands ids on in increasing order: once one past `through` went out, so did every
        event before it (at once, the usual case on a busy process). Otherwise the broker is asked
        (`Broker.sync`) and what coalescing holds goes out when it answers."""
        if self._passed is not None and self._passed >= through:
            return succeed(None)
        return self._broker.sync().addCallback(lambda _: self.flush())

    def heartbeat(self, data: bytes) -> None:
        """Write a keep-alive comment to every open stream."""
        for listener in list(self._streams):
            listener.heartbeat(data)

    def _listen(self, name: str, listener: Listener) -> Deferred[None] | None:
        """Add `listener` to channel `name`: None when the broker already delivers it, else what fires when it does."""
        channel = self._channels.get(name)
        if channel is None:
            channel = self._channels[name] = _Channel()
            channel.listeners.add(listener)
            _log.debug("channel {channel} subscribing", channel=name)
            self._broker.subscribe(name).addBoth(self._settled, name, channel)
        else:
            channel.listeners.add(listener)
        if channel.outcome is _PENDING:
            waiter: Deferred[None] = Deferred()
            channel.waiting.append(waiter)
            return waiter
        if isinstance(channel.outcome, Failure):
            return fail(channel.outcome)
        return None

    def _settled(self, result: Failure | None, name: str, channel: _Channel) -> None:
        """The broker answered a subscription: tell every stream that waits for it."""
        channel.outcome = result
        if result is not None and self._channels.get(name) is channel:
            # Every subscribe is matched by one unsubscribe, also when it failed, so the
            # broker never keeps (or re-subscribes after a reconnect) a channel nobody holds.
            del self._channels[name]
            self._broker.unsubscribe(name)
        waiting, channel.waiting = channel.waiting, []
        for waiter in waiting:
            if result is not None:
                waiter.errback(result)
            else:
                waiter.callback(None)
