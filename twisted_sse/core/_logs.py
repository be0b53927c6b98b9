"""twisted-sse's own log lines, dropped below `--log-level` (default info) before they are formatted.

Under abuse the per-channel debug lines alone were megabytes a minute; at the default
level they cost one comparison. Twisted's own lines are not affected.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import IO, Any

from twisted.internet.interfaces import IDelayedCall, IReactorTime
from twisted.logger import ILogObserver, LogEvent, LogLevel, formatEvent
from twisted.logger import Logger as _TwistedLogger
from zope.interface import implementer

__all__ = ["Logger", "LEVELS", "set_level", "Budget", "JsonLines"]

LEVELS = ("debug", "info", "warn", "error")
_threshold = [LogLevel.info]


def set_level(name: str) -> None:
    """Log twisted-sse's lines of this level and above: debug, info, warn or error."""
    if name not in LEVELS:
        raise ValueError(f"log level {name!r}: use one of {', '.join(LEVELS)}")
    _threshold[0] = LogLevel.levelWithName(name)


class Logger(_TwistedLogger):
    """A Twisted `Logger` that drops events below the configured level."""

    def emit(self, level: LogLevel, format: str | None = None, **kwargs: Any) -> None:  # noqa: A002
        if level < _threshold[0]:
            return
        super().emit(level, format, **kwargs)


class Budget:
    """Lines of one kind, at most `per_second` in a second; the rest are counted, then summed up in one line.

    Formatting a log line costs more than opening the stream it tells of: a burst of a
    thousand streams opening (or refused) at once then costs a few lines, not a thousand,
    and can't fill a disk.
    """

    def __init__(self, log: Logger, what: str, clock: IReactorTime, per_second: int = 10) -> None:
        self._log = log
        self._what = what
        self._clock = clock
        self._per_second = per_second
        self._window_ends = 0.0
        self._used = 0
        self._skipped = 0
        self._summary: IDelayedCall | None = None

    def allows(self) -> bool:
        """True when a line may be written now; otherwise it is counted for the summary."""
        now = self._clock.seconds()
        if now >= self._window_ends:
            self._window_ends = now + 1.0
            self._used = 0
        if self._used < self._per_second:
            self._used += 1
            return True
        self._skipped += 1
        if self._summary is None:
            self._summary = self._clock.callLater(self._window_ends - now, self._sum_up)
        return False

    def _sum_up(self) -> None:
        self._summary = None
        skipped, self._skipped = self._skipped, 0
        self._log.info("... and {count} more {what} in the last second, not logged one by one",
                       count=skipped, what=self._what)  # fmt: skip


@implementer(ILogObserver)
class JsonLines:
    """One JSON object per line for log shippers: time, level, namespace, the formatted message, and the
    event's own fields (peer, channels, duration, ...) as they were given, when JSON can hold them."""

    def __init__(self, out: IO[str]) -> None:
        self._out = out

    def __call__(self, event: LogEvent) -> None:
        record: dict[str, object] = {
            "time": datetime.fromtimestamp(event.get("log_time", 0), UTC).isoformat(timespec="milliseconds"),
            "level": event["log_level"].name if "log_level" in event else "info",
            "namespace": event.get("log_namespace", ""),
            "message": formatEvent(event),
        }
        for key, value in event.items():
            if not key.startswith("log_") and key not in record and isinstance(value, str | int | float | bool):
                record[key] = value
        failure = event.get("log_failure")
        if failure is not None:
            record["traceback"] = failure.getTraceback()
        self._out.write(json.dumps(record, default=str) + "\n")
        self._out.flush()
