"""Resume without loss: the one mechanism that fills a gap from history.

A `Replay` stands between live events and where they go. While a gap is being filled it
holds live events back; then it lets the history through, then the held live events,
skipping every id already passed on: nothing lost, nothing twice, in id order.

Two gaps are filled this way. A stream that resumes after its client's `Last-Event-ID`
(`twisted_sse.web._stream`), and the Redis broker after its subscriber connection was down,
from the last id the process received (`twisted_sse.redis._broker`). Both read the gap
a page at a time with `HistoryPages`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Generic, TypeVar

from twisted.internet.defer import Deferred, gatherResults, succeed

from twisted_sse.core._framing import Event
from twisted_sse.core._history import EventKey, Missed, format_id, parse_id
from twisted_sse.core._interfaces import History

__all__ = ["Replay", "Gap", "HistoryPages", "WholePage", "LOST_EVENT_TYPE"]

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

    def replay(self, replayed: Iterable[tuple[EventKey | None, T]], through: EventKey | None = None) -> None:
        """Pass on a page of replayed items (in id order) with the held live items whose ids are not past
        `through` (None: every held item with an id), merged in id order; the other live items stay held
        until `release`. A history read ends where the ids stood when it ran: later events of its channel
        came live and are held here, and go out in their place among the page's."""
        held = self._held
        if held and any(key is not None and (through is None or key <= through) for key, _ in held):
            merged = list(replayed)
            self._held = []
            for key, item in held:
                if key is not None and (through is None or key <= through):
                    merged.append((key, item))
                else:
                    self._held.append((key, item))
            merged.sort(key=_order)  # stable: a replayed item before the live copy of the same id
            replayed = merged
        for key, item in replayed:
            self._pass(key, item)

    def replays_whole(self, first: EventKey | None, last: EventKey | None) -> bool:
        """True, and moved on to `last`, when a page of items with ids `first`..`last` may go out at once,
        as it is: nothing is held (to merge into it) and all of it is new. Otherwise it goes through `replay`."""
        if self._held or (first is not None and self._last is not None and first <= self._last):
            return False
        if last is not None:
            self._last = last
        return True

    def release(self, replayed: Iterable[tuple[EventKey | None, T]] = ()) -> None:
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


def _order(item: tuple[EventKey | None, object]) -> EventKey:
    """Id order; an item without an id (the loss signal) first."""
    return item[0] or (0, 0)


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
    through: EventKey | None = None
    """The events go up to here: live events up to it that they lack go out merged among them (None: every
    live event held so far)."""

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


@dataclass(frozen=True)
class WholePage:
    """All that a resume missed, as one page (`HistoryPages.whole`): reads shared by many resumes make it once."""

    gap: Gap
    earliest: EventKey | None
    """The earliest `as_of` of the reads it was made from (whether it needs a sync)."""


