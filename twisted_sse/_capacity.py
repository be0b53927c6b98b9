"""How many streams the process can hold: each one is an open file descriptor."""

from __future__ import annotations

import resource as _rlimit

__all__ = ["raise_open_files_limit", "RESERVED_FILES"]

RESERVED_FILES = 64
"""Descriptors kept for everything that is not a stream (listeners, Redis, logs)."""


def raise_open_files_limit() -> int:
    """Raise the soft open-files limit to the hard limit; return the limit now in force."""
    soft, hard = _rlimit.getrlimit(_rlimit.RLIMIT_NOFILE)
    if hard == _rlimit.RLIM_INFINITY or soft == hard:
        return soft
    try:
        _rlimit.setrlimit(_rlimit.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        return soft
    return hard
