"""Hub: reference-counted subscriptions and fan-out, with a fake broker."""

from twisted.internet.defer import fail

from tests.fakes import ManualBroker, RecordingListener
from twisted_sse.core._hub import Hub
from twisted_sse.core._memory_broker import MemoryBroker


def test_first_listener_subscribes_and_last_unsubscribes():
    """A channel is subscribed once for many listeners and released with the last one."""
    broker = ManualBroker()
    hub = Hub(broker)
    a, b = RecordingListener(), RecordingListener()
    hub.add(a, ["news"])
    hub.add(b, ["news", "sport"])
    assert broker.calls == [("subscribe", "news"), ("subscribe", "sport")]
    assert (hub.streams_open, hub.channels_held) == (2, 2)
    hub.remove(a)
    assert ("unsubscribe", "news") not in broker.calls
    hub.remove(b)
    assert broker.calls[2:] == [("unsubscribe", "news"), ("unsubscribe", "sport")]
    assert (hub.streams_open, hub.channels_held) == (0, 0)


def test_remove_is_idempotent():
    """Removing a listener twice unsubscribes once."""
    broker = ManualBroker()
    hub = Hub(broker)
    a = RecordingListener()
    hub.add(a, ["news"])
    hub.remove(a)
    hub.remove(a)
    assert broker.calls == [("subscribe", "news"), ("unsubscribe", "news")]


def test_message_is_encoded_once_for_all_listeners():
    """Every listener of a channel gets the very same bytes object."""
    broker = ManualBroker()
    hub = Hub(broker)
    listeners = [RecordingListener() for _ in range(3)]
    for listener in listeners:
        hub.add(listener, ["news"])
    other = RecordingListener()
    hub.add(other, ["sport"])
    broker.message("news", b"hello")
    assert [listener.delivered for listener in listeners] == [[b"data: hello\n\n"]] * 3
    assert listeners[0].delivered[0] is listeners[2].delivered[0]
    assert other.delivered == []


def test_add_waits_for_the_broker_to_confirm():
    """A stream is ready only once the broker confirmed its channels, also for later joiners."""
    broker = ManualBroker()
    hub = Hub(broker)
    first, second = RecordingListener(), RecordingListener()
    ready_first, ready_second = [], []
    hub.add(first, ["news"]).addCallback(ready_first.append)
    hub.add(second, ["news"]).addCallback(ready_second.append)
    assert (ready_first, ready_second) == ([], [])
    broker.pending["news"].callback(None)
    assert (ready_first, ready_second) == ([None], [None])
    third = []
    hub.add(RecordingListener(), ["news"]).addCallback(third.append)
    assert third == [None]


def test_failed_subscription_fails_its_streams_and_is_retried_by_the_next():
    """When the broker refuses a subscription its streams hear so and the next listener asks again."""
    broker = ManualBroker()
    hub = Hub(broker)
    listener = RecordingListener()
    errors = []
    hub.add(listener, ["news"]).addErrback(errors.append)
    broker.pending["news"].errback(RuntimeError("redis down"))
    assert len(errors) == 1 and "redis down" in str(errors[0].value)
    hub.remove(listener)
    hub.add(RecordingListener(), ["news"])
    assert broker.calls == [("subscribe", "news"), ("unsubscribe", "news"), ("subscribe", "news")]


def test_synchronous_subscription_failure_reaches_the_stream():
    """A broker that fails at once still fails the stream instead of leaving it waiting."""

    class Refusing(MemoryBroker):
        def subscribe(self, channel):
            return fail(RuntimeError("no"))

    hub = Hub(Refusing())
    errors = []
    hub.add(RecordingListener(), ["news"]).addErrback(errors.append)
    assert len(errors) == 1


def test_heartbeat_reaches_every_stream_once():
    """A heartbeat is written once to each stream, however many channels it has."""
    hub = Hub(ManualBroker())
    a, b = RecordingListener(), RecordingListener()
    hub.add(a, ["x", "y"])
    hub.add(b, ["y"])
    hub.heartbeat(b":\n")
    assert (a.heartbeats, b.heartbeats) == ([b":\n"], [b":\n"])


