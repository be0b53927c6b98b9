"""SharedReads: one read per channel in flight; every reader gets exactly its own events, page and loss."""

import json

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet.defer import DeferredSemaphore
from twisted.internet.task import Clock

from tests.fakes import SlowHistoryBroker, publish_one
from twisted_sse.core import MemoryBroker, SharedReads, parse_id


def _broker(events=10, history=1000):
    clock = Clock()
    clock.advance(1000)
    broker = SlowHistoryBroker(clock)
    broker._limit = history
    ids = []
    for n in range(events):
        clock.advance(0.001)
        ids.append(parse_id(publish_one(broker, "news", b"%d" % n)))
    return broker, ids


def _data(missed):
    return [event.data for event in missed.events]


def test_a_thousand_resumes_from_the_same_id_cost_one_read():
    """Single flight: every reader asks while one read is in flight; they all get their answer from the next."""
    broker, ids = _broker()
    reads = SharedReads(broker, DeferredSemaphore(8))
    first = reads.history("news", ids[2], 100, 0)
    asked = [reads.history("news", ids[2], 100, 0) for _ in range(1000)]
    assert len(broker.reads) == 1  # the first read is in flight; the thousand wait for the next
    broker.answer_reads()
    assert len(broker.reads) == 1 and reads.reads == 2
    broker.answer_reads()
    assert all(_data(answer.result) == [b"%d" % n for n in range(3, 10)] for answer in [first, *asked])


def test_nearby_ids_share_a_read_and_each_gets_only_what_follows_its_own():
    """Readers 2, 5 and 8 events behind share one read made from the oldest; each gets its own events."""
    broker, ids = _broker()
    reads = SharedReads(broker, DeferredSemaphore(8))
    reads.history("other", ids[0], 10, 0)  # keep something in flight elsewhere: channels are independent
    asked = {n: reads.history("news", ids[n], 10, 0) for n in (7, 4, 1)}
    assert [(channel, after) for _, channel, after, *_ in broker.reads] == [("other", ids[0]), ("news", ids[7])]
    broker.answer_reads()  # "news" from ids[7] answers the first asker; the other two share the next read
    assert [(channel, after) for _, channel, after, *_ in broker.reads] == [("news", ids[1])]
    broker.answer_reads()
    assert {n: _data(answer.result) for n, answer in asked.items()} == {
        n: [b"%d" % m for m in range(n + 1, 10)] for n in (7, 4, 1)
    }


def test_a_reader_beyond_a_partial_read_waits_for_the_next_one():
    """A read cut by its page bound before a reader's id answers the others; that reader gets the next read."""
    broker, ids = _broker(events=20)
    reads = SharedReads(broker, DeferredSemaphore(8))
    blocker = reads.history("news", ids[0], 2, 0)
    near, far = reads.history("news", ids[1], 2, 0), reads.history("news", ids[15], 2, 0)
    broker.answer_reads()
    broker.answer_reads()  # from ids[1], 2 events: 2 and 3; the far reader is beyond them
    assert _data(blocker.result) == [b"1", b"2"] and _data(near.result) == [b"2", b"3"] and near.result.more
    assert not far.called and len(broker.reads) == 1
    broker.answer_reads()
    assert _data(far.result) == [b"16", b"17"] and far.result.more


def test_each_reader_learns_its_own_loss():
    """History trimmed to 3 events: a reader from before the cut is told, one after it is not."""
    broker, ids = _broker(events=10, history=3)
    reads = SharedReads(broker, DeferredSemaphore(8))
    reads.history("news", ids[0], 0, 0)
    old, recent = reads.history("news", ids[1], 0, 0), reads.history("news", ids[7], 0, 0)
    broker.answer_reads()
    broker.answer_reads()
    assert old.result.lost and _data(old.result) == [b"7", b"8", b"9"]
    assert not recent.result.lost and _data(recent.result) == [b"8", b"9"]


def test_a_failed_read_fails_every_reader_that_waited_for_it():
    """Each reader gets the failure (its stream then says retry:); the channel can be read again after."""
    broker, ids = _broker()
    reads = SharedReads(broker, DeferredSemaphore(8))
    waiting = [reads.history("news", ids[0], 5, 0) for _ in range(3)]
    failures = []
    for answer in waiting:
        answer.addErrback(failures.append)
    broker.reads[0][0].errback(RuntimeError("Redis timeout"))
    broker.answer_reads()  # the two that waited behind it share the next read
    assert len(failures) == 1 and all(answer.called for answer in waiting)


