"""Resume without loss: the one mechanism that fills a gap from history.

A `Replay` stands between live events and where they go. While a gap is being filled it
holds live events back; then it lets the history through, then the held live events,
skipping every id already passed on: nothing lost, nothing twice, in id order.

Two gaps are filled this way. A stream that resumes after its client's `Last-Event-ID`
(`twisted_sse.stream`), and the Redis broker after its subscriber connection was down,
from the last id the process received (`twisted_sse.redis_broker`). Both read the gap
with `read_missed`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, gatherResults

from twisted_sse.framing import Event
from twisted_sse.history import EventKey, Missed, format_id, parse_id
from twisted_sse.interfaces import Broker

__all__ = ["Replay", "Gap", "LOST_EVENT_TYPE", "lost_event", "read_missed"]

LOST_EVENT_TYPE = "sse-lost"
"""The type of the event that says events after the client's id are no longer held."""

T = TypeVar("T")


class Replay(Generic[T]):
    """Passes items to `sink` once per id, in order, holding live ones back during a replay."""

    __slots__ = ("_sink", "_held", "last")

    def __init__(self, sink: Callable[[T], None], after: EventKey | None = None) -> None:
        self._sink = sink
        self._held: list[tuple[EventKey | None, T]] | None = None
        self.last = after
        """The newest id passed on (or resumed from): anything not newer is skipped."""

    @property
    def holding(self) -> bool:
        return self._held is not None

    def live(self, key: EventKey | None, item: T) -> None:
        if self._held is not None:
            self._held.append((key, item))
        else:
            self._pass(key, item)

    def hold(self) -> None:
        """Start holding live items back: a replay is coming."""
        if self._held is None:
            self._held = []

    def release(self, replayed: Iterable[tuple[EventKey | None, T]]) -> None:
        """Pass on the replayed items, then the held live ones; back to passing live items."""
        for key, item in replayed:
            self._pass(key, item)
        held, self._held = self._held or [], None
        for key, item in held:
            self._pass(key, item)

    def rewind(self, key: EventKey) -> None:
        """Go on after `key`: the id resumed from was beyond everything the broker issued."""
        self.last = key

    def _pass(self, key: EventKey | None, item: T) -> None:
        if key is not None:
            if self.last is not None and key <= self.last:
                return
            self.last = key
        self._sink(item)


@dataclass(frozen=True)
class Gap:
    """What channels missed after an id: which lost events for good, and the rest in id order."""

    after: EventKey
    lost: list[str]
    events: list[tuple[EventKey | None, str, Event]]
    """(id key, channel, event), in publish order across the channels."""
    ahead: EventKey | None = None
    """The broker's last id, when `after` is beyond everything it issued."""


def lost_event(channels: Sequence[str], after: EventKey, now_at: EventKey | None = None) -> Event:
    """The event that tells a client which channels' events after its id are gone.

    `now_at`: the client's id was beyond everything issued; the event carries the broker's
    last id as its own, so the client's next `Last-Event-ID` is a real one.
    """
    body = {"channels": list(channels), "lastEventId": format_id(after)}
    event_id = format_id(now_at) if now_at is not None else None
    return Event(json.dumps(body).encode("utf-8"), LOST_EVENT_TYPE, event_id)


def read_missed(broker: Broker, channels: Sequence[str], after: EventKey) -> Deferred[Gap]:
    """Every channel's events after `after` from the broker's history, merged in id order."""

    def merge(results: list[Missed]) -> Gap:
        lost = [channel for channel, missed in zip(channels, results, strict=True) if missed.lost]
        events = [
            (parse_id(event.id), channel, event)
            for channel, missed in zip(channels, results, strict=True)
            for event in missed.events
        ]
        events.sort(key=lambda item: item[0] or (0, 0))
        ahead = max((missed.ahead for missed in results if missed.ahead is not None), default=None)
        return Gap(after, lost, events, ahead)

    reads = [broker.history(channel, after) for channel in channels]
    return gatherResults(reads, consumeErrors=True).addCallback(merge)
