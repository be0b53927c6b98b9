"""The in-process broker: the embedded default, and the fake that tests use.

One process, no Redis: publishing delivers straight to this process's hub. It keeps the
same ids, history bounds and loss rules as the Redis broker (`twisted_sse.core._history`); its
history lives as long as the process.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred, succeed

from twisted_sse.core._framing import Event
from twisted_sse.core._history import ChannelHistory, EventKey, IdClock, Missed, format_id
from twisted_sse.core._interfaces import Receiver
from twisted_sse.core._publications import Publication, Receipt

__all__ = ["MemoryBroker"]


class MemoryBroker:
    """A broker that lives in this process; see `twisted_sse.core.Broker`.

    `clock` (an IReactorTime) gives the milliseconds ids are made of; `history` and
    `history_ttl` (seconds, 0 = no age bound) bound each channel's history.
    """

    kind = "memory"
    reconnects = 0

    def __init__(self, clock: Any = None, history: int = 1000, history_ttl: float = 0) -> None:
        if clock is None:
            from twisted.internet import reactor as clock
        self._clock = clock
        self._limit = history
        self._ttl_ms = int(history_ttl * 1000)
        self._receiver: Receiver | None = None
        self._ids = IdClock(self._now_ms)
        self._histories: dict[str, ChannelHistory] = {}
        self.subscribed: set[str] = set()

    def _now_ms(self) -> int:
        return int(self._clock.seconds() * 1000)

    def set_receiver(self, receiver: Receiver) -> None:
        self._receiver = receiver

    def subscribe(self, channel: str) -> Deferred[None]:
        self.subscribed.add(channel)
        return succeed(None)

    def unsubscribe(self, channel: str) -> None:
        self.subscribed.discard(channel)

    def publish(self, publications: list[Publication]) -> Deferred[Receipt]:
        delivered: list[tuple[str, Event]] = []
        ids: list[str | None] = []
        for channel, data, event in publications:
            event_id = format_id(self._ids.next())
            message = Event(data, event, event_id)
            history = self._histories.get(channel)
            if history is None:
                history = self._histories[channel] = ChannelHistory(self._limit, self._ttl_ms)
            history.append(self._ids.last, message, self._now_ms())
            ids.append(event_id)
            if channel in self.subscribed:
                delivered.append((channel, message))
        if delivered and self._receiver is not None:
            self._receiver(delivered)
        return succeed(Receipt(ids))

    def history(self, channel: str, after: EventKey, count: int = 0, size: int = 0) -> Deferred[Missed]:
        if after > self._ids.last:
            return succeed(Missed(True, [], self._ids.last))
        history = self._histories.get(channel)
        if history is None:
            return succeed(Missed(after < self._ids.origin, [], held_from=self._ids.origin, as_of=self._ids.last))
        return succeed(history.after(after, self._ids.origin, self._now_ms(), count, size, self._ids.last))

    def is_connected(self) -> bool:
        return True

    def sync(self) -> Deferred[None]:
        return succeed(None)  # publishing hands events on before it returns
