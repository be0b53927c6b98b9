"""The contracts between the hub and what sits on either side of it.

A *broker* carries messages between publishers and this process (Redis, or the
in-process `MemoryBroker`); a *listener* is one client stream the hub writes to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from twisted.internet.defer import Deferred

from twisted_sse.core._block import Block
from twisted_sse.core._framing import Event
from twisted_sse.core._history import EventKey, Missed
from twisted_sse.core._publications import Publication, Receipt

__all__ = ["Broker", "History", "Listener", "Receiver"]

Receiver = Callable[[list[tuple[str, Event]]], None]
"""Called by a broker with the (channel, event) messages that arrived together, in order."""


class Broker(Protocol):
    """Where messages come from and go to. Channel names are the public ones (no prefix)."""

    kind: str
    """A short name for logs and /healthz: "memory", "redis"."""

    @property
    def reconnects(self) -> int:
        """How many times the connection to where messages come from was made again."""

    def set_receiver(self, receiver: Receiver) -> None:
        """Deliver every message of a subscribed channel to `receiver`."""

    def subscribe(self, channel: str) -> Deferred[None]:
        """Start receiving `channel`; fires once messages published from now on arrive."""

    def unsubscribe(self, channel: str) -> None:
        """Stop receiving `channel`."""

    def publish(self, publications: list[Publication]) -> Deferred[Receipt]:
        """Publish checked events in order, atomically; fires with their ids once they are durable
        (an id is None when the broker assigns none), or fails as a whole."""

    def history(self, channel: str, after: EventKey, count: int = 0, size: int = 0) -> Deferred[Missed]:
        """The channel's held events after `after`, and whether any after it are gone.

        A page: at most `count` events and, past the first, `size` bytes of data (0: no bound);
        `Missed.more` says the page stopped there."""

    def is_connected(self) -> bool:
        """True while messages can flow."""

    def sync(self) -> Deferred[None]:
        """Fires once every message of a subscribed channel published before the call has been handed to
        the receiver (fails when that can't be known now: the broker is not connected)."""


class History(Protocol):
    """Where a channel's held events are read from: a broker, or reads shared in front of one."""

    def history(self, channel: str, after: EventKey, count: int = 0, size: int = 0) -> Deferred[Missed]:
        """As `Broker.history`."""


class Listener(Protocol):
    """One open client stream, as the hub sees it."""

    def deliver(self, block: Block) -> None:
        """Write a block of encoded events of the listener's channels."""

    def heartbeat(self, data: bytes) -> None:
        """Write a keep-alive comment."""

    def close(self, retry_ms: int | None = None) -> None:
        """End the stream, telling the client to reconnect after `retry_ms`."""
