"""Ending streams at a time of their own: when their token expires, or at `--max-stream-age`.

One timer for the whole process, like the heartbeat: streams are kept in buckets of one
second, and each tick ends every stream whose time falls before the next tick, so a
stream ends up to a second early, never late (a token is never used past its `exp`).
Each ended stream gets its `retry:` hint, and its client reconnects with its
`Last-Event-ID` (and, if its application refreshed it, a new token).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from twisted_sse.core import Listener

__all__ = ["Lifetimes"]


class Lifetimes(Service):
    """Streams that end at a given time; `retry` gives each one's reconnect hint."""

    def __init__(self, clock: IReactorTime, retry: Callable[[], int]) -> None:
        self._clock = clock
        self._retry = retry
        self._buckets: dict[int, set[Listener]] = {}
        self._bucket_of: dict[Listener, int] = {}
        self._next = math.floor(clock.seconds())
        """The first bucket not yet ended."""
        self._loop = LoopingCall(self.tick)
        self._loop.clock = clock

    def __len__(self) -> int:
        return len(self._bucket_of)

    def startService(self) -> None:
        super().startService()
        self._next = math.floor(self._clock.seconds())
        self._loop.start(1.0, now=False)

    def stopService(self) -> None:
        if self._loop.running:
            self._loop.stop()
        return super().stopService()

    def add(self, stream: Listener, at: float) -> None:
        """End `stream` at `at` (clock seconds) at the latest."""
        self.discard(stream)
        bucket = max(math.floor(at) - 1, self._next)
        self._buckets.setdefault(bucket, set()).add(stream)
        self._bucket_of[stream] = bucket

    def discard(self, stream: Listener) -> None:
        """Forget `stream` (it ended some other way). Idempotent."""
        bucket = self._bucket_of.pop(stream, None)
        if bucket is not None:
            streams = self._buckets[bucket]
            streams.discard(stream)
            if not streams:
                del self._buckets[bucket]

    def tick(self) -> None:
        """End every stream due before the next tick."""
        last = math.floor(self._clock.seconds())
        if last - self._next > len(self._buckets):  # the clock jumped: visit the buckets, not every second
            due: Iterable[int] = sorted(key for key in self._buckets if key <= last)
        else:
            due = range(self._next, last + 1)
        self._next = max(self._next, last + 1)
        for key in due:
            for stream in list(self._buckets.pop(key, ())):
                del self._bucket_of[stream]
                stream.close(self._retry())
