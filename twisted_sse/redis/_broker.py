"""The Redis broker: ONE subscriber connection for the whole process, one for commands.

Every stream of the process is served from a single subscriber connection. A channel is
SUBSCRIBEd when the hub gets its first listener and UNSUBSCRIBEd when the last one
leaves. Replies are read by content: messages, subscribe confirmations (matched per
channel, in order), PONGs, errors.

After the connection was lost (Redis restarted, paused, or the connection was cut) the
broker reconnects, subscribes every channel the hub holds again, and recovers what they
missed through the resume mechanism (`twisted_sse.core._replay`): live messages are held while
the history after the last id this process received is read and handed on first, each
id once. When Redis lost that history, each channel's listeners get the loss signal.

Before that read, the broker settles the new Redis (SETTLE_SCRIPT): it may be a replica the
sentinels promoted, or a restart from an older snapshot, lacking the newest events that
this process received from the Redis before it. The last id is raised to the highest id
this process received or issued, and a cut is recorded at each channel's newest event that
is missing, so that resuming from before it signals the loss instead of a silent gap.

A connection that stops answering (a hung or paused Redis, a dead peer) is found by
PINGs: when nothing was heard for `timeout` seconds it is cut and made again. `sync` sends
a PING too, with an argument that tells its answer apart: Redis answers it after every
message published before it, which is how a resume (or the recovery itself) knows that the
events its history reads lack, published after them, have arrived live.

Publishes go through a `PublishQueue` on a connection of their own: the publishes of one
reactor turn (and those that came while the previous batch was out) are one script call.
With `replicas` (--publish-replicas N), each batch is followed by `WAIT N timeout` on that
same connection (WAIT waits for the connection's own writes, so it can't be elsewhere), and
the receipt says whether N replicas confirmed in time; the events are live either way.
Reads, the position and settling use the other command connection, which a WAIT never blocks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from typing import Any

from twisted.application.service import Service
from twisted.internet.defer import Deferred, fail, gatherResults
from twisted.internet.task import LoopingCall
from twisted.python.failure import Failure

from twisted_sse.core import (
    Event,
    EventKey,
    Gap,
    HistoryPages,
    Logger,
    Missed,
    Publication,
    PublishQueue,
    Receipt,
    Receiver,
    RedisAddress,
    Replay,
    format_id,
    parse_id,
    raw,
    unpack,
)
from twisted_sse.redis._connection import (
    Script,
    Subscriber,
    command_factory,
    redis_endpoint,
    run_script,
    subscriber_factory,
)
from twisted_sse.redis._scripts import (
    DURABLE,
    POSITION_SCRIPT,
    PUBLISH_MANY_SCRIPT,
    READ_SCRIPT,
    SETTLE_SCRIPT,
    channels_keys,
    durable_channel,
    history_bounds,
    keys,
    publish_many_call,
)

__all__ = ["RedisBroker", "RedisUnavailable"]

_log = Logger()

RECOVERY_PAGE_EVENTS = 4096
RECOVERY_PAGE_BYTES = 4 * 1024 * 1024
"""A page of what channels missed during an outage, handed to the hub in one reactor turn."""

_PUBLISH = Script.of(PUBLISH_MANY_SCRIPT)
_READ = Script.of(READ_SCRIPT)
_POSITION = Script.of(POSITION_SCRIPT)
_SETTLE = Script.of(SETTLE_SCRIPT)

ISSUED_KEPT = 60.0
"""Seconds an id this process issued stays on the list settling checks (a replica further behind is not covered)."""
WAIT_SHARE = 0.75
"""The share of --redis-timeout a WAIT for replicas may take."""
SETTLE_BATCH = 500
"""Channels settled per script call after a reconnection."""
SYNC = b"sse-sync"
"""The argument of the PINGs that `sync` sends: Redis answers it back, so its answers are told from the
liveness PINGs' by content."""


class RedisUnavailable(Exception):
    """Redis can't be reached right now."""


