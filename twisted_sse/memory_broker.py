"""The in-process broker: the embedded default, and the fake that tests use.

One process, no Redis: publishing delivers straight to this process's hub.
"""

from __future__ import annotations

from twisted.internet.defer import Deferred, succeed

from twisted_sse.framing import Event
from twisted_sse.interfaces import Receiver

__all__ = ["MemoryBroker"]


class MemoryBroker:
    """A broker that lives in this process; see `twisted_sse.interfaces.Broker`."""

    kind = "memory"

    def __init__(self) -> None:
        self._receiver: Receiver | None = None
        self.subscribed: set[str] = set()

    def set_receiver(self, receiver: Receiver) -> None:
        self._receiver = receiver

    def subscribe(self, channel: str) -> Deferred[None]:
        self.subscribed.add(channel)
        return succeed(None)

    def unsubscribe(self, channel: str) -> None:
        self.subscribed.discard(channel)

    def publish(self, channel: str, data: bytes, event: str | None = None) -> Deferred[str | None]:
        message = Event(data, event)
        if channel in self.subscribed and self._receiver is not None:
            self._receiver(channel, message)
        return succeed(None)

    def is_connected(self) -> bool:
        return True
