"""What a channel name is, and which names a pattern in a grant covers.

A pattern is a channel name where `*` matches any run of characters. Nothing else is
special, and no regular expression is ever built from one: a pattern comes from a token
or the command line, and must not be able to cost more than a scan.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from twisted_sse.core._framing import check_field

__all__ = [
    "valid_channel", "checked_publication", "CHANNEL_RULE", "MAX_CHANNELS_PER_STREAM",
    "ChannelPatterns", "valid_pattern", "MAX_PATTERN_LENGTH", "MAX_EVENT_TYPE",
]  # fmt: skip

_CHANNEL = re.compile(r"[A-Za-z0-9_.:-]{1,128}")
CHANNEL_RULE = "1-128 characters from A-Z a-z 0-9 _ . : -"
MAX_EVENT_TYPE = 256
"""Characters an event type may have."""
MAX_CHANNELS_PER_STREAM = 64
"""How many channels one `GET /events?channel=...` may name."""


def valid_channel(name: str) -> bool:
    """True when `name` is a channel name a client may use."""
    return _CHANNEL.fullmatch(name) is not None


def checked_publication(channel: str, data: bytes | str, event: str | None) -> bytes:
    """The data of an event about to be published, as bytes; ValueError for a bad channel or type."""
    if not valid_channel(channel):
        raise ValueError(f"invalid channel name {channel!r}: use {CHANNEL_RULE}")
    if event is not None:
        check_field("event type", event)
        if len(event) > MAX_EVENT_TYPE:
            raise ValueError(f"the event type is longer than {MAX_EVENT_TYPE} characters")
    return data.encode("utf-8") if isinstance(data, str) else data


MAX_PATTERN_LENGTH = 256
_PATTERN = re.compile(rf"[A-Za-z0-9_.:*-]{{1,{MAX_PATTERN_LENGTH}}}")


def valid_pattern(pattern: str) -> bool:
    """True for channel-name characters plus `*`, 1-256 of them."""
    return _PATTERN.fullmatch(pattern) is not None


def _matches(pattern: str, name: str) -> bool:
    parts = pattern.split("*")
    if len(parts) == 1:
        return pattern == name
    first, *middle, last = parts
    if len(name) < len(first) + len(last) or not name.startswith(first) or not name.endswith(last):
        return False
    position, end = len(first), len(name) - len(last)
    for part in middle:  # each literal part at its leftmost place: greedy is exact for `*` alone
        found = name.find(part, position, end)
        if found < 0:
            return False
        position = found + len(part)
    return True


class ChannelPatterns:
    """A set of patterns; `matches(name)` is true when any of them covers the channel."""

    __slots__ = ("_exact", "_wild")

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        """ValueError for a pattern that is not channel characters plus `*`."""
        exact, wild = set(), []
        for pattern in patterns:
            if not isinstance(pattern, str) or not valid_pattern(pattern):
                raise ValueError(f"not a channel pattern: {str(pattern)[:64]!r}")
            (wild.append(pattern) if "*" in pattern else exact.add(pattern))
        self._exact = frozenset(exact)
        self._wild = tuple(wild)

    def __bool__(self) -> bool:
        return bool(self._exact or self._wild)

    def matches(self, name: str) -> bool:
        return name in self._exact or any(_matches(pattern, name) for pattern in self._wild)

    def covers(self, names: Iterable[str]) -> bool:
        """True when every channel in `names` matches."""
        return all(self.matches(name) for name in names)
