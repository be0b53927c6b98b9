"""Fakes for unit tests: a broker whose subscriptions the test confirms by hand."""

from __future__ import annotations

from twisted.internet import tcp
from twisted.internet.defer import Deferred, succeed
from twisted.internet.testing import MemoryReactor

from twisted_sse.core._framing import Event
from twisted_sse.core._interfaces import Receiver
from twisted_sse.core._memory_broker import MemoryBroker


def publish_one(broker, channel: str, data: bytes, event: str | None = None) -> str | None:
    """Publish one event through a broker that answers at once (the in-process one); its id."""
    return broker.publish([(channel, data, event)]).result.ids[0]


class ManualBroker:
    """Records subscribe/unsubscribe calls; each subscription waits for the test."""

    kind = "manual"
    reconnects = 0

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

    def publish(self, publications):
        raise NotImplementedError

    def history(self, channel, after):
        raise NotImplementedError

    def is_connected(self) -> bool:
        return True

    def sync(self) -> Deferred[None]:
        self.calls.append(("sync", ""))
        return succeed(None)  # messages are handed on as the test sends them

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

    def history(self, channel, after, count=0, size=0):
        d: Deferred = Deferred()
        self.reads.append((d, channel, after, count, size))
        return d

    def answer_one(self) -> None:
        """Answer the oldest pending read only: the channels of one resume are then read at different times."""
        if self.reads:
            d, channel, after, count, size = self.reads.pop(0)
            MemoryBroker.history(self, channel, after, count, size).chainDeferred(d)

    def answer_reads(self) -> None:
        """Answer every pending read with what the history holds now."""
        reads, self.reads = self.reads, []
        for d, channel, after, count, size in reads:
            MemoryBroker.history(self, channel, after, count, size).chainDeferred(d)


class FakeSocket:
    """What `twisted.internet.tcp.Server` needs of a socket, with a send buffer of `room` bytes.

    A send takes what fits into the room left and raises BlockingIOError when none is, as
    a non-blocking socket does; the test plays the client with `read`.
    """

    def __init__(self, room: int = 1 << 20) -> None:
        self.room = room
        self.in_flight = bytearray()
        self.received = bytearray()
        self.sent: list[bytes] = []
        """Every buffer handed to send(), as it was handed."""
        self.closed = False

    def setblocking(self, flag: bool) -> None:
        pass

    def fileno(self) -> int:
        return -1

    def setsockopt(self, *args: object) -> None:
        pass

    def getsockname(self) -> tuple[str, int]:
        return ("127.0.0.1", 8080)

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        if self.closed:
            raise BrokenPipeError("closed")
        taken = min(len(data), self.room - len(self.in_flight))
        if taken == 0:
            raise BlockingIOError("send buffer full")
        self.in_flight += bytes(data[:taken])
        return taken

    def read(self, size: int | None = None) -> bytes:
        """The client reads up to `size` bytes (all by default) of what was sent."""
        size = len(self.in_flight) if size is None else size
        data = bytes(self.in_flight[:size])
        del self.in_flight[:size]
        self.received += data
        return data

    def shutdown(self, how: int) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def fake_tcp_server(protocol: object, room: int = 1 << 20, port: int = 50000) -> tcp.Server:
    """A real `tcp.Server` transport for `protocol` (not yet connected to it) over a `FakeSocket`."""
    transport = tcp.Server(FakeSocket(room), protocol, ("127.0.0.1", port), None, 1, MemoryReactor())
    transport.repstr = f"<fake tcp.Server #{port}>"  # what a listening port would have set
    return transport
