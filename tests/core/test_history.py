"""Ids and per-channel history: the rules both brokers follow."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twisted_sse.core._framing import Event
from twisted_sse.core._history import ChannelHistory, IdClock, format_id, parse_id


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("1795725017952-0", (1795725017952, 0)),
        ("0-7", (0, 7)),
        ("", None),
        ("12", None),
        ("12-", None),
        ("-1-2", None),
        ("1-2-3", None),
        ("abc-1", None),
        ("1" * 21 + "-0", None),
        ("\u0661-1", None),
        (None, None),
        ("18446744073709551615-18446744073709551615", (2**64 - 1, 2**64 - 1)),
        ("18446744073709551616-0", None),  # above 2^64: Redis would answer an error
        ("0-18446744073709551616", None),
        ("99999999999999999999-0", None),
    ],
)
def test_parse_id(text, key):
    """Only well-formed ids of ours parse; anything else is None, never an error."""
    assert parse_id(text) == key


@given(st.lists(st.integers(min_value=0, max_value=10**13), min_size=1, max_size=50))
def test_ids_strictly_increase_whatever_the_clock_does(readings):
    """A clock that stalls or steps back still yields strictly increasing ids."""
    ticks = iter(readings + [readings[-1]])
    clock = IdClock(lambda: next(ticks))
    keys = [clock.next() for _ in readings]
    assert all(a < b for a, b in zip(keys, keys[1:], strict=False))
    assert all(key > clock.origin for key in keys)
    assert [parse_id(format_id(key)) for key in keys] == keys


def _filled(limit, count, ttl_ms=0, now=0):
    history = ChannelHistory(limit, ttl_ms)
    for n in range(1, count + 1):
        history.append((n, 0), Event(b"%d" % n, id=f"{n}-0"), now)
    return history


def test_history_keeps_exactly_the_last_n_and_records_the_cut():
    """Past its length the history drops the oldest events and remembers the newest dropped."""
    history = _filled(10, 50)
    missed = history.after((0, 0), origin=(0, 0), now_ms=0)
    assert [e.data for e in missed.events] == [b"%d" % n for n in range(41, 51)]
    assert history.cut == (40, 0)


@pytest.mark.parametrize(
    ("after", "lost", "first"),
    [((39, 0), True, 41), ((40, 0), False, 41), ((45, 0), False, 46), ((50, 0), False, None)],
)
def test_loss_is_exact(after, lost, first):
    """Loss is reported iff an event after the id was dropped."""
    missed = _filled(10, 50).after(after, origin=(0, 0), now_ms=0)
    assert missed.lost is lost
    assert (int(missed.events[0].data) if missed.events else None) == first


def test_ids_older_than_the_origin_are_lost():
    """An id from before the broker's data began (a restart) reports loss."""
    assert _filled(10, 3).after((0, 5), origin=(1, 0), now_ms=0).lost


def test_history_zero_keeps_nothing_but_still_detects_loss():
    """--history 0 stores no event, yet a client behind the last event is told it lost some."""
    history = _filled(0, 3)
    assert history.after((2, 0), (0, 0), 0) == history.after((2, 0), (0, 0), 0)
    assert history.after((2, 0), (0, 0), 0).lost and not history.after((3, 0), (0, 0), 0).lost


def test_ttl_expires_old_events_and_reports_them_lost():
    """Events older than the TTL are dropped when read, and a client that needed them is told."""
    history = ChannelHistory(100, ttl_ms=1000)
    history.append((1000, 0), Event(b"old", id="1000-0"), now_ms=1000)
    history.append((1800, 0), Event(b"new", id="1800-0"), now_ms=1800)
    missed = history.after((500, 0), origin=(0, 0), now_ms=2500)
    assert missed.lost and [e.data for e in missed.events] == [b"new"]
    assert not history.after((1000, 0), origin=(0, 0), now_ms=2500).lost
