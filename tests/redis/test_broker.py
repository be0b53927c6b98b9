"""The Redis subscriber connection, fed RESP bytes over an in-memory transport."""

import pytest
from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport

from tests.fakes import RecordingListener
from twisted_sse.core._hub import Hub
from twisted_sse.core._settings import RedisAddress
from twisted_sse.redis._broker import _POSITION, _PUBLISH, _READ, _SETTLE, RedisBroker, RedisUnavailable


def resp(*items):
    """A RESP array as Redis sends it."""
    out = [b"*%d\r\n" % len(items)]
    for item in items:
        if isinstance(item, int):
            out.append(b":%d\r\n" % item)
        else:
            out.append(b"$%d\r\n%s\r\n" % (len(item), item))
    return b"".join(out)


class Connected:
    """A RedisBroker whose subscriber connection is an in-memory transport.

    Its scripts (run on the command connection) are answered by the test: `scripts`
    holds (script name, keys, args, Deferred) for each call.
    """

    def __init__(self):
        self.clock = Clock()
        self.broker = RedisBroker(RedisAddress(host="127.0.0.1"), "sse:", self.clock)
        self.scripts = []
        self.broker._script = self._script
        self.broker._query = self._script
        self.broker._wait = lambda replicas, ms: self._script("wait", [replicas], [ms])
        self.hub = Hub(self.broker)
        self.connect()
        self.answer("position", b"1-0")
        assert self.sent() == resp(b"PING") + resp(b"PING", b"sse-sync")  # liveness, then the position's
        self.feed(resp(b"pong", b""), resp(b"pong", b"sse-sync"))
        assert self.broker._replay.last == (1, 0)

    def _script(self, script, keys, args):
        names = {_PUBLISH: "publish", _READ: "read", _POSITION: "position", _SETTLE: "settle", "wait": "wait"}
        d = Deferred()
        self.scripts.append((names[script], keys, args, d))
        return d

    def answer(self, name, reply):
        """Answer the oldest pending call of script `name`."""
        call = next(c for c in self.scripts if c[0] == name)
        self.scripts.remove(call)
        if isinstance(reply, Exception):
            call[3].errback(reply)
        else:
            call[3].callback(reply)
        return call

    def connect(self):
        self.transport = StringTransport()
        self.protocol = self.broker._subscriber_factory.buildProtocol(None)
        self.protocol.makeConnection(self.transport)
        assert not self.broker.is_connected()  # not before Redis has answered

    def sent(self):
        value = self.transport.value()
        self.transport.clear()
        return value

    def feed(self, *replies):
        self.protocol.dataReceived(b"".join(replies))


def confirmed(name):
    """Redis's confirmations of one SUBSCRIBE of a channel's two pub/sub names."""
    return resp(b"subscribe", b"sse:" + name, 1) + resp(b"subscribe", b"sse:#events:" + name, 2)


@pytest.fixture
def redis():
    return Connected()


def test_first_listener_subscribes_with_prefix_and_waits_for_confirmation(redis):
    """SUBSCRIBE of the channel's raw and durable names goes out once; the stream is ready when Redis confirms it."""
    ready = []
    redis.hub.add(RecordingListener(), ["news"]).addCallback(ready.append)
    redis.hub.add(RecordingListener(), ["news"]).addCallback(ready.append)
    assert redis.sent() == resp(b"SUBSCRIBE", b"sse:news", b"sse:#events:news")
    assert ready == []
    redis.feed(confirmed(b"news"))
    assert ready == [None, None]


def test_messages_are_delivered_byte_for_byte(redis):
    """Raw payloads arrive as data unchanged: JSON, leading zeros, UTF-8, line breaks."""
    listener = RecordingListener()
    redis.hub.add(listener, ["news"])
    redis.feed(confirmed(b"news"))
    for payload in [b'{"a": 1}', b"007", "h\u00e9".encode(), b"a\nb"]:
        redis.feed(resp(b"message", b"sse:news", payload))
    assert listener.delivered == [
        b'data: {"a": 1}\n\n',
        b"data: 007\n\n",
        "data: h\u00e9\n\n".encode(),
        b"data: a\ndata: b\n\n",
    ]


