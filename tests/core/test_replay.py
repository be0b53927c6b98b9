"""Replay: history and held live events pass once each, in order."""

from hypothesis import given
from hypothesis import strategies as st

from tests.fakes import publish_one
from twisted_sse.core._replay import Replay


def test_live_events_pass_at_once_when_not_holding():
    """Without a replay, live events go straight through."""
    out = []
    replay = Replay(out.append)
    replay.live((1, 0), b"a")
    replay.live(None, b"raw")
    assert out == [b"a", b"raw"]


def test_held_events_follow_the_history_without_duplicates():
    """History first, then held live events, skipping ids the history already had."""
    out = []
    replay = Replay(out.append)
    replay.resume((1, 0))
    replay.live((3, 0), b"3")
    replay.live((4, 0), b"4")
    assert out == []
    replay.release([((2, 0), b"2"), ((3, 0), b"3")])
    assert out == [b"2", b"3", b"4"]
    replay.live((4, 0), b"4 again")
    replay.live((5, 0), b"5")
    assert out == [b"2", b"3", b"4", b"5"]


def test_ids_at_or_before_the_resume_point_are_skipped():
    """Nothing at or before the client's id is sent again."""
    out = []
    replay = Replay(out.append)
    replay.resume((5, 0))
    replay.release([((5, 0), b"5"), ((6, 0), b"6")])
    assert out == [b"6"]


@given(
    published=st.integers(min_value=0, max_value=30),
    resume=st.integers(min_value=0, max_value=30),
    read_at=st.integers(min_value=0, max_value=30),
    held_from=st.integers(min_value=0, max_value=30),
)
def test_any_overlap_of_history_and_live_gives_each_event_once(published, resume, read_at, held_from):
    """Whatever the history read and the live events overlap by, the client sees resume+1..end once."""
    resume, read_at, held_from = (min(x, published) for x in (resume, read_at, held_from))
    held_from = min(held_from, read_at)  # live events are held from subscription, before the read
    out = []
    replay = Replay(out.append)
    if resume:
        replay.resume((resume, 0))
    else:
        replay.hold()
    for n in range(held_from + 1, published + 1):
        replay.live((n, 0), b"%d" % n)
    replay.release([((n, 0), b"%d" % n) for n in range(resume + 1, read_at + 1)])
    assert out == [b"%d" % n for n in range(resume + 1, published + 1)]


def test_a_whole_run_passes_only_when_nothing_is_held_and_all_of_it_is_new():
    """`passes_whole` moves the position to the run's last id, and refuses runs it has seen or while holding."""
    replay = Replay([].append)
    assert replay.passes_whole((1, 0), (3, 0)) and replay.last == (3, 0)
    assert not replay.passes_whole((3, 0), (4, 0)) and replay.last == (3, 0)
    assert replay.passes_whole(None, None) and replay.last == (3, 0)  # raw events only: no ids
    replay.hold()
    assert not replay.passes_whole((5, 0), (6, 0))


def test_a_learnt_position_never_moves_back_but_a_rewind_does():
    """`advance` only moves forward; `rewind` goes back to where the broker really is."""
    replay = Replay([].append)
    replay.advance((5, 0))
    replay.advance((4, 0))
    assert replay.last == (5, 0)
    replay.rewind((2, 0))
    assert replay.last == (2, 0)


def _gap(**kwargs):
    from twisted_sse.core import Event, Gap

    defaults = {"after": (5, 0), "lost": [], "events": [((6, 0), "a", Event(b"six", None, "6-0"))]}
    return Gap(**{**defaults, **kwargs})


def _lost_body(event):
    import json

    return json.loads(event.data)


def test_a_stream_gets_one_sse_lost_naming_every_channel_that_lost_events_then_the_events():
    """For a stream: first the loss signal (no id), then what history still had."""
    from twisted_sse.core import LOST_EVENT_TYPE

    (key, lost), (event_key, event) = _gap(lost=["a", "b"]).for_stream(["a", "b", "c"])
    assert (key, lost.event, lost.id) == (None, LOST_EVENT_TYPE, None)
    assert _lost_body(lost) == {"channels": ["a", "b"], "lastEventId": "5-0"}
    assert (event_key, event.data) == ((6, 0), b"six")


