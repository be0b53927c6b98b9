"""Reconnect storms: resumes of one channel share its history reads.

After a deploy or a network blip thousands of clients come back within seconds, most of
them a few events behind on the same channels. Each resume reads its channels' history
a page at a time (`HistoryPages`); here those reads meet. While a channel's read is in
flight the next ones wait, and when it is done they go out as ONE read from the oldest
id among them: every reader gets, from its result, exactly the events after its own id
(cut to its own page bound) and its own loss signal (from where the channel's history
begins, `Missed.held_from`). A reader whose id lies beyond what that read reached waits
for the next one. So Redis sees about one read per channel at a time, whatever the
number of clients; and the reads that do go out take one of the process's resume slots
(`--max-resumes`) each, for as long as Redis works on them.

A read that came back whole (no page bound cut it) stays *current* while nothing changes
its channel: no message of it arrived and it was not released since the read started
(the hub's `version`). A resume arriving then, from an id between the read's start and its
`as_of`, is answered from it without asking Redis: an event of the channel published after
the read has not reached this process yet (its version would have changed), so it reaches
the resuming stream live, which listens by now; the stream's pages merge such events in
their place (`HistoryPages`, `Gap.through`). So a storm of resumes of quiet channels costs
one read per channel, however long the clients take to arrive, and whatever channels each
stream combines. Current reads are kept for CURRENT_FOR seconds at most, and CURRENT_BYTES
of event data in all (the oldest go first).

When every channel of a resume has a current read, its whole history is one page made of
those reads alone (`page`): made once, and handed as it is (the same objects, encoded
once) to every resume of the same channels from the same id while those reads stay
current. So the thousands of resumes of a storm cost a few look-ups each, not a merge of
their channels' histories each.
"""

from __future__ import annotations

import itertools
from bisect import bisect_right
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred, DeferredSemaphore, succeed
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from twisted_sse.core._history import EventKey, Missed, page_of, parse_id
from twisted_sse.core._interfaces import History
from twisted_sse.core._replay import Gap, HistoryPages, WholePage

__all__ = ["SharedReads"]

CURRENT_FOR = 1.0
"""Seconds a whole read stays current (at most: a message of its channel ends it sooner)."""
CURRENT_BYTES = 8 * 1024 * 1024
"""Event data that current reads may hold in all."""
PAGES_KEPT = 256
PAGES_BYTES = 8 * 1024 * 1024
"""Whole pages kept (by channels, id and page bounds), and their event data in all: they hold the current
reads' events, not copies, but may outlive those reads until they are replaced or pushed out."""


_serials = itertools.count(1)


@dataclass
class _Current:
    start: EventKey
    missed: Missed
    keys: list[EventKey]
    version: int
    until: float
    size: int
    serial: int = field(default_factory=lambda: next(_serials))
    """What whole pages made of this read remember it by: not the read itself, which they would keep alive."""


@dataclass
class _Ask:
    after: EventKey
    count: int
    size: int
    answer: Deferred[Missed] = field(default_factory=Deferred)


