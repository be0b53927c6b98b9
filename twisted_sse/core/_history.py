"""Event ids and per-channel history: the rules both brokers follow (pure code).

An id is ``<ms>-<seq>``: milliseconds of the broker's clock, and a sequence number for
ids issued in the same millisecond. Ids are strictly increasing across every channel of
one broker (the last one issued is remembered and the clock only used when it is ahead),
so one ``Last-Event-ID`` places a client in every channel of a multi-channel stream. A
broker that lost its data (a Redis restart without persistence, a new process) starts
again from the clock, so its new ids are still greater than the ones it issued before.

A channel's history keeps its last N events (and, optionally, only those younger than a
TTL). Where events were trimmed away the history records its *cut*: the newest id it no
longer holds. A client that resumes after id L missed events iff L < cut, or L is older
than the broker's *origin* (the first id of its current data: anything before may be
gone), or events after L have expired. The Redis broker runs the same rules in Lua
(`twisted_sse.redis._scripts`).
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from twisted_sse.core._framing import Event

__all__ = ["EventKey", "parse_id", "format_id", "IdClock", "ChannelHistory", "Missed", "page_of", "MAX_ID_LENGTH"]

EventKey = tuple[int, int]
"""An id as a comparable value: (milliseconds, sequence)."""

MAX_ID_LENGTH = 41
MAX_ID_PART = 2**64 - 1
"""Both parts of an id are unsigned 64-bit numbers (as in a Redis stream id)."""
_ID = re.compile(r"([0-9]{1,20})-([0-9]{1,20})")


def parse_id(text: str | None) -> EventKey | None:
    """The key of a well-formed id, or None for anything else (absent, malformed, oversized, out of range).

    A client's `Last-Event-ID` goes through here: what it returns is safe to send to Redis.
    """
    if text is None or len(text) > MAX_ID_LENGTH:
        return None
    match = _ID.fullmatch(text)
    if match is None:
        return None
    key = int(match.group(1)), int(match.group(2))
    return key if key[0] <= MAX_ID_PART and key[1] <= MAX_ID_PART else None


def format_id(key: EventKey) -> str:
    return f"{key[0]}-{key[1]}"


class IdClock:
    """Issues strictly increasing ids from a millisecond clock that may stall or step back."""

    def __init__(self, now_ms: Callable[[], int]) -> None:
        self._now_ms = now_ms
        self.last: EventKey = (now_ms(), 0)
        self.origin = self.last

    def next(self) -> EventKey:
        now = self._now_ms()
        self.last = (now, 0) if now > self.last[0] else (self.last[0], self.last[1] + 1)
        return self.last


@dataclass(frozen=True)
class Missed:
    """What a channel's history holds after an id: the events, and whether some are gone."""

    lost: bool
    events: list[Event]
    ahead: EventKey | None = None
    """The broker's last issued id when the one asked after is beyond it (a far-future or forged id)."""
    more: bool = False
    """The read stopped at its page bound: events after the last one returned may be held too."""
    held_from: EventKey | None = None
    """Events after an id older than this are (partly) gone: `lost` for any id before it (shared reads
    work out each reader's loss from it)."""
    as_of: EventKey | None = None
    """The last id issued when this was read: the result holds nothing published after it."""


def page_of(events: Iterable[Event], count: int, size: int) -> tuple[list[Event], bool]:
    """The first events that fit `count` events and `size` bytes of data (at least one; 0: no bound),
    and whether any were left out. The Redis read script cuts its pages by the same rule."""
    page: list[Event] = []
    total = 0
    for event in events:
        if (count and len(page) >= count) or (size and page and total + len(event.data) > size):
            return page, True
        page.append(event)
        total += len(event.data)
    return page, False


class ChannelHistory:
    """The last `limit` events of one channel (0 keeps none), optionally only `ttl_ms` young."""

    def __init__(self, limit: int, ttl_ms: int = 0) -> None:
        self._limit = limit
        self._ttl_ms = ttl_ms
        self._events: deque[tuple[EventKey, Event]] = deque()
        self.cut: EventKey | None = None

    def append(self, key: EventKey, event: Event, now_ms: int) -> None:
        self._events.append((key, event))
        self.trim(now_ms)

    def trim(self, now_ms: int) -> None:
        """Drop what is past the length or age bound, remembering the newest id dropped."""
        while len(self._events) > self._limit:
            self.cut = self._events.popleft()[0]
        if self._ttl_ms:
            oldest_kept = now_ms - self._ttl_ms
            while self._events and self._events[0][0][0] < oldest_kept:
                self.cut = self._events.popleft()[0]

    def after(
        self, key: EventKey, origin: EventKey, now_ms: int, count: int = 0, size: int = 0, last: EventKey | None = None
    ) -> Missed:
        """The events after `key` (a page of at most `count` events and `size` bytes; 0: no bound),
        and whether any event after it is no longer held."""
        self.trim(now_ms)
        held_from = max(origin, self.cut) if self.cut is not None else origin
        events, more = page_of((event for event_key, event in self._events if event_key > key), count, size)
        return Missed(key < held_from, events, more=more, held_from=held_from, as_of=last)
