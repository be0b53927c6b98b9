"""Lifetimes: one timer ends streams at their time, up to two seconds early and never late."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from twisted.internet.task import Clock

from twisted_sse.web._lifetimes import Lifetimes


class _Stream:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.closed_at: float | None = None
        self.retry: int | None = None

    def close(self, retry_ms: int | None = None) -> None:
        self.closed_at, self.retry = self.clock.seconds(), retry_ms


def _lifetimes(start: float = 1000.0) -> tuple[Clock, Lifetimes]:
    clock = Clock()
    clock.advance(start)
    lifetimes = Lifetimes(clock, lambda: 1234)
    lifetimes.startService()
    return clock, lifetimes


@given(st.lists(st.floats(min_value=0, max_value=50), min_size=1, max_size=20), st.floats(0, 0.99))
def test_streams_end_before_their_time_but_not_much_before(offsets, phase):
    """Each stream ends within two seconds before its time, never after (one already due: at the next tick)."""
    clock, lifetimes = _lifetimes(1000.0 + phase)
    first_tick = clock.seconds() + 1
    streams = []
    for offset in offsets:
        stream = _Stream(clock)
        lifetimes.add(stream, clock.seconds() + offset)
        streams.append((stream, clock.seconds() + offset))
    for _ in range(60):
        clock.advance(1)
    for stream, at in streams:
        assert stream.closed_at is not None and at - 2 <= stream.closed_at <= max(at, first_tick) + 1e-6
        assert stream.retry == 1234
    assert len(lifetimes) == 0


def test_discarded_streams_are_forgotten():
    """A stream that ended some other way is not closed again, and nothing is kept for it."""
    clock, lifetimes = _lifetimes()
    stream = _Stream(clock)
    lifetimes.add(stream, clock.seconds() + 5)
    lifetimes.discard(stream)
    lifetimes.discard(stream)
    clock.advance(10)
    assert stream.closed_at is None and len(lifetimes) == 0


def test_a_jump_of_the_clock_costs_per_bucket_not_per_second():
    """A clock that jumps years ahead ends what is due at once (and doesn't walk every second)."""
    clock, lifetimes = _lifetimes()
    stream = _Stream(clock)
    lifetimes.add(stream, clock.seconds() + 30)
    clock.advance(10**9)
    assert stream.closed_at is not None and len(lifetimes) == 0