def test_confirmations_are_matched_by_channel_and_order(redis):
    """Each confirmation readies the channel it names, whatever order they come in."""
    ready = {"a": [], "b": []}
    for name in ready:
        redis.hub.add(RecordingListener(), [name]).addCallback(ready[name].append)
    redis.feed(confirmed(b"b"))
    assert ready == {"a": [], "b": [None]}
    redis.feed(confirmed(b"a"))
    assert ready == {"a": [None], "b": [None]}


def test_resubscribe_after_release_waits_for_its_own_confirmation(redis):
    """A channel released and taken again is ready only on the second SUBSCRIBE's confirmation."""
    first = RecordingListener()
    redis.hub.add(first, ["news"])
    redis.hub.remove(first)
    ready = []
    redis.hub.add(RecordingListener(), ["news"]).addCallback(ready.append)
    assert redis.sent() == resp(b"SUBSCRIBE", b"sse:news", b"sse:#events:news") + resp(
        b"UNSUBSCRIBE", b"sse:news", b"sse:#events:news"
    ) + resp(b"SUBSCRIBE", b"sse:news", b"sse:#events:news")
    redis.feed(confirmed(b"news"), resp(b"unsubscribe", b"sse:news", 1), resp(b"unsubscribe", b"sse:#events:news", 0))
    assert ready == []
    redis.feed(confirmed(b"news"))
    assert ready == [None]


def test_last_listener_leaving_unsubscribes(redis):
    """UNSUBSCRIBE goes out when the last listener of a channel leaves."""
    a, b = RecordingListener(), RecordingListener()
    redis.hub.add(a, ["news"])
    redis.hub.add(b, ["news"])
    redis.sent()
    redis.hub.remove(a)
    assert redis.sent() == b""
    redis.hub.remove(b)
    assert redis.sent() == resp(b"UNSUBSCRIBE", b"sse:news", b"sse:#events:news")


def durable(event_id, data):
    return b'\x00sse2{"id":"' + event_id + b'"}\n' + data


def entry(event_id, data):
    return [event_id, [b"d", data]]


def _reconnected(redis, listener, settled=0):
    """Listen to a and b, receive 2-0 on a, lose the connection and make it again; `settled`
    answers the settle call (None: leave it pending)."""
    redis.hub.add(listener, ["a", "b"])
    redis.feed(confirmed(b"a"), confirmed(b"b"))
    redis.feed(resp(b"message", b"sse:#events:a", durable(b"2-0", b"before")))
    _reconnect(redis)
    if settled is not None:
        redis.answer("settle", settled)


def _reconnect(redis, names=(b"a", b"b")):
    """Lose the subscriber connection, make it again, and confirm `names` subscribed again (in name order)."""
    redis.protocol.connectionLost(None)
    assert not redis.broker.is_connected()
    redis.connect()
    subscribes = [resp(b"SUBSCRIBE", b"sse:" + name, b"sse:#events:" + name) for name in names]
    assert redis.sent() == resp(b"PING") + b"".join(subscribes)
    redis.feed(resp(b"pong", b""), *(confirmed(name) for name in names))
    assert redis.broker.is_connected()


def test_after_a_reconnect_redis_is_settled_before_anything_is_read():
    """The new Redis may be a promoted replica lacking the newest events: before the recovery
    read, the settle script gets the highest id received or issued, and each subscribed
    channel's newest id received (a channel nothing durable arrived on has nothing to check)."""
    redis = Connected()
    listener, leaving = RecordingListener(), RecordingListener()
    redis.hub.add(listener, ["a", "b"])
    redis.hub.add(leaving, ["gone"])
    redis.feed(confirmed(b"a"), confirmed(b"b"), confirmed(b"gone"))
    redis.broker.publish([("elsewhere", b"x", None)])
    redis.clock.advance(0)
    redis.answer("publish", [b"7-0"])
    redis.feed(resp(b"message", b"sse:#events:a", durable(b"2-0", b"x")),
               resp(b"message", b"sse:#events:gone", durable(b"3-0", b"y")),
               resp(b"message", b"sse:b", b"raw, no id"))  # fmt: skip
    redis.hub.remove(leaving)
    _reconnect(redis)
    assert [name for name, *_ in redis.scripts] == ["settle"]  # no read before Redis is settled
    _, keys, args, _ = redis.answer("settle", 1)
    assert keys == [b"sse:#last-id", b"sse:#cuts", b"sse:#origin", b"sse:#history:a", b"sse:#history:elsewhere"]
    # the issued 7-0 is the highest, and its channel is checked though nobody here listens to it (clients
    # of other processes may); "gone" was unsubscribed
    assert args == [b"7-0", b"a", b"2-0", b"elsewhere", b"7-0"]
    assert [name for name, *_ in redis.scripts] == ["read", "read"]