def test_a_stream_whose_id_was_ahead_gets_only_an_sse_lost_carrying_the_real_last_id():
    """A far-future id: every channel of the stream is named, and the event's id is where the broker is."""
    [(_, lost)] = _gap(after=(99, 0), ahead=(6, 0)).for_stream(["a", "c"])
    assert lost.id == "6-0" and _lost_body(lost) == {"channels": ["a", "c"], "lastEventId": "99-0"}


def test_the_broker_gets_an_sse_lost_per_channel_then_the_events_with_their_channels():
    """After an outage each channel that lost events gets its own signal, routed by the hub."""
    items = _gap(lost=["a", "b"]).per_channel()
    assert [(key, channel) for key, (channel, _) in items] == [(None, "a"), (None, "b"), ((6, 0), "a")]
    assert _lost_body(items[1][1][1]) == {"channels": ["b"], "lastEventId": "5-0"}


def test_history_that_could_not_be_read_counts_as_lost_on_every_channel():
    """No silent gap when the read failed: every channel is told."""
    from twisted_sse.core import Gap

    items = Gap.unreadable((5, 0), ["a", "b"]).per_channel()
    assert [channel for _, (channel, _) in items] == ["a", "b"]


@given(
    layout=st.lists(st.tuples(st.sampled_from("abc"), st.integers(min_value=0, max_value=30)), max_size=40),
    after=st.integers(min_value=0, max_value=40),
    count=st.integers(min_value=1, max_value=8),
    size=st.integers(min_value=1, max_value=80),
    channels=st.sets(st.sampled_from("abc"), min_size=1).map(sorted),
)
def test_pages_hand_on_exactly_the_events_after_the_id_in_id_order_each_within_its_bound(
    layout, after, count, size, channels
):
    """However history is spread over channels and however small a page, the pages together are every
    event of the channels after the id, once, in id order; no page reads more than its bound."""
    from twisted.internet.task import Clock

    from twisted_sse.core import HistoryPages, MemoryBroker, parse_id

    clock = Clock()
    clock.advance(1000)
    broker = MemoryBroker(clock)
    published = []
    for channel, length in layout:
        clock.advance(0.0004)
        published.append((channel, publish_one(broker, channel, b"x" * length)))
    expected = [event_id for channel, event_id in published[after:] if channel in channels]
    start = parse_id(published[after - 1][1]) if 0 < after <= len(published) else (0, 0)
    if after > len(published):
        expected = []
        start = parse_id(published[-1][1]) if published else (0, 0)
    pages = HistoryPages(broker, channels, start, count, size)
    handed, rounds = [], 0
    while not pages.done:
        gap = pages.next().result
        rounds += 1
        assert gap.ahead is None and rounds <= 200
        assert len(gap.events) <= max(count, len(channels))  # every channel read gets an equal share
        handed += [event.id for _, _, event in gap.events]
    assert handed == expected


def test_a_page_reads_an_equal_share_of_the_channels_still_being_read():
    """Count and size are split over the channels read; one that had nothing more is not read again."""
    from twisted.internet.task import Clock

    from tests.fakes import SlowHistoryBroker
    from twisted_sse.core import HistoryPages

    clock = Clock()
    clock.advance(1000)
    broker = SlowHistoryBroker(clock)
    publish_one(broker, "c", b"early")
    for n in range(6):
        clock.advance(0.001)
        publish_one(broker, "a", b"%d" % n)
    pages = HistoryPages(broker, ["a", "c"], (0, 0), 4, 1000)
    first = pages.next()
    assert [(channel, count, size) for _, channel, _, count, size in broker.reads] == [("a", 2, 500), ("c", 2, 500)]
    broker.answer_reads()
    assert [event.data for _, _, event in first.result.events] == [b"early", b"0", b"1"] and not pages.done
    second = pages.next()
    assert [(channel, count, size) for _, channel, _, count, size in broker.reads] == [("a", 4, 1000)]
    broker.answer_reads()
    assert [event.data for _, _, event in second.result.events] == [b"2", b"3", b"4", b"5"] and pages.done


