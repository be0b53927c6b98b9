"""Resuming streams: Last-Event-ID replay, the loss signal, and the live handover."""

import json

from twisted.internet.task import Clock

from tests.fakes import SlowHistoryBroker
from tests.http_harness import Harness
from twisted_sse.core._replay import LOST_EVENT_TYPE


def _publish(harness, channel, *bodies):
    ids = []
    for body in bodies:
        harness.clock.advance(0.001)
        ids.append(json.loads(harness.publish(channel, body).body)["id"])
    return ids


def _data(client):
    return [e.data for e in client.response().events()]


def test_last_event_id_header_replays_what_was_missed_then_goes_live():
    """A client that comes back with Last-Event-ID gets exactly the events after it, then live ones."""
    harness = Harness()
    ids = _publish(harness, "news", b"1", b"2", b"3", b"4")
    client = harness.stream("/events/news", {"Last-Event-ID": ids[1]})
    assert _data(client) == ["3", "4"]
    _publish(harness, "news", b"5")
    assert _data(client) == ["3", "4", "5"]
    assert [e.last_event_id for e in client.response().events()][-1] != ids[-1]


def test_query_id_is_used_without_header_and_the_header_wins():
    """?lastEventId= resumes when no header is sent; with both, the header wins."""
    harness = Harness()
    ids = _publish(harness, "news", b"1", b"2", b"3")
    assert _data(harness.stream(f"/events/news?lastEventId={ids[0]}")) == ["2", "3"]
    both = harness.stream(f"/events/news?lastEventId={ids[0]}", {"Last-Event-ID": ids[1]})
    assert _data(both) == ["3"]


def test_malformed_or_oversized_id_is_ignored_and_the_stream_starts_live():
    """A Last-Event-ID that isn't one of ours is ignored: 200, no replay, no loss signal."""
    harness = Harness()
    _publish(harness, "news", b"old")
    for bad in ["garbage", "1-2-3", "9" * 30 + "-0", "-1", "\u0661-1", "18446744073709551616-0"]:
        client = harness.stream("/events/news", {"Last-Event-ID": bad.encode("utf-8").decode("latin-1")})
        assert client.response().status == 200
        assert _data(client) == []
    _publish(harness, "news", b"live")
    assert _data(client) == ["live"]


def test_client_far_behind_gets_the_loss_signal_then_what_is_retained():
    """With --history 10 a client 50 events behind is told events were lost, then gets the last 10."""
    harness = Harness(history=10)
    first = _publish(harness, "news", b"0")[0]
    _publish(harness, "news", *(b"%d" % n for n in range(1, 51)))
    client = harness.stream("/events/news", {"Last-Event-ID": first})
    events = client.response().events()
    assert events[0].type == LOST_EVENT_TYPE
    assert json.loads(events[0].data) == {"channels": ["news"], "lastEventId": first}
    assert events[0].last_event_id == ""  # no id of its own: the browser keeps the one it sent
    assert [e.data for e in events[1:]] == [str(n) for n in range(41, 51)]


def test_quiet_channel_raises_no_false_loss_signal():
    """A quiet channel whose history still covers the id gives no loss signal, even beside a busy one."""
    harness = Harness(history=10)
    quiet_id = _publish(harness, "quiet", b"q")[0]
    _publish(harness, "busy", *(b"%d" % n for n in range(50)))
    quiet = harness.stream("/events/quiet", {"Last-Event-ID": quiet_id})
    assert quiet.response().events() == []
    both = harness.stream("/events?channel=quiet&channel=busy", {"Last-Event-ID": quiet_id})
    events = both.response().events()
    assert events[0].type == LOST_EVENT_TYPE and json.loads(events[0].data)["channels"] == ["busy"]


def test_multi_channel_resume_merges_channels_in_publish_order():
    """One Last-Event-ID resumes every channel of a stream, in the order events were published."""
    harness = Harness()
    start = _publish(harness, "a", b"a0")[0]
    for n in range(3):
        _publish(harness, "a", b"a%d" % (n + 1))
        _publish(harness, "b", b"b%d" % (n + 1))
    client = harness.stream("/events?channel=a&channel=b", {"Last-Event-ID": start})
    assert _data(client) == ["a1", "b1", "a2", "b2", "a3", "b3"]


