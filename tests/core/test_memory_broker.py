"""MemoryBroker: the in-process broker keeps the Redis broker's contract (ids, history, loss)."""

from twisted.internet.task import Clock

from tests.fakes import publish_one
from twisted_sse.core import MemoryBroker, parse_id


def _broker(**kwargs):
    clock = Clock()
    clock.advance(1_700_000_000)
    received = []
    broker = MemoryBroker(clock, **kwargs)
    broker.set_receiver(received.extend)
    return broker, clock, received


def _published(broker, channel, data, event=None):
    return publish_one(broker, channel, data, event)


def _history(broker, channel, after):
    found = []
    broker.history(channel, after).addCallback(found.append)
    return found[0]


def test_only_subscribed_channels_are_handed_to_the_receiver():
    """A publish reaches the receiver while its channel is subscribed, and not after."""
    broker, _, received = _broker()
    broker.subscribe("news")
    _published(broker, "news", b"one", "headline")
    _published(broker, "other", b"not subscribed")
    broker.unsubscribe("news")
    _published(broker, "news", b"after")
    assert [(channel, event.data, event.event) for channel, event in received] == [("news", b"one", "headline")]


def test_ids_increase_across_channels_even_within_one_millisecond():
    """Every publish gets a new id, greater than the one before, whatever its channel."""
    broker, _, _ = _broker()
    ids = [parse_id(_published(broker, channel, b"x")) for channel in ("a", "b", "a", "c")]
    assert ids == sorted(ids) and len(set(ids)) == 4


def test_history_after_an_id_holds_exactly_the_later_events():
    """Nothing lost while within the bound: the events after the id, in order."""
    broker, clock, _ = _broker()
    first = _published(broker, "news", b"1")
    clock.advance(0.001)
    _published(broker, "news", b"2")
    _published(broker, "news", b"3")
    missed = _history(broker, "news", parse_id(first))
    assert (missed.lost, [event.data for event in missed.events]) == (False, [b"2", b"3"])


def test_history_trimmed_past_its_bound_reports_the_loss():
    """With a history of 2, a client 3 events behind is told some are gone."""
    broker, _, _ = _broker(history=2)
    first = _published(broker, "news", b"1")
    for data in (b"2", b"3", b"4"):
        _published(broker, "news", data)
    missed = _history(broker, "news", parse_id(first))
    assert missed.lost and [event.data for event in missed.events] == [b"3", b"4"]


def test_an_id_beyond_everything_issued_is_answered_with_the_last_id():
    """A far-future id is not waited on: the broker says where it really is."""
    broker, _, _ = _broker()
    last = _published(broker, "news", b"1")
    missed = _history(broker, "news", (parse_id(last)[0] + 10_000, 0))
    assert missed.lost and missed.ahead == parse_id(last)


def test_it_is_always_connected():
    """In one process there is nothing to lose a connection to."""
    broker, _, _ = _broker()
    assert broker.is_connected() and broker.kind == "memory"