class HistoryPages:
    """What channels missed after an id, read a page at a time, in id order across the channels.

    A page reads at most `count` events and about `size` bytes of data in all: an equal
    share from each channel still being read, after the cursor (the last id handed on).
    Every event up to the smallest last id among the shares that came back full is then
    known across all channels, so those go out in id order and the cursor moves there;
    the rest is read again with the next page. A channel that had nothing past the cursor
    is done. So memory (here, and in Redis for one read) is bounded by a page, whatever the
    history holds, and the caller decides when to read the next one (back-pressure).

    Each read holds its channel's events up to where the ids stood when it ran (`as_of`);
    the reader listens to its channels before any read that answers it starts, so an event
    published after a read comes live. A page goes up to the newest `as_of` among its reads
    (`Gap.through`): an event of a channel read earlier than that is not in the page but
    comes live, and the consumer merges the live events up to `through` into the page
    (`Replay.replay`). Before the page is handed on, `sync` makes sure those have arrived:
    it fires once every event up to the id it is given has reached the consumer's live side.
    It is only called when some channel was read before the page's bound.
    """

    def __init__(
        self,
        history: History,
        channels: Sequence[str],
        after: EventKey,
        count: int,
        size: int,
        sync: Callable[[EventKey], Deferred[None]] | None = None,
        whole: WholePage | None = None,
    ) -> None:
        """`whole`: what these pages hold, made already (by `whole` of pages of the same channels, id and
        bounds, from the same reads): the one page handed on."""
        self._history = history
        self._reading = list(channels)
        self._cursor = after
        self._count = count
        self._size = size
        self._sync = sync
        self._first = True
        self._earliest: EventKey | None = None
        """The earliest `as_of` of every read so far: a channel read (and done) before a later page's bound
        still gets its events past that live, so that page needs the sync."""
        self._whole = whole

    @property
    def done(self) -> bool:
        return not self._reading

    @property
    def cursor(self) -> EventKey:
        """Everything up to here was handed on; the next page reads after it."""
        return self._cursor

    def whole(self, first: Gap) -> WholePage | None:
        """`first`, the first page these pages handed on, as all there is, when it was the only one."""
        if self._reading or first.ahead is not None:
            return None
        return WholePage(first, self._earliest)

    def next(self) -> Deferred[Gap]:
        """The next page: what the channels missed after the cursor, up to the page's bound."""
        whole, self._whole = self._whole, None
        if whole is not None and self._first:
            self._first, self._reading, self._earliest = False, [], whole.earliest
            page = self._synced(whole.gap)
            return page if isinstance(page, Deferred) else succeed(page)
        reading = self._reading
        count = max(1, self._count // len(reading))
        size = max(1, self._size // len(reading))
        reads = [self._history.history(channel, self._cursor, count, size) for channel in reading]
        return gatherResults(reads, consumeErrors=True).addCallback(self._merge, reading).addCallback(self._synced)

    def _synced(self, gap: Gap) -> Gap | Deferred[Gap]:
        through = gap.through
        if self._sync is None or through is None or self._earliest is None or self._earliest >= through:
            return gap  # every channel was read at or after the bound: nothing of theirs up to it comes live
        return self._sync(through).addCallback(lambda _: gap)

    def _merge(self, results: list[Missed], reading: list[str]) -> Gap:
        after = self._cursor
        first, self._first = self._first, False
        ahead = max((missed.ahead for missed in results if missed.ahead is not None), default=None)
        lost = [channel for channel, missed in zip(reading, results, strict=True) if missed.lost]
        if ahead is not None and first:
            self._reading = []
            return Gap(after, lost, [], ahead)
        snapshots = [missed.as_of for missed in results]
        known = [as_of for as_of in snapshots if as_of is not None]
        if known:
            earliest = min(known)
            self._earliest = earliest if self._earliest is None else min(self._earliest, earliest)
        # None: a read that doesn't say where it stood holds everything up to now.
        latest = max(known) if len(known) == len(snapshots) else None
        paged = min((_key(missed.events[-1]) for missed in results if missed.more and missed.events), default=None)
        through = paged if paged is not None else latest
        events: list[tuple[EventKey | None, str, Event]] = []
        self._reading = []
        for channel, missed in zip(reading, results, strict=True):
            for event in missed.events:
                key = _key(event)
                if paged is not None and key > paged:
                    self._reading.append(channel)  # read again after the new cursor
                    break
                events.append((key, channel, event))
            else:
                if missed.more and paged is not None:
                    self._reading.append(channel)
        events.sort(key=lambda item: item[0] or (0, 0))
        if paged is not None:
            self._cursor = paged
        return Gap(after, lost, events, through=through)


@lru_cache(maxsize=65536)
def _parsed(event_id: str | None) -> EventKey:
    key = parse_id(event_id)
    assert key is not None, "history events always have ids"
    return key


def _key(event: Event) -> EventKey:
    """A history event's id as a key; parsed once for all the streams that share a read (bounded cache)."""
    return _parsed(event.id)