class SharedReads:
    """A `history` in front of the broker's that shares reads of the same channel (single flight)."""

    def __init__(
        self,
        broker: History,
        slots: DeferredSemaphore,
        clock: IReactorTime | None = None,
        window: float = 0.0,
        version: Callable[[str], int | None] | None = None,
    ) -> None:
        """`window` > 0 (seconds, needs `clock`): a read waits that long for others to join it, so that even
        resumes that trickle in (a client every millisecond) share reads: at most one per window per channel.
        `version` (the hub's): with a window, whole reads stay current while their channel's version does."""
        self._broker = broker
        self._slots = slots
        self._clock = clock
        self._window = window if clock is not None else 0.0
        self._version = version if self._window else None
        self._scheduled: set[str] = set()
        self._waiting: dict[str, list[_Ask]] = {}
        self._reading: set[str] = set()
        self._current: OrderedDict[str, _Current] = OrderedDict()
        self._current_bytes = 0
        self._pages: OrderedDict[tuple[tuple[str, ...], EventKey, int, int], _Page] = OrderedDict()
        self._pages_bytes = 0
        self.reads = 0
        """Reads sent to the broker (for tests and metrics)."""
        self.answered_current = 0
        """Asks answered from a current read, without a read of their own."""

    def history(self, channel: str, after: EventKey, count: int = 0, size: int = 0) -> Deferred[Missed]:
        """As `Broker.history`, for an asker that listens to `channel` already (so a current read serves it)."""
        ask = _Ask(after, count, size)
        current = self._valid(channel, after)
        if current is not None:
            answer = _for(ask, current.missed, current.keys)
            if answer is not None:
                self.answered_current += 1
                return succeed(answer)
        self._waiting.setdefault(channel, []).append(ask)
        if channel in self._reading or channel in self._scheduled:
            return ask.answer  # a read is coming: this ask goes with the next one
        if self._window:
            assert self._clock is not None
            self._scheduled.add(channel)
            self._clock.callLater(self._window, self._read_now, channel)
        else:
            self._read(channel)
        return ask.answer

    def _read_now(self, channel: str) -> None:
        self._scheduled.discard(channel)
        if channel not in self._reading:
            self._read(channel)

    def _read(self, channel: str) -> None:
        asks = self._waiting.pop(channel, [])
        if not asks:
            return
        self._reading.add(channel)
        version = self._version(channel) if self._version is not None else None
        start = min(ask.after for ask in asks)
        count = 0 if any(not ask.count for ask in asks) else max(ask.count for ask in asks)
        size = 0 if any(not ask.size for ask in asks) else max(ask.size for ask in asks)
        self.reads += 1
        read = self._slots.run(self._broker.history, channel, start, count, size)
        read.addCallbacks(self._answer, self._failed, callbackArgs=(channel, asks, start, version),
                          errbackArgs=(channel, asks))  # fmt: skip

    def _answer(self, missed: Missed, channel: str, asks: list[_Ask], start: EventKey, version: int | None) -> None:
        self._reading.discard(channel)
        keys = _keys(missed)
        if version is not None and not missed.more and missed.ahead is None and missed.as_of is not None:
            size = sum(len(event.data) for event in missed.events)
            self._keep(channel, _Current(start, missed, keys, version, 0.0, size))
        later = []
        for ask in asks:
            answer = _for(ask, missed, keys)
            if answer is None:
                later.append(ask)
            else:
                ask.answer.callback(answer)
        if later:
            self._waiting[channel] = later + self._waiting.get(channel, [])
        if channel in self._waiting:
            self._read(channel)

    def _keep(self, channel: str, current: _Current) -> None:
        assert self._clock is not None
        if current.size > CURRENT_BYTES:
            return
        self._drop(channel)
        current.until = self._clock.seconds() + CURRENT_FOR
        self._current[channel] = current
        self._current_bytes += current.size
        while self._current_bytes > CURRENT_BYTES:
            self._drop(next(iter(self._current)))

    def _drop(self, channel: str) -> None:
        gone = self._current.pop(channel, None)
        if gone is not None:
            self._current_bytes -= gone.size

    def _valid(self, channel: str, after: EventKey) -> _Current | None:
        """The channel's current read, when it is still current and covers `after`."""
        current = self._current.get(channel)
        if current is None:
            return None
        assert self._clock is not None and self._version is not None
        if self._clock.seconds() > current.until or self._version(channel) != current.version:
            self._drop(channel)
            return None
        assert current.missed.as_of is not None
        return current if current.start <= after <= current.missed.as_of else None

    def page(self, channels: tuple[str, ...], after: EventKey, count: int, size: int) -> WholePage | None:
        """The whole history of a resume of `channels` after `after`, when current reads of all of them
        hold it in one page of `count` events and `size` bytes: the same object for every such resume
        while those reads stay current. None: it reads its pages (and its reads become current)."""
        currents = []
        for channel in channels:
            current = self._valid(channel, after)
            if current is None:
                return None
            currents.append(current)
        key = (channels, after, count, size)
        kept = self._pages.get(key)
        serials = tuple(current.serial for current in currents)
        if kept is not None and kept.reads == serials:
            self.answered_current += len(channels)
            return kept.whole
        pages = HistoryPages(_FromCurrent(dict(zip(channels, currents, strict=True))), channels, after, count, size)
        first: list[Gap] = []
        pages.next().addCallback(first.append)  # answered at once: current reads only
        whole = pages.whole(first[0])
        if whole is None:
            return None
        self._keep_page(key, _Page(whole, serials, sum(len(e.data) for _, _, e in whole.gap.events)))
        self.answered_current += len(channels)
        return whole

    def _keep_page(self, key: tuple[tuple[str, ...], EventKey, int, int], page: _Page) -> None:
        gone = self._pages.pop(key, None)
        if gone is not None:
            self._pages_bytes -= gone.size
        self._pages[key] = page
        self._pages_bytes += page.size
        while len(self._pages) > PAGES_KEPT or self._pages_bytes > PAGES_BYTES:
            _, oldest = self._pages.popitem(last=False)
            self._pages_bytes -= oldest.size

    def _failed(self, failure: Failure, channel: str, asks: list[_Ask]) -> None:
        self._reading.discard(channel)
        for ask in asks:
            ask.answer.errback(failure)
        if channel in self._waiting:
            self._read(channel)


@dataclass
class _Page:
    whole: WholePage
    reads: tuple[int, ...]
    """The serials of the current reads it was made of: it serves while those are still the current ones."""
    size: int


class _FromCurrent:
    """Answers from given current reads, at once."""

    def __init__(self, currents: dict[str, _Current]) -> None:
        self._currents = currents

    def history(self, channel: str, after: EventKey, count: int = 0, size: int = 0) -> Deferred[Missed]:
        current = self._currents[channel]
        answer = _for(_Ask(after, count, size), current.missed, current.keys)
        assert answer is not None, "a current read is whole"
        return succeed(answer)


def _keys(missed: Missed) -> list[EventKey]:
    """The ids of a read's events as keys, parsed once for every ask it answers (history ids always parse)."""
    return [parse_id(event.id) or (0, 0) for event in missed.events]


def _for(ask: _Ask, missed: Missed, keys: list[EventKey]) -> Missed | None:
    """What `ask` gets from a read made for an id at or before its own (`keys`: its events' ids, in
    order); None when the read stopped before it."""
    if missed.ahead is not None:
        return missed  # the read's id was beyond everything issued: so is this one
    if missed.more and (not keys or keys[-1] <= ask.after):
        return None
    events = missed.events[bisect_right(keys, ask.after) :]
    page, cut_short = page_of(events, ask.count, ask.size)
    lost = ask.after < missed.held_from if missed.held_from is not None else missed.lost
    return Missed(lost, page, None, cut_short or missed.more, missed.held_from, missed.as_of)
