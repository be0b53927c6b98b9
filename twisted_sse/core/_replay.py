"""Resume without loss: the one mechanism that fills a gap from history.

A `Replay` stands between live events and where they go. While a gap is being filled it
holds live events back; then it lets the history through, then the held live events,
skipping every id already passed on: nothing lost, nothing twice, in id order.

Two gaps are filled this way. A stream that resumes after its client's `Last-Event-ID`
(`twisted_sse.web._stream`), and the Redis broker after its subscriber connection was down,
from the last id the process received (`twisted_sse.redis._broker`). Both read the gap
with `read_missed`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, gatherResults

from twisted_sse.core._framing import Event
from twisted_sse.core._history import EventKey, Missed, format_id, parse_id
from twisted_sse.core._interfaces import Broker

__all__ = ["Replay", "Gap", "LOST_EVENT_TYPE", "read_missed"]

LOST_EVENT_TYPE = "sse-lost"
"""The type of the event that says events after the client's id are no longer held."""

T = TypeVar("T")


class Replay(Generic[T]):
    """Passes items to `sink` once per id, in order, holding live ones back during a replay.

    It alone moves its position (`last`): by passing items on, by `resume`, `advance` and
    `rewind`, and by `passes_whole` for a run of items that goes out at once.
    """

    __slots__ = ("_sink", "_held", "_last")

    def __init__(self, sink: Callable[[T], None]) -> None:
        self._sink = sink
        self._held: list[tuple[EventKey | None, T]] | None = None
        self._last: EventKey | None = None

    @property
    def last(self) -> EventKey | None:
        """The newest id passed on (or resumed from): anything not newer is skipped."""
        return self._last

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

    def resume(self, after: EventKey) -> None:
        """Skip everything up to `after` and hold live items back: the replay from there is coming."""
        self._last = after
        self.hold()

    def advance(self, key: EventKey) -> None:
        """Skip everything up to `key` from now on (a position learnt elsewhere); never moves back."""
        if self._last is None or key > self._last:
            self._last = key

    def rewind(self, key: EventKey) -> None:
        """Go on after `key`: the id resumed from was beyond everything the broker issued."""
        self._last = key

    def passes_whole(self, first: EventKey | None, last: EventKey | None) -> bool:
        """True, and moved on to `last`, when a run of items with ids `first`..`last` may go out at
        once: nothing is held and all of it is new. Otherwise the items go through `live` one by one."""
        if self._held is not None or (first is not None and self._last is not None and first <= self._last):
            return False
        if last is not None:
            self._last = last
        return True

    def release(self, replayed: Iterable[tuple[EventKey | None, T]]) -> None:
        """Pass on the replayed items, then the held live ones; back to passing live items."""
        for key, item in replayed:
            self._pass(key, item)
        held, self._held = self._held or [], None
        for key, item in held:
            self._pass(key, item)

    def _pass(self, key: EventKey | None, item: T) -> None:
        if key is not None:
            if self._last is not None and key <= self._last:
                return
            self._last = key
        self._sink(item)


@dataclass(frozen=True)
class Gap:
    """What channels missed after an id: which lost events for good, and the rest in id order.

    The `sse-lost` event that tells clients what is gone is built here and nowhere else.
    """

    after: EventKey
    lost: list[str]
    events: list[tuple[EventKey | None, str, Event]]
    """(id key, channel, event), in publish order across the channels."""
    ahead: EventKey | None = None
    """The broker's last id, when `after` is beyond everything it issued."""

    @classmethod
    def unreadable(cls, after: EventKey, channels: Sequence[str]) -> Gap:
        """History could not be read: every channel may have lost what came after `after`."""
        return cls(after, list(channels), [])

    def for_stream(self, channels: Sequence[str]) -> list[tuple[EventKey | None, Event]]:
        """What a stream of `channels` is sent: one `sse-lost` naming the channels that lost
        events, then the events. A client whose id was beyond everything issued gets only an
        `sse-lost` that carries the broker's last id as its own, so its next `Last-Event-ID` is real."""
        if self.ahead is not None:
            return [(None, _lost_event(channels, self.after, self.ahead))]
        events: list[tuple[EventKey | None, Event]] = [(key, event) for key, _, event in self.events]
        if self.lost:
            events.insert(0, (None, _lost_event(self.lost, self.after)))
        return events

    def per_channel(self) -> list[tuple[EventKey | None, tuple[str, Event]]]:
        """What the broker hands the hub after an outage: an `sse-lost` on each channel that lost
        events, then the events, each with its channel."""
        items: list[tuple[EventKey | None, tuple[str, Event]]] = [
            (None, (channel, _lost_event([channel], self.after))) for channel in self.lost
        ]
        items += [(key, (channel, event)) for key, channel, event in self.events]
        return items


def _lost_event(channels: Sequence[str], after: EventKey, now_at: EventKey | None = None) -> Event:
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
