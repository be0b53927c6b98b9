"""A block: the encoded events that go to a client together (pure, transport-neutral).

A broker hands the hub what arrived in one read (one reactor turn, or one `--coalesce`
window); each event is encoded once, and every listener of a channel gets the same
block, joined once. How a block is put on the wire (HTTP/1.1 chunks, a socket shortcut,
HTTP/2 frames) is the web edge's business: a block knows nothing of HTTP.
"""

from __future__ import annotations

from twisted_sse.core._history import EventKey

__all__ = ["Block"]


class Block:
    """Encoded events that go out together.

    `data` is the events' bytes joined; `first` and `last` are the keys of the first and
    last events that have ids, so that a listener can skip what it has already sent.
    """

    __slots__ = ("items", "data", "first", "last")

    def __init__(self, items: list[tuple[EventKey | None, bytes]]) -> None:
        self.items = items
        self.data = items[0][1] if len(items) == 1 else b"".join(data for _, data in items)
        keys = [key for key, _ in items if key is not None]
        self.first = keys[0] if keys else None
        self.last = keys[-1] if keys else None
