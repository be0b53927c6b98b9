"""Bursts spread over reactor turns: at most a share of each turn goes to one kind of work.

A thousand streams opening at once would otherwise be opened in the one reactor turn that
read their requests, and everything else (other clients' answers, `/healthz`, live events)
would wait for all of them. Work is run at once while the turn's share lasts; past it, it
waits for the coming turns, first come first served, a share in each.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

from twisted.internet.interfaces import IReactorTime

from twisted_sse.core._logs import Logger

__all__ = ["Pacer"]

_log = Logger()


class Pacer:
    """Runs work now while this reactor turn has spent less than `share` seconds on it, else on coming turns.

    Time is the clock's (`IReactorTime.seconds`): a test's `Clock` never runs out of share.
    """

    def __init__(self, clock: IReactorTime, share: float = 0.02) -> None:
        self._clock = clock
        self._share = share
        self._waiting: deque[Callable[[], object]] = deque()
        self._turn_started: float | None = None

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    def admit(self) -> bool:
        """True when work may run now; else hand it to `later`. The first work of a turn starts its timing."""
        if self._waiting:
            return False  # first come, first served
        now = self._clock.seconds()
        if self._turn_started is None:
            self._turn_started = now
            self._clock.callLater(0, self._next_turn)  # the turn ends when the reactor comes round again
        return now - self._turn_started < self._share

    def later(self, work: Callable[[], object]) -> None:
        """Run `work` on a coming turn (one is scheduled whenever work waits)."""
        self._waiting.append(work)

    def _next_turn(self) -> None:
        self._turn_started = None
        if not self._waiting:
            return
        started = self._turn_started = self._clock.seconds()
        self._clock.callLater(0, self._next_turn)
        while self._waiting and self._clock.seconds() - started < self._share:
            work = self._waiting.popleft()
            try:
                work()
            except Exception:
                _log.failure("paced work failed")
