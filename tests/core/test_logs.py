"""Logs: lines below --log-level are dropped before they are formatted; bursts are cut to a budget."""

import pytest

from twisted_sse.core._logs import Logger, set_level


@pytest.fixture(autouse=True)
def _restore_level():
    yield
    set_level("info")


def _emitted(level: str) -> list[str]:
    seen: list[dict] = []
    log = Logger(observer=seen.append)
    set_level(level)
    log.debug("d")
    log.info("i")
    log.warn("w")
    log.error("e")
    return [event["log_format"] for event in seen]


def test_levels():
    """Each level lets through itself and what is more important; info is the default."""
    assert _emitted("debug") == ["d", "i", "w", "e"]
    assert _emitted("info") == ["i", "w", "e"]
    assert _emitted("warn") == ["w", "e"]
    assert _emitted("error") == ["e"]


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="use one of"):
        set_level("verbose")


def test_a_burst_of_lines_of_one_kind_is_cut_to_the_budget_and_summed_up_once():
    """Ten lines a second are written; the rest are counted and told in one line when the second ends."""
    from twisted.internet.task import Clock
    from twisted.logger import LogLevel

    from twisted_sse.core import Budget

    events = []
    log = Logger(observer=events.append)
    clock = Clock()
    budget = Budget(log, "stream openings", clock, per_second=10)
    allowed = [budget.allows() for _ in range(1000)]
    assert allowed.count(True) == 10 and allowed[:10] == [True] * 10 and events == []
    clock.advance(1)
    [summary] = events
    assert summary["log_level"] == LogLevel.info and (summary["count"], summary["what"]) == (990, "stream openings")
    assert budget.allows() and clock.getDelayedCalls() == []  # a new second: lines again, no timer left


def test_json_lines_carry_time_level_message_and_the_events_fields():
    """One object per line: ISO time, level name, the formatted message, and fields JSON can hold."""
    import io
    import json

    from twisted.logger import LogLevel, formatEvent

    from twisted_sse.core import JsonLines

    out = io.StringIO()
    observer = JsonLines(out)
    event = {"log_format": "stream opened: {channels} from {peer}", "log_level": LogLevel.info, "log_time": 0.25,
             "log_namespace": "twisted_sse.web._stream", "channels": "a,b", "peer": "198.51.100.7",
             "thing": object()}  # fmt: skip
    observer(event)
    try:
        raise ValueError("boom")
    except ValueError:
        from twisted.python.failure import Failure

        observer({"log_format": "failed", "log_level": LogLevel.error, "log_time": 1.0, "log_failure": Failure()})
    first, second = (json.loads(line) for line in out.getvalue().splitlines())
    assert first == {"time": "1970-01-01T00:00:00.250+00:00", "level": "info", "namespace": "twisted_sse.web._stream",
                     "message": formatEvent(event), "channels": "a,b", "peer": "198.51.100.7"}  # fmt: skip
    assert second["level"] == "error" and "ValueError: boom" in second["traceback"]
