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
"""

from __future__ import annotations

from dataclasses import dataclass, field

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure

from twisted_sse.core._history import EventKey, Missed, page_of, parse_id
from twisted_sse.core._interfaces import History

__all__ = ["SharedReads"]


@dataclass
class _Ask:
    after: EventKey
    count: int
    size: int
    answer: Deferred[Missed] = field(default_factory=Deferred)


class SharedReads:
    """A `history` in front of the broker's that shares reads of the same channel (single flight)."""

    def __init__(
        self, broker: History, slots: DeferredSemaphore, clock: IReactorTime | None = None, window: float = 0.0
    ) -> None:
        """`window` > 0 (seconds, needs `clock`): a read waits that long for others to join it, so that even
        resumes that trickle in (a client every millisecond) share reads: at most one per window per channel."""
        self._broker = broker
        self._slots = slots
        self._clock = clock
        self._window = window if clock is not None else 0.0
        self._scheduled: set[str] = set()
        self._waiting: dict[str, list[_Ask]] = {}
        self._reading: set[str] = set()
        self.reads = 0
        """Reads sent to the broker (for tests and metrics)."""

    def history(self, channel: str, after: EventKey, count: int = 0, size: int = 0) -> Deferred[Missed]:
        ask = _Ask(after, count, size)
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
        start = min(ask.after for ask in asks)
        count = 0 if any(not ask.count for ask in asks) else max(ask.count for ask in asks)
        size = 0 if any(not ask.size for ask in asks) else max(ask.size for ask in asks)
        self.reads += 1
        read = self._slots.run(self._broker.history, channel, start, count, size)
        read.addCallbacks(self._answer, self._failed, callbackArgs=(channel, asks), errbackArgs=(channel, asks))

    def _answer(self, missed: Missed, channel: str, asks: list[_Ask]) -> None:
        self._reading.discard(channel)
        later = []
        for ask in asks:
            answer = _for(ask, missed)
            if answer is None:
                later.append(ask)
            else:
                ask.answer.callback(answer)
        if later:
            self._waiting[channel] = later + self._waiting.get(channel, [])
        if channel in self._waiting:
            self._read(channel)

    def _failed(self, failure: Failure, channel: str, asks: list[_Ask]) -> None:
        self._reading.discard(channel)
        for ask in asks:
            ask.answer.errback(failure)
        if channel in self._waiting:
            self._read(channel)


def _for(ask: _Ask, missed: Missed) -> Missed | None:
    """What `ask` gets from a read made for an id at or before its own; None when the read stopped before it."""
    if missed.ahead is not None:
        return missed  # the read's id was beyond everything issued: so is this one
    keys = [parse_id(event.id) for event in missed.events]
    if missed.more and (not keys or (keys[-1] or (0, 0)) <= ask.after):
        return None
    events = [event for event, key in zip(missed.events, keys, strict=True) if key is not None and key > ask.after]
    page, cut_short = page_of(events, ask.count, ask.size)
    lost = ask.after < missed.held_from if missed.held_from is not None else missed.lost
    return Missed(lost, page, None, cut_short or missed.more, missed.held_from, missed.as_of)