def test_ids_this_process_issued_are_settled_for_a_minute():
    redis = Connected()
    redis.clock.advance(1000)
    redis.broker.publish([("elsewhere", b"x", None)])
    redis.clock.advance(0)
    redis.answer("publish", [b"1000000-0"])  # issued at 1000 s
    redis.clock.advance(59)
    redis.broker._check_liveness()  # what the broker's LoopingCall runs
    redis.clock.advance(2)
    assert "elsewhere" in redis.broker._recently_issued
    redis.broker._check_liveness()
    _reconnect(redis, [])
    assert redis.answer("settle", 0)[2] == [b"1000000-0"]  # still the highest id, but no channel to check


def test_a_failed_settle_still_recovers_what_was_missed(redis):
    """Settling protects resumers elsewhere; this process's streams still get their outage read."""
    listener = RecordingListener()
    _reconnected(redis, listener, settled=RuntimeError("timeout"))
    redis.answer("read", [0, [entry(b"3-0", b"missed a")], b"", 0, b"1-0", b"9-0"])
    redis.answer("read", [0, [], b"", 0, b"1-0", b"9-0"])
    assert listener.delivered[1:] == [b"id: 3-0\ndata: missed a\n\n"]


def test_settling_many_channels_goes_in_batches(redis):
    """Every subscribed channel is checked, SETTLE_BATCH per script call."""
    from twisted_sse.redis._broker import SETTLE_BATCH

    names = [f"c{i}" for i in range(SETTLE_BATCH + 1)]
    redis.hub.add(RecordingListener(), names)
    redis.feed(*(confirmed(name.encode()) for name in names))
    redis.feed(*(resp(b"message", b"sse:#events:" + name.encode(), durable(b"%d-0" % (i + 2), b"x"))
                 for i, name in enumerate(names)))  # fmt: skip
    _reconnect(redis, sorted(name.encode() for name in names))
    calls = [(keys, args) for name, keys, args, _ in redis.scripts if name == "settle"]
    assert [len(keys) - 3 for keys, _ in calls] == [SETTLE_BATCH, 1]
    assert all(args[0] == b"%d-0" % (SETTLE_BATCH + 2) for _, args in calls)
    assert sum(len(args) - 1 for _, args in calls) == 2 * len(names)


def test_reconnect_resubscribes_and_recovers_the_outage_before_live_messages(redis):
    """After a reconnect, what was published during the outage comes first, then live messages, once each."""
    listener = RecordingListener()
    _reconnected(redis, listener)
    redis.feed(resp(b"message", b"sse:#events:b", durable(b"5-0", b"live")), resp(b"message", b"sse:b", b"raw"))
    assert listener.delivered == [b"id: 2-0\ndata: before\n\n"]  # held while the history is read
    reads = [
        redis.answer("read", [0, [entry(b"3-0", b"missed a")], b"", 0, b"1-0", b"9-0"]),
        redis.answer("read", [0, [], b"", 0, b"1-0", b"9-0"]),
    ]
    assert [(keys[0], args[1]) for _, keys, args, _ in reads] == [
        (b"sse:#history:a", b"2-0"),
        (b"sse:#history:b", b"2-0"),
    ]
    assert b"".join(listener.delivered[1:]) == b"id: 3-0\ndata: missed a\n\nid: 5-0\ndata: live\n\ndata: raw\n\n"


def test_recovery_skips_what_arrived_live_and_signals_lost_history(redis):
    """Messages both read and held come once; a channel whose history is gone gets the loss signal first."""
    listener = RecordingListener()
    _reconnected(redis, listener)
    redis.feed(resp(b"message", b"sse:#events:a", durable(b"4-0", b"both")))
    redis.answer("read", [1, [entry(b"4-0", b"both")], b"", 0, b"9-0", b"9-0"])
    redis.answer("read", [0, [], b"", 0, b"1-0", b"9-0"])
    after_outage = b"".join(listener.delivered[1:])
    assert after_outage.startswith(b'event: sse-lost\ndata: {"channels": ["a"]')
    assert after_outage.endswith(b"\n\nid: 4-0\ndata: both\n\n") and after_outage.count(b"4-0") == 1


