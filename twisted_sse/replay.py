"""Resume without loss: the one mechanism that fills a gap from history.

A `Replay` stands between live events and where they go (one client's stream, or a
channel's fan-out). While a gap is being filled it holds live events back; then it lets
the history through, then the held live events, skipping every id already passed on:
nothing lost, nothing twice, in id order. Streams use it for `Last-Event-ID`; the hub
uses it after a Redis outage to recover what its channels missed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence

from twisted.internet.defer import Deferred, gatherResults

from twisted_sse.framing import Event, encode
from twisted_sse.history import EventKey, Missed, format_id, parse_id
from twisted_sse.interfaces import Broker

__all__ = ["Replay", "LOST_EVENT_TYPE", "read_missed", "Encoded"]

LOST_EVENT_TYPE = "sse-lost"
"""The type of the event that says events after the client's id are no longer held."""

Encoded = tuple[EventKey | None, bytes]
"""An event as the wire needs it: its id's key (None: no id) and its encoded bytes."""


class Replay:
    """Passes encoded events to `sink` once each, in order, holding live ones during a replay."""

    __slots__ = ("_sink", "_held", "last")

    def __init__(self, sink: Callable[[bytes], None], after: EventKey | None = None) -> None:
        self._sink = sink
        self._held: list[Encoded] | None = None
        self.last = after
        """The newest id passed on (or resumed from): anything not newer is skipped."""

    @property
    def holding(self) -> bool:
        return self._held is not None

    def live(self, key: EventKey | None, data: bytes) -> None:
        if self._held is not None:
            self._held.append((key, data))
        else:
            self._pass(key, data)

    def hold(self) -> None:
        """Start holding live events back: a replay is coming."""
        if self._held is None:
            self._held = []

    def release(self, replayed: Iterable[Encoded]) -> None:
        """Pass on the replayed events, then the held live ones; back to passing live events."""
        for key, data in replayed:
            self._pass(key, data)
        held, self._held = self._held or [], None
        for key, data in held:
            self._pass(key, data)

    def _pass(self, key: EventKey | None, data: bytes) -> None:
        if key is not None:
            if self.last is not None and key <= self.last:
                return
            self.last = key
        self._sink(data)


def lost_event(channels: Sequence[str], after: EventKey) -> bytes:
    """The event that tells a client which channels' events after its id are gone."""
    body = {"channels": list(channels), "lastEventId": format_id(after)}
    return encode(Event(json.dumps(body).encode("utf-8"), LOST_EVENT_TYPE))


def read_missed(broker: Broker, channels: Sequence[str], after: EventKey) -> Deferred[list[Encoded]]:
    """Every channel's events after `after`, merged in id order, behind a loss event if needed."""

    def merge(results: list[Missed]) -> list[Encoded]:
        lost = [channel for channel, missed in zip(channels, results, strict=True) if missed.lost]
        events = sorted(
            ((parse_id(event.id), encode(event)) for missed in results for event in missed.events),
            key=lambda item: item[0] or (0, 0),
        )
        return ([(None, lost_event(lost, after))] if lost else []) + events

    reads = [broker.history(channel, after) for channel in channels]
    return gatherResults(reads, consumeErrors=True).addCallback(merge)