def _missed(reply: list[Any]) -> Missed:
    """READ_SCRIPT's answer: {lost, [[id, [field, value, ...]], ...], last id if the one asked is ahead, else '',
    more, the id before which events are gone, the last id issued}."""
    lost, entries, ahead, more, held_from, as_of = reply
    events = []
    for event_id, fields in entries:
        values = dict(zip(fields[::2], fields[1::2], strict=True))
        event = values.get(b"e")
        events.append(Event(values.get(b"d", b""), event.decode("utf-8") if event else None, event_id.decode("ascii")))
    return Missed(bool(lost), events, parse_id(ahead.decode("ascii")) if ahead else None, bool(more),
                  parse_id(held_from.decode("ascii")) if held_from else None,
                  parse_id(as_of.decode("ascii")) if as_of else None)  # fmt: skip


class RedisBroker(Service):
    """A broker on Redis pub/sub; see `twisted_sse.core.Broker`.

    `timeout` bounds every command (publishes fail rather than hang) and how long the
    subscriber connection may stay silent before it is cut and made again.
    """

    kind = "redis"

    def __init__(
        self,
        address: RedisAddress,
        prefix: str,
        reactor: Any,
        history: int = 1000,
        history_ttl: float = 0,
        timeout: float = 5.0,
        replicas: int = 0,
    ) -> None:
        self.address = address
        self._prefix = prefix.encode("utf-8")
        self._bounds = history_bounds(history, history_ttl)
        self._reactor = reactor
        self._timeout = timeout
        self._replicas = replicas
        self._publishes = PublishQueue(self._publish_batch, reactor)
        self._receiver: Receiver | None = None
        self._wanted: set[str] = set()
        self._confirming: dict[str, deque[list[Deferred[None]]]] = {}
        self._subscriber: Subscriber | None = None
        self._connections = 0
        self._answering = False
        self._last_heard = 0.0
        self._replay: Replay[tuple[str, Event]] = Replay(self._hand_on)
        self._newest: dict[str, EventKey] = {}
        """Per subscribed channel, the newest durable id received: what settling checks the new Redis holds."""
        self._issued: EventKey | None = None
        """The highest id this process's publishes were given."""
        self._recently_issued: dict[str, str] = {}
        """Per channel, the newest id this process's publishes were given in the last ISSUED_KEPT seconds:
        settling cuts these too, for clients of other processes that may not have received them."""
        self._arrived: list[tuple[str, Event]] = []
        self._syncs_sent: list[tuple[Deferred[None], bool]] | None = None
        """Waiters for the sync PING in flight (at most one), each with whether it waits for a recovery."""
        self._syncs_next: list[tuple[Deferred[None], bool]] = []
        """Waiters that came after it was sent: they go with the next."""
        self._syncs_answered: list[Deferred[None]] = []
        """Answered: they fire once what arrived before the answer has been handed on."""
        self._syncs_recovering: list[Deferred[None]] = []
        """Answered while a recovery held messages back: they fire when it hands them on."""
        self._subscriber_factory = subscriber_factory(address, self)
        self._commands = command_factory(address, timeout)
        """Publishes (and their WAIT) only."""
        self._reads = command_factory(address, timeout)
        """History reads, the position and settling: a long read never delays a publish, nor a WAIT a read."""
        self._liveness = LoopingCall(self._check_liveness)
        self._liveness.clock = reactor

    # Service

    def startService(self) -> None:
        super().startService()
        _log.info("connecting to Redis at {address}", address=self.address.describe())
        self._subscriber_factory.startConnecting(redis_endpoint(self._reactor, self.address))
        self._commands.startConnecting(redis_endpoint(self._reactor, self.address))
        self._reads.startConnecting(redis_endpoint(self._reactor, self.address))
        self._liveness.start(self._timeout / 3, now=False)

    def stopService(self) -> Deferred[list[object]]:
        super().stopService()
        if self._liveness.running:
            self._liveness.stop()
        factories = (self._subscriber_factory, self._commands, self._reads)
        return gatherResults([factory.disconnect() for factory in factories], consumeErrors=True)

    # Broker

    def set_receiver(self, receiver: Receiver) -> None:
        self._receiver = receiver

    @property
    def reconnects(self) -> int:
        return max(0, self._connections - 1)

    def is_connected(self) -> bool:
        """True once the subscriber connection has answered (a paused Redis accepts connections too)."""
        return self._subscriber is not None and self._answering

    def sync(self) -> Deferred[None]:
        """A PING on the subscriber connection, sent after the call: Redis answers it after every message
        published before it reached Redis. One PING in flight; the syncs that come meanwhile share the next.
        While a recovery holds messages back, the answer waits for it to hand them on."""
        return self._ping(past_recovery=True)

    def _ping(self, past_recovery: bool) -> Deferred[None]:
        if self._subscriber is None:
            return fail(RedisUnavailable("Redis is not connected"))
        waiter: Deferred[None] = Deferred()
        self._syncs_next.append((waiter, past_recovery))
        if self._syncs_sent is None:
            self._send_sync(self._subscriber)
        return waiter.addTimeout(self._timeout, self._reactor)

    def _send_sync(self, subscriber: Subscriber) -> None:
        self._syncs_sent, self._syncs_next = self._syncs_next, []
        subscriber.send(b"PING", SYNC)

    def _sync_answered(self) -> None:
        answered, self._syncs_sent = self._syncs_sent or [], None
        for waiter, past_recovery in answered:
            if past_recovery and self._replay.holding:
                self._syncs_recovering.append(waiter)
            else:
                self._syncs_answered.append(waiter)
        if self._syncs_next and self._subscriber is not None:
            self._send_sync(self._subscriber)

    def subscribe(self, channel: str) -> Deferred[None]:
        self._wanted.add(channel)
        if self._subscriber is None:
            return fail(RedisUnavailable("Redis is not connected"))
        return self._subscribe(self._subscriber, channel).addTimeout(self._timeout, self._reactor)

    def unsubscribe(self, channel: str) -> None:
        self._wanted.discard(channel)
        self._newest.pop(channel, None)
        if self._subscriber is not None:
            self._subscriber.send(b"UNSUBSCRIBE", *self._pubsub_names(channel))

    def publish(self, publications: list[Publication]) -> Deferred[Receipt]:
        if not self.is_connected():
            return fail(RedisUnavailable("Redis is not connected"))
        return self._publishes.put(publications)

    @property
    def publish_batches(self) -> int:
        """Script calls publishing has cost so far."""
        return self._publishes.batches

    def _publish_batch(self, publications: list[Publication]) -> Deferred[Receipt]:
        script_keys, args = publish_many_call(self._prefix, publications, self._bounds)
        published = self._script(_PUBLISH, script_keys, args).addCallback(self._issued_ids, publications)
        if self._replicas:
            return published.addCallback(self._wait_for_replicas)
        return published.addCallback(Receipt)

    def _issued_ids(self, reply: list[bytes], publications: list[Publication]) -> list[str | None]:
        """The batch's ids (increasing, as the script issued them); noted for settling after a failover."""
        ids = [event_id.decode("ascii") for event_id in reply]
        recent = self._recently_issued
        for event_id, (channel, _, _) in zip(ids, publications, strict=True):
            recent[channel] = event_id
        last = parse_id(ids[-1]) if ids else None
        if last is not None and (self._issued is None or last > self._issued):
            self._issued = last
        answered: list[str | None] = list(ids)
        return answered

    def _wait_for_replicas(self, ids: list[str | None]) -> Deferred[Receipt]:
        """WAIT on the publishing connection for WAIT_SHARE of the timeout (never WAIT n 0): its answer
        then comes well within the timeout every command on that connection has, which would otherwise
        cut the connection whenever replicas don't confirm."""
        wait_ms = b"%d" % max(1, int(self._timeout * WAIT_SHARE * 1000))
        waited = self._wait(b"%d" % self._replicas, wait_ms).addTimeout(self._timeout, self._reactor)

        def confirmed(count: Any) -> Receipt:
            return Receipt(ids, int(count) >= self._replicas)

        def unconfirmed(failure: Failure) -> Receipt:
            _log.warn("WAIT for {n} replicas failed: {error}", n=self._replicas, error=failure.getErrorMessage())
            return Receipt(ids, False)  # published and live: only the confirmation is missing

        return waited.addCallbacks(confirmed, unconfirmed)

    def history(self, channel: str, after: EventKey, count: int = 0, size: int = 0) -> Deferred[Missed]:
        name = channel.encode("ascii")
        args = [name, format_id(after).encode("ascii"), *self._bounds, b"%d" % count, b"%d" % size]
        return self._query(_READ, keys(self._prefix, name), args).addCallback(_missed)

    def _script(self, script: Script, script_keys: list[bytes], args: list[bytes]) -> Deferred[Any]:
        return run_script(self._commands, script, script_keys, args).addTimeout(self._timeout, self._reactor)

    def _wait(self, replicas: bytes, wait_ms: bytes) -> Deferred[Any]:
        return self._commands.handler.execute_command("WAIT", replicas, wait_ms)

    def _query(self, script: Script, script_keys: list[bytes], args: list[bytes]) -> Deferred[Any]:
        return run_script(self._reads, script, script_keys, args).addTimeout(self._timeout, self._reactor)

    def _pubsub_names(self, channel: str) -> tuple[bytes, bytes]:
        """A channel's two pub/sub names: raw payloads, then durable events (one command subscribes both)."""
        name = channel.encode("ascii")
        return self._prefix + name, durable_channel(self._prefix, name)

    def _subscribe(self, subscriber: Subscriber, channel: str) -> Deferred[None]:
        """Send SUBSCRIBE for both names; fires when Redis confirms this very command.

        Redis subscribes both names of one command at once and confirms them in order: the
        durable name's confirmation, the last, is the command's.
        """
        waiter: Deferred[None] = Deferred()
        self._confirming.setdefault(channel, deque()).append([waiter])
        subscriber.send(b"SUBSCRIBE", *self._pubsub_names(channel))
        return waiter

    # What the subscriber connection reports (SubscriberOwner)

    def subscriber_ready(self, subscriber: Subscriber) -> None:
        self._connections += 1
        reconnected = self._connections > 1
        _log.info(
            "Redis {what} at {address}: subscribing {count} channels",
            what="reconnected" if reconnected else "connected",
            address=self.address.describe(),
            count=len(self._wanted),
        )
        self._subscriber = subscriber
        self._answering = False
        self._last_heard = self._reactor.seconds()
        self._confirming = {}
        subscriber.send(b"PING")  # is anybody there? (a paused Redis accepts connections but won't answer)
        if not reconnected:
            self._learn_position()
            for channel in sorted(self._wanted):
                self._subscribe(subscriber, channel)
            return
        self._replay.hold()
        generation = self._connections
        channels = sorted(self._wanted)
        confirmed = gatherResults([self._subscribe(subscriber, channel) for channel in channels], consumeErrors=True)
        confirmed.addCallback(lambda _: self._settle(channels, generation))
        confirmed.addCallback(lambda _: self._recover(channels, generation))
        confirmed.addErrback(lambda failure: None)  # the connection went again: the next one recovers

    def subscriber_lost(self, subscriber: Subscriber) -> None:
        if subscriber is not self._subscriber:
            return
        self._subscriber = None
        if self.running:
            _log.warn("Redis subscriber connection lost; reconnecting")
        confirming, self._confirming = self._confirming, {}
        pinged = [*(self._syncs_sent or []), *self._syncs_next]
        syncs = [*(waiter for waiter, _ in pinged), *self._syncs_answered, *self._syncs_recovering]
        self._syncs_sent, self._syncs_next, self._syncs_answered, self._syncs_recovering = None, [], [], []
        for entries in confirming.values():
            for waiters in entries:
                syncs += waiters
        for waiter in syncs:
            waiter.errback(RedisUnavailable("Redis connection lost"))

    def reply(self, reply: object) -> None:
        self._last_heard = self._reactor.seconds()
        self._answering = True
        if isinstance(reply, list) and len(reply) == 3:
            kind, channel, payload = reply
            if kind == b"message":
                self._message(channel, payload)
            elif kind == b"subscribe":
                self._confirmed(channel)
        elif reply == SYNC or (isinstance(reply, list) and len(reply) == 2 and reply[1] == SYNC):
            self._sync_answered()  # [pong, sse-sync] while subscribed to some channel, else the bulk string
        elif isinstance(reply, Exception):
            _log.error("Redis answered the subscriber with an error: {error}", error=reply)

    def _message(self, channel: bytes, payload: bytes) -> None:
        if not channel.startswith(self._prefix):
            return
        name = channel[len(self._prefix) :]
        if name.startswith(DURABLE):
            durable, event = name[len(DURABLE) :].decode("ascii", "replace"), unpack(payload)
            key = parse_id(event.id)
            if key is not None:
                self._newest[durable] = key
            self._replay.live(key, (durable, event))
        else:
            event = raw(payload)  # whatever it contains: only the durable name carries envelopes
            self._replay.live(None, (name.decode("ascii", "replace"), event))

    def _hand_on(self, item: tuple[str, Event]) -> None:
        self._arrived.append(item)

    def received_all(self) -> None:
        """The end of one read from Redis: hand on its messages together."""
        if self._arrived:
            arrived, self._arrived = self._arrived, []
            if self._receiver is not None:
                self._receiver(arrived)
        if self._syncs_answered:
            answered, self._syncs_answered = self._syncs_answered, []
            for waiter in answered:
                waiter.callback(None)

    def _confirmed(self, channel: bytes) -> None:
        name_bytes = channel[len(self._prefix) :]
        if not name_bytes.startswith(DURABLE):
            return  # the raw name: the command's confirmation is the durable name's, which follows
        name = name_bytes[len(DURABLE) :].decode("ascii", "replace")
        entries = self._confirming.get(name)
        if not entries:
            return
        for waiter in entries.popleft():
            if not waiter.called:
                waiter.callback(None)
        if not entries:
            del self._confirming[name]
        _log.debug("Redis confirmed subscription to {channel}", channel=name)

    # Position, recovery, liveness

    def _learn_position(self) -> None:
        """Ask where the id sequence stands, so that a later outage knows what it missed.

        The read runs on another connection: a channel subscribed before it ran may still get a message
        with a lower id after its answer, which the replay would skip once it stood at the position. So
        the position is taken only once a PING sent after the answer came back: every such message has
        arrived by then."""

        def learned(reply: bytes) -> None:
            key = parse_id(reply.decode("ascii"))
            if key is not None and self._subscriber is not None:
                self._ping(past_recovery=False).addCallbacks(lambda _: self._replay.advance(key), failed)

        def failed(failure: Failure) -> None:
            _log.warn("could not read the id position from Redis: {error}", error=failure.getErrorMessage())

        self._query(_POSITION, keys(self._prefix, b""), []).addCallbacks(learned, failed)

    def _settle(self, channels: list[str], generation: int) -> Deferred[None] | None:
        """Make the Redis just reached hold no less than this process saw (see SETTLE_SCRIPT).

        Failing to settle is logged and recovery goes on: this process's own streams lose
        nothing by it (they hold what the cut would protect); resumers elsewhere may not learn
        of a loss, which the log says.
        """
        if generation != self._connections:
            return None
        known = [key for key in (self._replay.last, self._issued) if key is not None]
        if not known:
            return None
        highest = format_id(max(known)).encode("ascii")
        checked = {name: key for name, key in self._newest.items() if name in self._wanted}
        for name, event_id in self._recently_issued.items():
            key = parse_id(event_id)
            if key is not None:
                checked[name] = max(key, checked.get(name, key))
        newest = [(name.encode("ascii"), format_id(key).encode("ascii")) for name, key in sorted(checked.items())]
        batches = [newest[i : i + SETTLE_BATCH] for i in range(0, len(newest), SETTLE_BATCH)] or [[]]
        calls = []
        for batch in batches:
            args = [highest, *(part for pair in batch for part in pair)]
            calls.append(self._query(_SETTLE, channels_keys(self._prefix, [name for name, _ in batch]), args))

        def settled(cuts: list[int]) -> None:
            if sum(cuts):
                _log.warn(
                    "Redis lacks the newest events of {count} channels that this process received (a failover "
                    "or an older snapshot): recorded cuts there, so clients resuming from before them are told",
                    count=sum(cuts),
                )

        def failed(failure: Failure) -> None:
            _log.error("could not settle Redis after reconnecting: {error}; resumes from before the outage "
                       "may not be told of events it lost", error=failure.getErrorMessage())  # fmt: skip

        return gatherResults(calls, consumeErrors=True).addCallbacks(settled, failed)

    def _recover(self, channels: list[str], generation: int) -> Deferred[None] | None:
        """All channels are subscribed again: hand on what they missed a page at a time, then the
        held live messages. Each page goes to the hub on its own reactor turn."""
        if generation != self._connections:
            return None
        after = self._replay.last or (0, 0)
        # The messages Redis sent before a PING's answer are held in the replay by the time it comes.
        sync = lambda _through: self._ping(past_recovery=False)  # noqa: E731
        pages = HistoryPages(self, channels, after, RECOVERY_PAGE_EVENTS, RECOVERY_PAGE_BYTES, sync)
        started = self._reactor.seconds()
        counts = [0, 0]  # events, channels that lost some
        done: Deferred[None] = Deferred()

        def read(_: object = None) -> None:
            if generation != self._connections:
                done.callback(None)
            else:
                pages.next().addCallbacks(recovered, failed)

        def recovered(gap: Gap) -> None:
            if generation != self._connections:
                done.callback(None)
                return
            self._replay.replay(gap.per_channel(), gap.through)
            for key, channel, _ in gap.events:
                if key is not None and channel in self._wanted:
                    self._newest[channel] = max(key, self._newest.get(channel, key))
            counts[0] += len(gap.events)
            counts[1] += len(gap.lost)
            if not pages.done:
                self.received_all()
                self._reactor.callLater(0, read)
                return
            self._recovered()
            _log.info(
                "recovered {count} events published while Redis was out of reach ({lost} channels lost some) "
                "in {seconds:.3f}s",
                count=counts[0],
                lost=counts[1],
                seconds=self._reactor.seconds() - started,
            )
            done.callback(None)

        def failed(failure: Failure) -> None:
            if generation != self._connections:
                done.callback(None)
                return
            _log.error(
                "could not read what {count} channels missed: {error}; telling their clients",
                count=len(channels),
                error=failure.getErrorMessage(),
            )
            self._recovered(Gap.unreadable(pages.cursor, channels).per_channel())
            done.callback(None)

        read()
        return done

    def _recovered(self, unread: Sequence[tuple[EventKey | None, tuple[str, Event]]] = ()) -> None:
        """Hand on what the recovery held back (and the loss signals of what it could not read), then
        answer the syncs that waited for it."""
        self._replay.release(unread)
        self._syncs_answered += self._syncs_recovering
        self._syncs_recovering = []
        self.received_all()

    def _check_liveness(self) -> None:
        oldest_kept = int((self._reactor.seconds() - ISSUED_KEPT) * 1000)
        if self._recently_issued:
            for channel, event_id in list(self._recently_issued.items()):
                if int(event_id.partition("-")[0]) < oldest_kept:
                    del self._recently_issued[channel]
        subscriber = self._subscriber
        if subscriber is None:
            return
        silent = self._reactor.seconds() - self._last_heard
        if silent > self._timeout:
            _log.warn("Redis has not answered for {seconds:.1f}s; cutting the connection", seconds=silent)
            subscriber.abort()
        else:
            subscriber.send(b"PING")
