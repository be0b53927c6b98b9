"""Counters: one declared name per count; only the counts that moved are reported."""

import pytest

from twisted_sse.core import Counters


def test_a_fresh_process_reports_nothing():
    """No count moved: the report is empty."""
    assert Counters().report() == {}


def test_counts_and_denials_by_reason_are_reported_by_name():
    """Attributes keep their names; each denial reason becomes refused_<reason>."""
    counters = Counters()
    counters.streams_opened += 2
    counters.slow_clients_cut += 1
    counters.refuse("forbidden")
    counters.refuse("forbidden")
    counters.refuse("unauthenticated")
    assert counters.report() == {
        "streams_opened": 2,
        "slow_clients_cut": 1,
        "refused_forbidden": 2,
        "refused_unauthenticated": 1,
    }


def test_a_misspelt_count_is_an_error_not_a_new_key():
    """Counting under a name nobody declared fails at once."""
    counters = Counters()
    with pytest.raises(AttributeError):
        counters.stream_opened += 1  # type: ignore[attr-defined]