def test_a_channel_read_past_the_others_bound_is_held_back_and_read_again():
    """Events beyond where every channel is known wait for the next page: id order across channels holds."""
    from twisted.internet.task import Clock

    from twisted_sse.core import HistoryPages, MemoryBroker

    clock = Clock()
    clock.advance(1000)
    broker = MemoryBroker(clock)
    for n in range(4):
        clock.advance(0.001)
        publish_one(broker, "a", b"a%d" % n)
    publish_one(broker, "b", b"late")
    pages = HistoryPages(broker, ["a", "b"], (0, 0), 4, 1000)
    handed = []
    while not pages.done:
        handed.append([event.data for _, _, event in pages.next().result.events])
    assert handed == [[b"a0", b"a1"], [b"a2", b"a3", b"late"]]


def test_a_channel_read_before_a_later_pages_bound_gets_its_events_merged_in_from_live_after_a_sync():
    """b's read was done on page 1 as of 2-1; page 2 reads a again, as of 3-1 by then, and goes through 3-1.
    b's 3-0 (published after b's read) is not in any page: it comes live, and the page waits (sync) until
    everything up to 3-1 has arrived, then goes out with it merged in its place: 2-1, 3-0, 3-1.
    (Found by the random-schedule test: sending a's 3-1 first made the replay skip b's 3-0.)"""
    from twisted.internet.defer import Deferred, succeed

    from twisted_sse.core import Event, HistoryPages, Missed

    answers = {
        ("a", (1, 1)): Missed(False, [Event(b"a1", None, "2-0")], more=True, as_of=(2, 1)),
        ("b", (1, 1)): Missed(False, [], as_of=(2, 1)),
        ("a", (2, 0)): Missed(False, [Event(b"a2", None, "2-1"), Event(b"a4", None, "3-1")], as_of=(3, 1)),
    }

    class Answers:
        def history(self, channel, after, count=0, size=0):
            return succeed(answers[(channel, after)])

    syncs = []

    def sync(through):
        syncs.append((through, Deferred()))
        return syncs[-1][1]

    sent = []
    replay = Replay(sent.append)
    replay.resume((1, 1))
    pages = HistoryPages(Answers(), ["a", "b"], (1, 1), 2, 100, sync)
    first = pages.next().result
    assert [key for key, _, _ in first.events] == [(2, 0)] and first.through == (2, 0) and not pages.done
    assert syncs == []  # both channels were read as of 2-1, past the page's bound: nothing comes live before it
    replay.replay([(key, event.data) for key, _, event in first.events], first.through)
    second = []
    pages.next().addCallback(second.append)
    assert [through for through, _ in syncs] == [(3, 1)] and second == []
    replay.live((3, 0), b"b3")  # arrives while the page waits for the sync
    replay.live((3, 2), b"b5")  # past the page: stays held
    syncs[0][1].callback(None)
    [gap] = second
    assert [key for key, _, _ in gap.events] == [(2, 1), (3, 1)] and gap.through == (3, 1) and pages.done
    replay.replay([(key, event.data) for key, _, event in gap.events], gap.through)
    assert sent == [b"a1", b"a2", b"b3", b"a4"]
    replay.release()
    assert sent == [b"a1", b"a2", b"b3", b"a4", b"b5"]


def test_held_live_items_up_to_the_bound_merge_into_the_page_once_each_in_id_order():
    sent = []
    replay = Replay(sent.append)
    replay.resume((1, 0))
    for key, item in [((2, 0), "live 2"), (None, "raw"), ((4, 0), "live 4"), ((6, 0), "live 6")]:
        replay.live(key, item)
    replay.replay([(None, "lost"), ((2, 0), "history 2"), ((3, 0), "history 3"), ((5, 0), "history 5")], (5, 0))
    assert sent == ["lost", "history 2", "history 3", "live 4", "history 5"]
    replay.release()
    assert sent[5:] == ["raw", "live 6"]


def test_a_page_goes_out_whole_only_when_nothing_is_held_and_all_of_it_is_new():
    replay = Replay(list().append)
    replay.resume((1, 0))
    assert replay.replays_whole((2, 0), (5, 0)) and replay.last == (5, 0)
    assert not replay.replays_whole((5, 0), (6, 0))  # 5-0 went out already: item by item, skipping it
    replay.live((7, 0), b"live")
    assert not replay.replays_whole((8, 0), (9, 0)) and replay.last == (5, 0)  # something to merge in
    assert replay.replays_whole(None, None) is False