def test_live_events_during_the_history_read_are_neither_lost_nor_doubled():
    """Events published while history is read come once, after the history, even if the read saw them."""
    clock = Clock()
    broker = SlowHistoryBroker(clock)
    harness = Harness(broker=broker, clock=clock)
    ids = _publish(harness, "news", b"1", b"2")
    other = harness.stream("/events/news")  # the channel is already held by another stream
    client = harness.stream("/events/news", {"Last-Event-ID": ids[0]})
    _publish(harness, "news", b"3")  # live while the read is pending: held back
    assert _data(client) == []
    broker.answer_reads()  # the read sees 2 and 3
    _publish(harness, "news", b"4")
    assert _data(client) == ["2", "3", "4"]
    assert _data(other) == ["3", "4"]


def test_resume_from_before_a_restart_reports_loss():
    """An id from before the broker started (the in-process history died with its process) reports loss."""
    old = Harness()
    old_id = _publish(old, "news", b"before restart")[0]
    later = Clock()
    later.advance(100)
    new = Harness(clock=later)
    events = new.stream("/events/news", {"Last-Event-ID": old_id}).response().events()
    assert [e.type for e in events] == [LOST_EVENT_TYPE]


def test_an_id_ahead_of_everything_issued_gets_the_real_position_then_live():
    """A far-future (or forged) Last-Event-ID is told where things are (sse-lost with the broker's last id), then
    gets live events instead of waiting for ever."""
    harness = Harness()
    last = _publish(harness, "news", b"old")[-1]
    client = harness.stream("/events?channel=news&channel=other", {"Last-Event-ID": "99999999999999-0"})
    events = client.response().events()
    assert [(e.type, e.last_event_id) for e in events] == [(LOST_EVENT_TYPE, last)]
    assert json.loads(events[0].data) == {"channels": ["news", "other"], "lastEventId": "99999999999999-0"}
    _publish(harness, "news", b"live")
    assert _data(client)[1:] == ["live"]


def _settle(harness, broker):
    while True:
        broker.answer_reads()
        harness.clock.advance(0)
        if not broker.reads:
            return


def test_the_next_page_is_read_only_once_the_client_took_the_last():
    """A client whose transport paused the stream gets no further history read until it resumes."""
    clock = Clock()
    broker = SlowHistoryBroker(clock)
    harness = Harness(broker=broker, clock=clock, resume_page_events=2)
    ids = _publish(harness, "news", *[b"%d" % n for n in range(7)])
    client = harness.stream("/events/news", {"Last-Event-ID": ids[0]})
    client.transport.producer.pauseProducing()  # the client's socket buffer is full
    broker.answer_reads()
    clock.advance(1)
    assert broker.reads == [] and _data(client) == []  # one page queued, no further read
    client.transport.producer.resumeProducing()
    assert _data(client) == ["1", "2"]
    clock.advance(0)
    assert len(broker.reads) == 1
    _settle(harness, broker)
    assert _data(client) == [str(n) for n in range(1, 7)]


def test_at_most_max_resumes_streams_read_history_at_once_and_the_others_wait_their_turn():
    """With --max-resumes 1 a second resume reads nothing until the first has finished, then gets all of its own."""
    clock = Clock()
    broker = SlowHistoryBroker(clock)
    harness = Harness(broker=broker, clock=clock, max_resumes=1)
    ids = _publish(harness, "a", b"a1", b"a2")
    ids += _publish(harness, "b", b"b1")
    first = harness.stream("/events/a", {"Last-Event-ID": ids[0]})
    second = harness.stream("/events/b", {"Last-Event-ID": ids[0]})
    assert [channel for _, channel, *_ in broker.reads] == ["a"]
    _publish(harness, "b", b"b2")  # live while it waits: held
    broker.answer_reads()
    assert _data(first) == ["a2"] and [channel for _, channel, *_ in broker.reads] == ["b"]
    _settle(harness, broker)
    assert _data(second) == ["b1", "b2"]


def test_live_events_held_during_a_resume_count_against_max_queue():
    """A stream whose replay doesn't move while live events pile up is cut like any slow client."""
    clock = Clock()
    broker = SlowHistoryBroker(clock)
    harness = Harness(broker=broker, clock=clock, max_queue=1000)
    ids = _publish(harness, "news", b"old")
    client = harness.stream("/events/news", {"Last-Event-ID": ids[0]})
    other = harness.stream("/events/news")
    _publish(harness, "news", b"x" * 600)
    assert not client.transport.disconnecting
    _publish(harness, "news", b"y" * 600)
    assert client.transport.disconnecting and harness.service.hub.counters.slow_clients_cut == 1
    assert _data(other) == ["x" * 600, "y" * 600]  # nobody else pays for it