@settings(max_examples=60, deadline=None)
@given(
    afters=st.lists(st.integers(min_value=0, max_value=29), min_size=1, max_size=12),
    count=st.integers(min_value=0, max_value=6),
    history=st.integers(min_value=1, max_value=40),
)
def test_paging_through_shared_reads_gives_each_reader_what_it_would_read_alone(afters, count, history):
    """Readers at any ids, all paging at once through shared reads, each end with exactly the events after
    their id and the loss signal a read of their own gives."""
    clock = Clock()
    clock.advance(1000)
    alone = MemoryBroker(clock, history=history)
    slow = SlowHistoryBroker(clock)
    slow._limit = history
    ids = []
    for n in range(30):
        clock.advance(0.001)
        ids.append(parse_id(publish_one(alone, "c", b"%d" % n)))
        publish_one(slow, "c", b"%d" % n)
    reads = SharedReads(slow, DeferredSemaphore(8))
    got = {n: [] for n in range(len(afters))}
    lost = {}

    def page(n, after, first):
        def received(missed):
            if first:
                lost[n] = missed.lost
            got[n].extend(missed.events)
            if missed.more:
                page(n, parse_id(missed.events[-1].id), False)

        reads.history("c", after, count, 0).addCallback(received)

    for n, after in enumerate(afters):
        page(n, ids[after], True)
    for _ in range(1000):
        if not slow.reads:
            break
        slow.answer_reads()
    for n, after in enumerate(afters):
        expected = alone.history("c", ids[after]).result
        assert ([e.data for e in got[n]], lost[n]) == (_data(expected), expected.lost), json.dumps(after)


def test_with_a_window_resumes_that_trickle_in_share_one_read():
    """A read waits `window` seconds for others: resumes a millisecond apart cost one read, not one each."""
    broker, ids = _broker()
    clock = broker._clock
    reads = SharedReads(broker, DeferredSemaphore(8), clock, window=0.005)
    asked = []
    for n in range(4):
        asked.append(reads.history("news", ids[n], 100, 0))
        clock.advance(0.001)
    assert broker.reads == []  # the window is still open
    clock.advance(0.002)
    assert len(broker.reads) == 1 and reads.reads == 1
    broker.answer_reads()
    assert [len(answer.result.events) for answer in asked] == [9, 8, 7, 6]


class Versions:
    """The hub's channel versions, as the test sets them."""

    def __init__(self):
        self.of = {"news": 1}

    def __call__(self, channel):
        return self.of.get(channel)


def _current(window=0.005):
    broker, ids = _broker()
    versions = Versions()
    reads = SharedReads(broker, DeferredSemaphore(8), broker._clock, window=window, version=versions)
    first = reads.history("news", ids[2], 100, 0)
    broker._clock.advance(window)
    broker.answer_reads()
    assert _data(first.result) == [b"%d" % n for n in range(3, 10)]
    return broker, ids, reads, versions


def test_resumes_of_a_quiet_channel_after_its_read_are_answered_from_it_each_with_its_own_events():
    """A whole read stays current while its channel's version does: later single-channel resumes from ids
    at or after its start cost no read, however long after it they come (within CURRENT_FOR)."""
    broker, ids, reads, _ = _current()
    later = []
    for n in (2, 5, 9):
        broker._clock.advance(0.1)
        later.append(reads.history("news", ids[n], 100, 0))
    assert broker.reads == [] and reads.reads == 1 and reads.answered_current == 3
    assert [_data(answer.result) for answer in later] == [[b"%d" % m for m in range(n + 1, 10)] for n in (2, 5, 9)]


def test_a_message_of_the_channel_a_release_or_time_ends_a_current_read():
    from twisted_sse.core._shared_reads import CURRENT_FOR

    broker, ids, reads, versions = _current()
    versions.of["news"] = 2  # a message arrived (or the channel was released and held again)
    reads.history("news", ids[5], 100, 0)
    broker._clock.advance(0.005)
    assert len(broker.reads) == 1
    broker.answer_reads()
    broker._clock.advance(CURRENT_FOR + 0.001)
    reads.history("news", ids[5], 100, 0)
    broker._clock.advance(0.005)
    assert len(broker.reads) == 1  # too old
    broker.answer_reads()
    del versions.of["news"]  # no longer delivered here
    reads.history("news", ids[5], 100, 0)
    broker._clock.advance(0.005)
    assert len(broker.reads) == 1 and reads.answered_current == 0