def test_failed_recovery_read_tells_every_channel(redis):
    """When the history can't be read after an outage, clients get the loss signal instead of a silent gap."""
    listener = RecordingListener()
    _reconnected(redis, listener)
    redis.answer("read", RuntimeError("timeout"))
    assert b"".join(listener.delivered[1:]).count(b"event: sse-lost\n") == 2


def test_silent_connection_is_pinged_then_cut(redis):
    """PINGs go out while Redis answers; after `timeout` seconds of silence the connection is cut."""
    redis.sent()
    redis.broker._check_liveness()
    assert redis.sent() == resp(b"PING")
    redis.clock.advance(4)
    redis.feed(resp(b"pong", b""))
    redis.clock.advance(4)
    redis.broker._check_liveness()
    assert not redis.transport.disconnected
    redis.clock.advance(1.5)
    redis.broker._check_liveness()
    assert redis.transport.disconnected


def test_subscribe_fails_fast_while_redis_is_down(redis):
    """A stream asking for a channel while Redis is down is told at once, not left waiting."""
    redis.protocol.connectionLost(None)
    errors = []
    redis.hub.add(RecordingListener(), ["news"]).addErrback(errors.append)
    assert len(errors) == 1 and errors[0].check(Exception)
    assert "not connected" in str(errors[0].value)


def test_pending_subscription_fails_when_the_connection_drops(redis):
    """Streams waiting for a confirmation are failed when the connection is lost."""
    errors = []
    redis.hub.add(RecordingListener(), ["news"]).addErrback(errors.append)
    redis.protocol.connectionLost(None)
    assert len(errors) == 1
    assert isinstance(errors[0].value, RedisUnavailable)


def test_subscription_without_confirmation_times_out(redis):
    """A confirmation that never comes fails the stream after the timeout."""
    errors = []
    redis.hub.add(RecordingListener(), ["news"]).addErrback(errors.append)
    redis.clock.advance(5.1)
    assert len(errors) == 1


def test_messages_of_other_prefixes_are_ignored(redis):
    """Only channels under the configured prefix reach the hub."""
    listener = RecordingListener()
    redis.hub.add(listener, ["news"])
    redis.feed(resp(b"message", b"other:news", b"x"))
    assert listener.delivered == []


def test_failed_subscription_leaves_nothing_to_resubscribe(redis):
    """A subscription that failed isn't subscribed again after a reconnect: nobody holds it."""
    errors = []
    redis.hub.add(RecordingListener(), ["news"]).addErrback(errors.append)
    redis.protocol.connectionLost(None)
    redis.connect()
    assert errors and redis.sent() == resp(b"PING")  # and no SUBSCRIBE


def test_a_forged_envelope_on_the_raw_name_is_delivered_raw(redis):
    """A raw PUBLISH that looks like an envelope is data, with no id: it can't blank out later durable events."""
    listener = RecordingListener()
    redis.hub.add(listener, ["news"])
    redis.feed(confirmed(b"news"))
    redis.feed(resp(b"message", b"sse:news", durable(b"99999999999999-0", b"forged")))
    redis.feed(resp(b"message", b"sse:#events:news", durable(b"5-0", b"real")))
    assert listener.delivered == [b"data: \x00sse2{\"id\":\"99999999999999-0\"}\ndata: forged\n\n",
                                  b"id: 5-0\ndata: real\n\n"]  # fmt: skip


def test_only_the_durable_confirmation_readies_a_channel(redis):
    """The raw name's confirmation comes first and readies nothing; the durable one (the command's last) does."""
    ready = []
    redis.hub.add(RecordingListener(), ["news"]).addCallback(ready.append)
    redis.feed(resp(b"subscribe", b"sse:news", 1))
    assert ready == []
    redis.feed(resp(b"subscribe", b"sse:#events:news", 2))
    assert ready == [None]


def _receipts(redis, *publishes):
    out = []
    for publications in publishes:
        redis.broker.publish(publications).addBoth(out.append)
    redis.clock.advance(0)
    return out


