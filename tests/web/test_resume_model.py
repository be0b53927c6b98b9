"""The resume state machine on the in-process broker, through real HTTP parsing on a Clock."""

from hypothesis import settings
from twisted.internet.task import Clock

from tests.fakes import SlowHistoryBroker
from tests.http_harness import Harness
from tests.resume_model import make_machine


class InProcess:
    """History reads answer only when the machine settles or checks, so live events race them.

    Pages are tiny (3 events, or 12 bytes of data) so that a resume takes several of them,
    only 2 reads run at once (the others wait their turn, holding live events), reads wait
    1 ms for others to share them, and the machine can answer one read at a time."""

    def __init__(self):
        clock = Clock()
        self.broker = SlowHistoryBroker(clock)
        self.harness = Harness(broker=self.broker, clock=clock, resume_page_events=3, resume_page_bytes=12,
                               max_resumes=2, coalesce=0.001, resume_window=0.001)  # fmt: skip

    def settle(self):
        """Answer reads until none is pending; each next page is read a reactor turn later."""
        quiet = 0
        while quiet < 3:  # next pages come a reactor turn later, coalesced blocks after 1 ms: settle a few turns
            quiet = 0 if self.broker.reads else quiet + 1
            self.broker.answer_reads()
            self.harness.clock.advance(0.001)

    def answer_one(self):
        self.broker.answer_one()

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


class InProcessWholeReads(InProcess):
    """Pages big enough for every resume: reads are whole, so they stay current and serve later resumes of
    several channels, whose channels are then read at different times (a publish between them comes live
    and must go out merged into the page)."""

    def __init__(self):
        clock = Clock()
        self.broker = SlowHistoryBroker(clock)
        self.harness = Harness(broker=self.broker, clock=clock, max_resumes=2, coalesce=0.001, resume_window=0.001)


TestResumeWholeReadsInProcess = make_machine(InProcessWholeReads).TestCase
TestResumeWholeReadsInProcess.settings = settings(max_examples=150, stateful_step_count=40, deadline=None)