def test_only_ids_the_current_read_covers_use_it():
    """Before the read's start, or beyond its as_of (an id issued since, on another channel): a read of
    its own. (Streams of several channels use current reads too: their pages merge what came live.)"""
    broker, ids, reads, _ = _current()
    beyond = publish_one(broker, "other", b"x")
    asks = [
        reads.history("news", ids[1], 100, 0),  # before the read's start
        reads.history("news", parse_id(beyond), 100, 0),  # beyond its as_of
        reads.history("news", ids[5], 100, 0),  # covered
    ]
    assert reads.answered_current == 1 and asks[2].called
    broker._clock.advance(0.005)
    broker.answer_reads()
    broker._clock.advance(0.005)
    broker.answer_reads()
    assert reads.reads == 2  # the two shared one read of their own
    assert [_data(answer.result) for answer in asks] == [
        [b"%d" % n for n in range(2, 10)],
        [],
        [b"%d" % n for n in range(6, 10)],
    ]


def test_a_partial_read_is_never_current_and_current_reads_are_bounded_in_bytes(monkeypatch):
    from twisted_sse.core import _shared_reads

    broker, ids = _broker()
    versions = Versions()
    reads = SharedReads(broker, DeferredSemaphore(8), broker._clock, window=0.005, version=versions)
    reads.history("news", ids[0], 3, 0)  # a page of 3 of the 9 events after it
    broker._clock.advance(0.005)
    broker.answer_reads()
    assert reads._current == {}
    monkeypatch.setattr(_shared_reads, "CURRENT_BYTES", 5)
    reads.history("news", ids[0], 100, 0)  # 9 bytes of data: more than may be kept
    broker._clock.advance(0.005)
    broker.answer_reads()
    assert reads._current == {} and reads._current_bytes == 0


def test_resumes_of_the_same_channels_and_id_share_one_whole_page_while_their_reads_stay_current():
    """Once both channels have current reads, every resume of them from the same id gets the same page
    object (made once: no merge per client); a message of either channel ends it; other ids, page bounds
    too small for the whole history, or a channel without a current read get none (they read pages)."""
    broker, ids = _broker()
    clock = broker._clock
    for n in range(3):
        clock.advance(0.001)
        publish_one(broker, "sport", b"s%d" % n)
    versions = Versions()
    versions.of["sport"] = 1
    reads = SharedReads(broker, DeferredSemaphore(8), clock, window=0.005, version=versions)
    channels = ("news", "sport")
    assert reads.page(channels, ids[2], 100, 4096) is None  # no current reads yet
    asked = [reads.history(channel, ids[2], 100, 0) for channel in channels]
    clock.advance(0.005)
    broker.answer_reads()
    assert all(answer.called for answer in asked)
    page = reads.page(channels, ids[2], 100, 4096)
    assert page is not None and reads.page(channels, ids[2], 100, 4096) is page and reads.reads == 2
    assert [event.data for _, _, event in page.gap.events] == [b"%d" % n for n in range(3, 10)] + [b"s0", b"s1", b"s2"]
    assert page.gap.through == page.earliest  # both read as of the same id: no sync needed
    other = reads.page(channels, ids[5], 100, 4096)
    assert other is not None and other is not page and len(other.gap.events) == 7
    assert reads.page(channels, ids[2], 3, 4096) is None  # three events a page: not the whole history
    assert reads.page(("news", "elsewhere"), ids[2], 100, 4096) is None
    versions.of["sport"] = 2  # a message of sport arrived
    assert reads.page(channels, ids[2], 100, 4096) is None


def test_whole_pages_kept_are_bounded_in_bytes(monkeypatch):
    """Pages may outlive their reads until replaced: at most PAGES_BYTES of event data in all (oldest go)."""
    from twisted_sse.core import _shared_reads

    monkeypatch.setattr(_shared_reads, "PAGES_BYTES", 10)
    _, ids, reads, _ = _current()
    first = reads.page(("news",), ids[2], 100, 4096)  # 7 events of 1 byte
    assert first is not None and reads._pages_bytes == 7
    second = reads.page(("news",), ids[5], 100, 4096)  # 4 more: the first goes
    assert second is not None and reads._pages_bytes == 4 and len(reads._pages) == 1
    assert reads.page(("news",), ids[2], 100, 4096) is not first  # made again


def test_a_kept_page_does_not_keep_the_reads_it_was_made_of():
    """A page may outlive its reads: it holds its own events only (bounded by PAGES_BYTES), not whole reads."""
    import gc
    import weakref

    _, ids, reads, versions = _current()
    read = weakref.ref(reads._current["news"])
    page = reads.page(("news",), ids[5], 100, 4096)
    assert page is not None
    versions.of["news"] = 2  # a message arrived: the read is no longer current, and is dropped
    assert reads.page(("news",), ids[5], 100, 4096) is None and reads._current == {}
    gc.collect()
    assert read() is None and len(reads._pages) == 1