def test_publishes_of_one_turn_are_one_script_call_answered_each_with_its_ids(redis):
    """Two publishes in one turn: one call of the batch script (keys: the shared ones, then each channel's
    history once), and each publisher gets its own ids; no replicas asked for: no WAIT, replicated is None."""
    receipts = _receipts(redis, [("a", b"1", None), ("b", b"2", "t")], [("a", b"3", None)])
    [(name, keys, args, _)] = redis.scripts
    assert keys == [b"sse:#last-id", b"sse:#cuts", b"sse:#origin", b"sse:#history:a", b"sse:#history:b"]
    assert args[2:7] == [b"2", b"a", b"sse:#events:a", b"b", b"sse:#events:b"]
    assert args[7:] == [b"1", b"1", b"", b"2", b"2", b"t", b"1", b"3", b""]
    redis.answer("publish", [b"5-0", b"5-1", b"5-2"])
    assert [(r.ids, r.replicated) for r in receipts] == [(["5-0", "5-1"], None), (["5-2"], None)]
    assert redis.broker.publish_batches == 1


def _replicating(replicas=2, timeout=1.5):
    redis = Connected()
    redis.broker._replicas, redis.broker._timeout = replicas, timeout
    return redis


def test_with_replicas_each_batch_waits_for_them_on_its_connection_bounded_by_the_timeout():
    redis = _replicating()
    receipts = _receipts(redis, [("a", b"1", None)])
    redis.answer("publish", [b"5-0"])
    _, keys, args, _ = redis.answer("wait", 2)
    assert (keys, args) == ([b"2"], [b"1125"])  # never WAIT n 0; 3/4 of the timeout: answered within it
    assert [(r.ids, r.replicated) for r in receipts] == [(["5-0"], True)]


def test_replicas_that_do_not_confirm_in_time_make_an_unreplicated_receipt_not_a_failure():
    redis = _replicating()
    receipts = _receipts(redis, [("a", b"1", None)], [("a", b"2", None)])
    redis.answer("publish", [b"5-0", b"5-1"])
    redis.answer("wait", 1)  # one of two in time
    assert [(r.ids, r.replicated) for r in receipts] == [(["5-0"], False), (["5-1"], False)]
    more = _receipts(redis, [("a", b"3", None)])
    redis.answer("publish", [b"6-0"])
    redis.answer("wait", RuntimeError("connection lost"))  # live already: only the confirmation is missing
    assert [(r.ids, r.replicated) for r in more] == [(["6-0"], False)]


def test_a_wait_that_never_answers_is_cut_by_the_timeout():
    redis = _replicating(timeout=1.0)
    receipts = _receipts(redis, [("a", b"1", None)])
    redis.answer("publish", [b"5-0"])
    redis.clock.advance(1.1)
    assert [(r.ids, r.replicated) for r in receipts] == [(["5-0"], False)]


def test_a_failed_publish_script_fails_every_publish_of_its_batch(redis):
    receipts = _receipts(redis, [("a", b"1", None)], [("b", b"2", None)])
    redis.answer("publish", RuntimeError("READONLY You can't write against a read only replica."))
    assert [r.getErrorMessage() for r in receipts] == ["READONLY You can't write against a read only replica."] * 2


def bulk(data):
    return b"$%d\r\n%s\r\n" % (len(data), data)


def test_sync_is_one_ping_in_flight_answered_once_the_messages_before_it_are_handed_on(redis):
    """Redis answers a PING after every message published before it: the sync fires once those reached the
    hub. Syncs asked meanwhile share the next PING; liveness PINGs' answers (no argument) fire none."""
    listener = RecordingListener()
    redis.hub.add(listener, ["a"])
    redis.feed(confirmed(b"a"))
    redis.sent()
    first = redis.broker.sync()
    seen = []
    first.addCallback(lambda _: seen.append(list(listener.delivered)))
    later = [redis.broker.sync(), redis.broker.sync()]
    assert redis.sent() == resp(b"PING", b"sse-sync")  # one in flight; the other two wait for it
    redis.feed(resp(b"pong", b""))  # a liveness PING's answer
    assert seen == [] and not any(d.called for d in later)
    redis.feed(resp(b"message", b"sse:#events:a", durable(b"3-0", b"x")), resp(b"pong", b"sse-sync"))
    assert seen == [[b"id: 3-0\ndata: x\n\n"]]
    assert redis.sent() == resp(b"PING", b"sse-sync") and not any(d.called for d in later)
    redis.feed(bulk(b"sse-sync"))  # how Redis answers when the connection subscribes nothing
    assert all(d.called for d in later) and redis.sent() == b""