def test_listener_leaving_during_fan_out_does_not_break_it():
    """A listener removed while a message is fanned out doesn't stop the others getting it."""
    broker = ManualBroker()
    hub = Hub(broker)
    got = []

    class Leaver(RecordingListener):
        def deliver(self, block):
            hub.remove(self)

    class Keeper(RecordingListener):
        def deliver(self, block):
            got.append(block.data)

    hub.add(Leaver(), ["news"])
    hub.add(Keeper(), ["news"])
    broker.message("news", b"x")
    assert got == [b"data: x\n\n"]


def test_coalescing_holds_messages_and_writes_them_as_one_block():
    """With coalescing, messages of the window reach each listener as one block, in order."""
    from twisted.internet.task import Clock

    clock = Clock()
    broker = ManualBroker()
    hub = Hub(broker, clock, coalesce=0.01)
    single, multi = RecordingListener(), RecordingListener()
    hub.add(single, ["a"])
    hub.add(multi, ["a", "b"])
    broker.message("a", b"1")
    broker.message("b", b"2")
    broker.message("a", b"3")
    assert single.delivered == multi.delivered == []
    clock.advance(0.01)
    assert single.delivered == [b"data: 1\n\ndata: 3\n\n"]
    assert multi.delivered == [b"data: 1\n\ndata: 2\n\ndata: 3\n\n"]
    hub.remove(single)
    broker.message("a", b"4")
    clock.advance(0.01)
    assert single.delivered == [b"data: 1\n\ndata: 3\n\n"]  # gone before the flush: nothing more
    broker.message("b", b"5")
    hub.flush()  # e.g. at shutdown, before streams are closed
    assert multi.delivered[-2:] == [b"data: 4\n\n", b"data: 5\n\n"] and not clock.getDelayedCalls()


def test_a_channels_version_changes_with_each_message_and_each_new_hold():
    """What keeps a history read current (SharedReads): None until the broker delivers the channel."""
    broker = ManualBroker()
    hub = Hub(broker)
    a = RecordingListener()
    hub.add(a, ["news"])
    assert hub.version("news") is None  # subscribing: not delivered yet
    broker.pending["news"].callback(None)
    first = hub.version("news")
    assert first is not None and hub.version("news") == first
    broker.message("other", b"x")
    assert hub.version("news") == first  # another channel's message
    broker.message("news", b"x")
    second = hub.version("news")
    assert second != first
    hub.remove(a)
    assert hub.version("news") is None
    hub.add(a, ["news"])
    broker.pending["news"].callback(None)
    assert hub.version("news") not in (None, first, second)


def test_synced_is_at_once_when_a_newer_id_went_out_else_the_broker_is_asked_and_coalescing_flushed():
    """A resume's page waits (synced) until the events up to its bound reached the streams: ids go out in
    increasing order, so an id past it means yes at once; otherwise the broker syncs, then what coalescing
    holds is written, so a stream that resumes has it before the page is merged."""
    from twisted.internet.task import Clock

    from twisted_sse.core._framing import Event

    clock = Clock()
    broker = ManualBroker()
    hub = Hub(broker, clock, coalesce=0.01)
    listener = RecordingListener()
    hub.add(listener, ["a"])
    broker.pending["a"].callback(None)
    hub.deliver([("a", Event(b"one", None, "5-0"))])
    clock.advance(0.01)
    assert hub.synced((5, 0)).called and ("sync", "") not in broker.calls
    hub.deliver([("a", Event(b"two", None, "7-0"))])  # held by coalescing
    synced = hub.synced((6, 0))
    assert synced.called and broker.calls[-1] == ("sync", "")
    assert listener.delivered == [b"id: 5-0\ndata: one\n\n", b"id: 7-0\ndata: two\n\n"]  # flushed before it fired
    assert hub.synced((7, 0)).called and broker.calls.count(("sync", "")) == 1
