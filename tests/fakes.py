"""Fakes for unit tests: a broker whose subscriptions the test confirms by hand."""

from __future__ import annotations

from twisted.internet.defer import Deferred

from twisted_sse.framing import Event
from twisted_sse.interfaces import Receiver
from twisted_sse.memory_broker import MemoryBroker


class ManualBroker:
    """Records subscribe/unsubscribe calls; each subscription waits for the test."""

    kind = "manual"

    def __init__(self) -> None:
        self.receiver: Receiver | None = None
        self.calls: list[tuple[str, str]] = []
        self.pending: dict[str, Deferred[None]] = {}

    def set_receiver(self, receiver: Receiver) -> None:
        self.receiver = receiver

    def subscribe(self, channel: str) -> Deferred[None]:
        self.calls.append(("subscribe", channel))
        self.pending[channel] = Deferred()
        return self.pending[channel]

    def unsubscribe(self, channel: str) -> None:
        self.calls.append(("unsubscribe", channel))

    def publish(self, channel: str, data: bytes, event: str | None = None) -> Deferred[str | None]:
        raise NotImplementedError

    def history(self, channel, after):
        raise NotImplementedError

    def is_connected(self) -> bool:
        return True

    def message(self, channel: str, data: bytes) -> None:
        assert self.receiver is not None
        self.receiver([(channel, Event(data))])


class RecordingListener:
    def __init__(self) -> None:
        self.delivered: list[bytes] = []
        self.heartbeats: list[bytes] = []

    def deliver(self, block) -> None:
        self.delivered.append(block.data)

    def heartbeat(self, data: bytes) -> None:
        self.heartbeats.append(data)


class SlowHistoryBroker(MemoryBroker):
    """An in-process broker whose history reads answer only when the test says so."""

    def __init__(self, clock) -> None:
        super().__init__(clock)
        self.reads: list[tuple[Deferred, str, object]] = []

    def history(self, channel, after):
        d: Deferred = Deferred()
        self.reads.append((d, channel, after))
        return d

    def answer_reads(self) -> None:
        """Answer every pending read with what the history holds now."""
        reads, self.reads = self.reads, []
        for d, channel, after in reads:
            MemoryBroker.history(self, channel, after).chainDeferred(d)
