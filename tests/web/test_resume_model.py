"""The resume state machine on the in-process broker, through real HTTP parsing on a Clock."""

from hypothesis import settings
from twisted.internet.task import Clock

from tests.fakes import SlowHistoryBroker
from tests.http_harness import Harness
from tests.resume_model import make_machine


class InProcess:
    """History reads answer only when the machine settles or checks, so live events race them."""

    def __init__(self):
        clock = Clock()
        self.broker = SlowHistoryBroker(clock)
        self.harness = Harness(broker=self.broker, clock=clock)

    def settle(self):
        self.broker.answer_reads()

    def publish(self, channel, data):
        import json

        self.harness.clock.advance(0.0005)  # several ids per millisecond, and ms steps too
        return json.loads(self.harness.publish(channel, data).body)["id"]

    def connect(self, channels, last_id):
        query = "&".join(f"channel={c}" for c in channels)
        return self.harness.stream(f"/events?{query}", {"Last-Event-ID": last_id})

    def received(self, client, count):
        self.settle()
        events = [(e.type, e.data, e.last_event_id) for e in client.response().events()]
        assert len(events) == count, f"expected {count} events, got {len(events)}"
        return events

    def drop(self, client):
        client.drop()


TestResumeInProcess = make_machine(InProcess).TestCase
TestResumeInProcess.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