def test_a_sync_waits_for_a_recovery_and_fails_when_the_connection_goes(redis):
    listener = RecordingListener()
    _reconnected(redis, listener)
    redis.sent()
    during = redis.broker.sync()
    redis.feed(resp(b"message", b"sse:#events:b", durable(b"5-0", b"live")), resp(b"pong", b"sse-sync"))
    assert not during.called  # the recovery still holds 5-0 back
    redis.answer("read", [0, [entry(b"3-0", b"missed")], b"", 0, b"1-0", b"9-0"])
    redis.answer("read", [0, [], b"", 0, b"1-0", b"9-0"])
    assert during.called and b"".join(listener.delivered).endswith(b"id: 5-0\ndata: live\n\n")
    pending = redis.broker.sync()
    failures = []
    pending.addErrback(failures.append)
    redis.protocol.connectionLost(None)
    assert failures and failures[0].check(RedisUnavailable)


def test_a_sync_fails_at_once_while_redis_is_down_and_times_out_when_unanswered(redis):
    redis.sent()
    unanswered = redis.broker.sync()
    failures = []
    unanswered.addErrback(failures.append)
    redis.clock.advance(5.1)
    assert len(failures) == 1  # the timeout (--redis-timeout): the resume fails, its client retries
    redis.protocol.connectionLost(None)
    down = redis.broker.sync()
    down.addErrback(failures.append)
    assert len(failures) == 2 and failures[1].check(RedisUnavailable)


def test_a_recovery_whose_reads_stood_at_different_ids_merges_what_came_live_after_a_ping(redis):
    """a was read as of 5-0, b as of 9-0 (with b's 7-0): a's 6-0, published between the reads, is in no read.
    It comes live; the recovery PINGs, and once the answer is in, hands on 6-0 before 7-0."""
    listener = RecordingListener()
    _reconnected(redis, listener)
    redis.sent()
    redis.answer("read", [0, [], b"", 0, b"1-0", b"5-0"])
    redis.answer("read", [0, [entry(b"7-0", b"b7")], b"", 0, b"1-0", b"9-0"])
    assert redis.sent() == resp(b"PING", b"sse-sync")
    assert len(listener.delivered) == 1  # only what came before the outage
    redis.feed(resp(b"message", b"sse:#events:a", durable(b"6-0", b"a6")), resp(b"pong", b"sse-sync"))
    assert b"".join(listener.delivered[1:]) == b"id: 6-0\ndata: a6\n\nid: 7-0\ndata: b7\n\n"


def test_a_message_published_before_the_position_was_read_but_arriving_after_it_is_not_skipped():
    """The position is read on another connection: a channel subscribed before that read ran may get a message
    with a lower id AFTER the answer. The position is only taken once a PING on the subscriber connection came
    back (so every such message has arrived), never skipping one; until then the ids received stand."""
    clock = Clock()
    broker = RedisBroker(RedisAddress(host="127.0.0.1"), "sse:", clock)
    redis = Connected.__new__(Connected)
    redis.clock, redis.broker, redis.scripts = clock, broker, []
    broker._query = broker._script = redis._script
    redis.hub = Hub(broker)
    redis.connect()
    listener = RecordingListener()
    redis.hub.add(listener, ["a"])
    redis.feed(resp(b"pong", b""), confirmed(b"a"))
    redis.sent()
    redis.answer("position", b"5-0")  # the read ran after 4-0 was published on a
    assert redis.sent() == resp(b"PING", b"sse-sync") and broker._replay.last is None
    redis.feed(resp(b"message", b"sse:#events:a", durable(b"4-0", b"published before the read")))
    assert listener.delivered == [b"id: 4-0\ndata: published before the read\n\n"]
    redis.feed(resp(b"pong", b"sse-sync"))
    assert broker._replay.last == (5, 0)  # where a recovery after an outage would read from
