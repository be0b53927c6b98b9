"""A hypothesis state machine: random publishes, disconnects and resumes; nothing lost or doubled.

It drives a `Driver` (in-process on a Clock, or a real daemon over HTTP) and keeps the
model: every published event with its id and channel. A client connects with a
Last-Event-ID, and whatever it receives must be exactly the events of its channels
published after that id, in publish order; across its reconnections (each with the last
id it received) its whole sequence must be the events after its very first id.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Protocol

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, initialize, invariant, rule

CHANNELS = ["a", "b", "c"]
STATS: Counter[str] = Counter()
"""What the schedules did, summed over every run: for reports, not for assertions."""


class Driver(Protocol):
    def publish(self, channel: str, data: bytes) -> str: ...
    def connect(self, channels: list[str], last_id: str) -> Any: ...
    def received(self, handle: Any, count: int) -> list[tuple[str, str, str]]:
        """The first `count` events of the connection as (type, data, id)."""

    def drop(self, handle: Any) -> None: ...


@dataclass
class Client:
    channels: list[str]
    first_id: str
    start_id: str
    handle: Any = None
    got: list[tuple[str, str, str]] = field(default_factory=list)  # across all its connections
    this_connection: int = 0  # events received on the current connection

    @property
    def last_id(self) -> str:
        return self.got[-1][2] if self.got else self.start_id


def make_machine(driver_factory):
    class ResumeMachine(RuleBasedStateMachine):
        clients = Bundle("clients")

        def __init__(self) -> None:
            super().__init__()
            self.driver: Driver = driver_factory()
            self.published: list[tuple[str, str, str]] = []  # (channel, data, id)
            self.counter = 0
            self.all_clients: list[Client] = []

        @initialize()
        def seed(self):
            for channel in CHANNELS:
                self.publish(channel)

        def _after(self, channels, after_id):
            start = [i for _, _, i in self.published].index(after_id)
            return [("message", d, i) for c, d, i in self.published[start + 1 :] if c in channels]

        @rule(channel=st.sampled_from(CHANNELS))
        def publish(self, channel):
            self.counter += 1
            data = f"{channel}{self.counter}"
            self.published.append((channel, data, self.driver.publish(channel, data.encode())))
            STATS["publishes"] += 1

        @rule(
            target=clients,
            channels=st.sets(st.sampled_from(CHANNELS), min_size=1).map(sorted),
            back=st.integers(min_value=0, max_value=50),
        )
        def connect(self, channels, back):
            start = self.published[max(0, len(self.published) - 1 - back)][2]
            client = Client(channels, start, start)
            client.handle = self.driver.connect(channels, start)
            self.all_clients.append(client)
            STATS["connects"] += 1
            return client

        @rule()
        def answer_one(self):
            """Let one pending history read finish (a driver that can): publishes then fall between the reads of
            one resume's channels."""
            getattr(self.driver, "answer_one", lambda: None)()

        @rule()
        def settle(self):
            """Let pending work finish (a driver whose history reads are delayed answers them)."""
            getattr(self.driver, "settle", lambda: None)()

        @rule(client=clients)
        def drop(self, client):
            if client.handle is not None:
                self._catch_up(client)
                self.driver.drop(client.handle)
                client.handle = None

        @rule(client=clients)
        def reconnect(self, client):
            if client.handle is None:
                client.start_id = client.last_id
                client.this_connection = 0
                client.handle = self.driver.connect(client.channels, client.start_id)
                STATS["resumes"] += 1

        @rule(client=consumes(clients))
        def leave(self, client):
            self.drop(client)

        def _catch_up(self, client):
            expected = self._after(client.channels, client.start_id)
            received = self.driver.received(client.handle, len(expected))
            assert received == expected, (client.channels, client.start_id)
            client.got += received[client.this_connection :]
            STATS["events checked"] += len(received) - client.this_connection
            client.this_connection = len(received)

        @rule()
        def check(self):
            """Every connected client has received exactly what it should by now."""
            for client in self.all_clients:
                if client.handle is not None:
                    self._catch_up(client)

        @invariant()
        def whole_sequences_are_exact(self):
            for client in self.all_clients:
                assert client.got == self._after(client.channels, client.first_id)[: len(client.got)]

        def teardown(self):
            self.check()
            STATS["schedules"] += 1
            STATS["longest schedule (publishes)"] = max(STATS["longest schedule (publishes)"], len(self.published))
            for client in self.all_clients:
                if client.handle is not None:
                    self.driver.drop(client.handle)

    return ResumeMachine
