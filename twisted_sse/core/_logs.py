"""twisted-sse's own log lines, dropped below `--log-level` (default info) before they are formatted.

Under abuse the per-channel debug lines alone were megabytes a minute; at the default
level they cost one comparison. Twisted's own lines are not affected.
"""

from __future__ import annotations

from typing import Any

from twisted.logger import Logger as _TwistedLogger
from twisted.logger import LogLevel

__all__ = ["Logger", "LEVELS", "set_level"]

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