def test_a_client_that_does_not_take_its_pages_holds_no_resume_slot():
    """With --max-resumes 1, a paused client between two pages doesn't keep another stream's resume waiting."""
    clock = Clock()
    broker = SlowHistoryBroker(clock)
    harness = Harness(broker=broker, clock=clock, max_resumes=1, resume_page_events=2)
    ids = _publish(harness, "a", b"a1", b"a2", b"a3", b"a4")
    ids += _publish(harness, "b", b"b1")
    stalled = harness.stream("/events/a", {"Last-Event-ID": ids[0]})
    stalled.transport.producer.pauseProducing()
    broker.answer_reads()  # its first page, queued for a client that doesn't read
    clock.advance(1)
    other = harness.stream("/events/b", {"Last-Event-ID": ids[0]})
    assert [channel for _, channel, *_ in broker.reads] == ["b"]
    _settle(harness, broker)
    assert _data(other) == ["b1"] and _data(stalled) == []


def test_channels_read_at_different_times_lose_nothing_published_between_their_reads():
    """A resume of a and b: a's history is read, then an event is published on a and one on b, then b's history
    is read (it has the b event). The a event, missing from a's read, must not be skipped when it comes live."""
    clock = Clock()
    broker = SlowHistoryBroker(clock)
    harness = Harness(broker=broker, clock=clock)
    ids = _publish(harness, "a", b"a1")
    ids += _publish(harness, "b", b"b1")
    client = harness.stream("/events?channel=a&channel=b", {"Last-Event-ID": ids[0]})
    assert [channel for _, channel, *_ in broker.reads] == ["a", "b"]
    broker.answer_one()  # a's history: nothing after a1
    _publish(harness, "a", b"a2")  # live, held while the resume goes on
    _publish(harness, "b", b"b2")
    broker.answer_one()  # b's history: b1 and b2
    _settle(harness, broker)
    assert _data(client) == ["b1", "a2", "b2"]


def test_resumes_of_the_same_channels_from_the_same_id_after_the_first_cost_no_read_and_keep_nothing():
    """The first resume's reads become current; the next ones of the same channels and id get one whole
    page made from them (no read of their own), each its own events; a resumed stream keeps nothing of it."""
    clock = Clock()
    broker = SlowHistoryBroker(clock)
    harness = Harness(broker=broker, clock=clock, resume_window=0.005)
    start = _publish(harness, "a", b"a0")[0]
    for n in range(3):
        _publish(harness, "a", b"a%d" % (n + 1))
        _publish(harness, "b", b"b%d" % (n + 1))
    path, expected = "/events?channel=a&channel=b", ["a1", "b1", "a2", "b2", "a3", "b3"]
    first = harness.stream(path, {"Last-Event-ID": start})
    clock.advance(0.005)
    _settle(harness, broker)
    assert _data(first) == expected and harness.service.resource._surface.streams.reads.reads == 2
    others = [harness.stream(path, {"Last-Event-ID": start}) for _ in range(20)]
    assert broker.reads == [] and all(_data(client) == expected for client in others)
    assert harness.service.resource._surface.streams.reads.reads == 2
    assert all(stream._pages is None for stream in harness.service.hub.listeners())


def test_a_resume_that_missed_nothing_on_plain_tcp_goes_on_live():
    """On the socket shortcut, a resume from the newest id (an empty page) must not end the response."""
    from tests.http_harness import SocketClient

    harness = Harness()
    last = _publish(harness, "a", b"a1")[0]
    for path in ("/events/a", "/events?channel=a&channel=b"):
        client = harness.stream(path, {"Last-Event-ID": last}, client=SocketClient(harness.site))
        client.flush()
        _publish(harness, "a", b"live")
        client.flush()
        response = client.response()
        assert not response.complete and [e.data for e in response.events()] == ["live"], path
        last = response.events()[-1].last_event_id


def test_encoded_pages_kept_are_bounded_in_number_and_size():
    """At most 32 pages of up to 64 KiB each are kept encoded (about 2 MiB); a larger page is encoded for
    each stream it goes to."""
    from twisted_sse.core import Event, Gap
    from twisted_sse.web import _stream

    _stream._encoded_pages.clear()
    small = [Gap((1, 0), [], [((2, n), "a", Event(b"x", None, f"2-{n}"))]) for n in range(_stream._CACHED_PAGES + 1)]
    for gap in small:
        assert _stream._page_of(gap, ("a",))[3] is _stream._page_of(gap, ("a",))[3]  # the kept bytes, reused
    assert len(_stream._encoded_pages) <= _stream._CACHED_PAGES
    big = Gap((1, 0), [], [((3, n), "a", Event(b"y" * 1000, None, f"3-{n}")) for n in range(70)])
    _stream._page_of(big, ("a",))
    assert id(big) not in _stream._encoded_pages
    _stream._encoded_pages.clear()
