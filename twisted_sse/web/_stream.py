"""One client's event stream: writes, back-pressure, and the single cleanup path.

Everything a stream holds (its hub registration, its producer registration) is released
in `_finished`, which `request.notifyFinish()` reaches however the connection ended: the
client left (FIN or RST), the server closed it, or the client was too slow.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.interfaces import IPushProducer, IReactorTime
from twisted.python.failure import Failure
from twisted.web.http_headers import Headers
from twisted.web.server import Request
from zope.interface import implementer

from twisted_sse.core import (
    Block,
    Broker,
    Budget,
    Event,
    EventKey,
    Gap,
    HistoryPages,
    Hub,
    Logger,
    Replay,
    SharedReads,
    encode,
    encode_retry,
    format_id,
)
from twisted_sse.web._lifetimes import Lifetimes
from twisted_sse.web._writer import ResponseWriter, cut

__all__ = ["EventStream", "Resumes", "Streams"]

_log = Logger()

_CACHED_UP_TO = 8 * 1024
_CACHED_EVENTS = 1024
_CACHED_PAGES = 32
_CACHED_PAGE_BYTES = 64 * 1024
_encodings: dict[int, tuple[Event, bytes]] = {}
"""Encoded history events by identity (each holds its event, so no other object can take its id)."""


def _encoded(event: Event) -> bytes:
    """A history event encoded once for all the streams that share its read (the same Event objects);
    only events of up to 8 KiB are kept (1,024 of them: at most 8 MiB), larger ones are encoded for each
    stream. Found by identity, not by value: hashing and comparing whole events cost as much as encoding."""
    if len(event.data) > _CACHED_UP_TO:
        return encode(event)
    entry = _encodings.get(id(event))
    if entry is not None and entry[0] is event:
        return entry[1]
    if len(_encodings) >= _CACHED_EVENTS:
        _encodings.clear()
    data = encode(event)
    _encodings[id(event)] = (event, data)
    return data


_encoded_pages: dict[int, tuple[Gap, tuple[str, ...], list[tuple[EventKey | None, bytes]], EventKey | None,
                        EventKey | None, bytes]] = {}  # fmt: skip
"""Encoded pages by identity (each holds its gap): a whole page that current reads made serves many streams."""


def _page_of(
    gap: Gap, channels: tuple[str, ...]
) -> tuple[list[tuple[EventKey | None, bytes]], EventKey | None, EventKey | None, bytes]:
    """What a stream of `channels` is sent for `gap`, encoded: the items, the first and last ids, and all
    of it as one block of bytes; kept for the last 32 pages of up to 64 KiB (at most 2 MiB), by identity
    like `_encoded`: a whole page that current reads made is the same object for every stream it serves."""
    entry = _encoded_pages.get(id(gap))
    if entry is not None and entry[0] is gap and entry[1] == channels:
        return entry[2], entry[3], entry[4], entry[5]
    items = [(key, _encoded(event)) for key, event in gap.for_stream(channels)]
    keys = [key for key, _ in items if key is not None]
    first, last = (keys[0], keys[-1]) if keys else (None, None)
    data = b"".join(encoded for _, encoded in items)
    if len(data) <= _CACHED_PAGE_BYTES:
        if len(_encoded_pages) >= _CACHED_PAGES:
            _encoded_pages.clear()
        _encoded_pages[id(gap)] = (gap, channels, items, first, last, data)
    return items, first, last, data


@dataclass(frozen=True)
class Resumes:
    """What bounds resuming streams: history reads at once (`slots`), and a page of history."""

    slots: DeferredSemaphore = field(default_factory=lambda: DeferredSemaphore(8))
    """History reads (one page each) at a time, process-wide; the others wait their turn (holding live events)."""
    page_events: int = 256
    """Events read per page, across the stream's channels."""
    page_bytes: int = 256 * 1024
    """Bytes of event data read per page (a page holds at least one event of each channel read)."""
    window: float = 0.0
    """Seconds a channel's history read waits for other resumes to share it."""


@dataclass
class Streams:
    """What every stream of one service shares: where events come from, the clock, the bounds, the log budgets."""

    hub: Hub
    broker: Broker
    clock: IReactorTime
    max_queue: int = 1024 * 1024
    """Bytes queued for, or held back from, one stream before it is cut."""
    retry_after_failure: Callable[[], int] = lambda: 3000
    """The reconnect delay sent when the broker fails a stream."""
    lifetimes: Lifetimes | None = None
    """Ends streams at the time `open` gives (token expiry, --max-stream-age)."""
    resumes: Resumes = field(default_factory=Resumes)
    opened: Budget = field(init=False)
    closed: Budget = field(init=False)
    reads: SharedReads = field(init=False)
    """History reads, shared by the streams that resume the same channels at once (one --max-resumes slot per
    read that goes to the broker)."""

    def __post_init__(self) -> None:
        self.reads = SharedReads(self.broker, self.resumes.slots, self.clock, self.resumes.window, self.hub.version)
        self.opened = Budget(_log, "stream openings", self.clock)
        self.closed = Budget(_log, "stream closings", self.clock)


@implementer(IPushProducer)
class EventStream:
    """Writes what the hub delivers to one HTTP response, never holding more than `max_queue` bytes.

    While the client's socket buffer is full the transport pauses this producer; events
    are then queued here, heartbeats skipped, and a client whose queue passes
    `max_queue` bytes is disconnected (it reconnects and resumes) so that it can't cost
    the process unbounded memory.
    """

    # Thousands of these stay open: no per-instance dict.
    __slots__ = (
        "_request", "_shared", "_replay", "_writer", "channels", "_paused", "_pending", "_pending_bytes",
        "_closed", "_opened_at", "peer", "events_sent", "_client", "_pages", "_held_bytes", "_page_wanted",
        "_resume_outcome", "_page",
        "__weakref__",
    )  # fmt: skip

    def __init__(self, request: Request, shared: Streams, channels: Sequence[str], peer: str,
                 client: str | None = None) -> None:  # fmt: skip
        """`peer` names the client in logs; `client` is what per-client limits count it under."""
        self._request = request
        self._shared = shared
        self._replay: Replay[bytes] = Replay(self._write_event)
        self._writer: ResponseWriter | None = None
        self.channels = tuple(channels)
        self._paused = False
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._closed = False
        self._opened_at = shared.clock.seconds()
        self.peer = peer
        self._client = client
        self._pages: HistoryPages | None = None
        self._held_bytes = 0
        """Bytes of live events held while history is replayed: they count against `max_queue`."""
        self._page_wanted: Deferred[None] | None = None
        """Fires when the client has taken the last page and the next may be read."""
        self._resume_outcome = "complete"
        self._page: list[bytes] | None = None
        """While a history page is passed on: its events, written together once it is through."""
        self.events_sent = 0

    def open(self, retry_ms: int, after: EventKey | None = None, ends_at: float | None = None) -> None:
        """Send the first bytes at once and start listening; resume after `after` if given; end at `ends_at`.

        Resuming: live events are held from the moment the stream registers; once the
        broker confirms the subscription (and a resume slot is free) the history after
        `after` is read and sent a page at a time, each page once the client has taken
        the one before (with the held events up to its bound merged in: `HistoryPages`),
        then the other held events, skipping what the history already had.
        """
        if self._request.content is not None:
            self._request.content.close()  # a stream has no body: don't keep an empty buffer open for hours
            self._request.content = None
        self._request.registerProducer(self, True)
        self._writer = ResponseWriter.start(self._request, encode_retry(retry_ms))
        # The headers are on the wire now and nothing reads them again; a stream may stay
        # open for hours, thousands at a time: keep nothing of them.
        self._request.responseHeaders = Headers()
        self._request.args = {}
        self._request.notifyFinish().addBoth(self._finished)
        if self._shared.opened.allows():
            _log.info(
                "stream opened: {channels} from {peer}{resuming}",
                channels=",".join(self.channels),
                peer=self.peer,
                resuming=f", resuming after {format_id(after)}" if after else "",
            )
        if ends_at is not None and self._shared.lifetimes is not None:
            self._shared.lifetimes.add(self, ends_at)
        ready = self._shared.hub.add(self, self.channels, self._client)
        if after is not None:
            self._replay.resume(after)
            ready = ready.addCallback(self._catch_up, after)
        ready.addErrback(self._not_subscribed)

    def _catch_up(self, _: None, after: EventKey) -> Deferred[None]:
        resumes, reads = self._shared.resumes, self._shared.reads
        count, size = resumes.page_events, resumes.page_bytes
        whole = reads.page(self.channels, after, count, size)
        self._pages = HistoryPages(reads, self.channels, after, count, size, self._shared.hub.synced, whole)
        return self._read_pages()

    def _read_pages(self) -> Deferred[None]:
        """Read and send every page, each once the client took the one before; fires when done.

        Reads are shared with other streams resuming the same channels, and each one that goes
        to Redis takes one of the process's resume slots for as long as Redis works on it: a
        client that doesn't take its pages holds no slot, only its own bounded queue."""
        done: Deferred[None] = Deferred()

        def read(_: object = None) -> None:
            pages = self._pages
            if self._closed or pages is None or pages.done:
                done.callback(None)
                return
            pages.next().addCallbacks(sent, done.errback)

        def sent(gap: Gap) -> None:
            if self._closed:
                done.callback(None)
                return
            self._send_page(gap)
            pages = self._pages
            assert pages is not None
            if pages.done:
                self._pages = None  # a stream may stay for hours: keep nothing of its resume
                self._replay.release()
                self._held_bytes = 0
                self._shared.hub.counters.resumed(self._resume_outcome)
                done.callback(None)
            else:
                self._page_taken().addCallback(read)

        read()
        return done

    def _send_page(self, gap: Gap) -> None:
        if gap.ahead is not None:
            # The client's id is beyond everything issued: it would wait for ever. Go on from where things are.
            self._replay.rewind(gap.ahead)
            self._resume_outcome = "ahead"
        elif gap.lost:
            self._resume_outcome = "lost"
        items, first, last, data = _page_of(gap, self.channels)
        counters = self._shared.hub.counters
        counters.deliveries += len(items)
        counters.sent_bytes += len(data)
        if self._replay.replays_whole(first, last):
            # The usual case: nothing came live meanwhile: the page, encoded once for every stream it serves.
            self.events_sent += len(items)
            if data:
                self._write(data)
            return
        # The page goes out as one write, not one per event.
        self._page, page = [], None
        try:
            self._replay.replay(items, gap.through)
        finally:
            page, self._page = self._page, None
        if page:
            self._write(b"".join(page))

    def _page_taken(self) -> Deferred[None]:
        """Fires once the client has taken what was written (at once unless the transport paused
        this stream), a reactor turn later: pages never run the reactor for long."""
        wanted: Deferred[None] = Deferred()
        if self._paused:
            self._page_wanted = wanted
        else:
            self._shared.clock.callLater(0, wanted.callback, None)
        return wanted

    # Listener: what the hub calls.

    def deliver(self, block: Block) -> None:
        if self._closed:
            return
        replay = self._replay
        if not self._paused and replay.passes_whole(block.first, block.last):
            # The usual case: nothing held, nothing seen yet: the whole block in one write.
            self.events_sent += len(block.items)
            assert self._writer is not None
            self._writer.write_block(block)
            return
        if replay.holding:
            self._held_bytes += len(block.data)
            if self._held_bytes + self._pending_bytes > self._shared.max_queue:
                self.abort(f"client too slow, more than {self._shared.max_queue} bytes held while it resumes")
                return
        for key, data in block.items:
            replay.live(key, data)

    def _write_event(self, data: bytes) -> None:
        self.events_sent += 1
        if self._page is not None:
            self._page.append(data)
        else:
            self._write(data)

    def _write(self, data: bytes) -> None:
        if self._paused:
            self._queue(data)
        else:
            assert self._writer is not None
            self._writer.write(data)

    def heartbeat(self, data: bytes) -> None:
        # A paused client has bytes in flight already: it needs no keep-alive.
        if not self._closed and not self._paused:
            assert self._writer is not None
            self._writer.write(data)

    # IPushProducer: what the transport calls.

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        if self._pending and not self._closed:
            data = b"".join(self._pending)
            self._pending = []
            self._pending_bytes = 0
            assert self._writer is not None
            self._writer.write(data)
        wanted, self._page_wanted = self._page_wanted, None
        if wanted is not None and not self._paused:
            self._shared.clock.callLater(0, wanted.callback, None)
        elif wanted is not None:
            self._page_wanted = wanted

    def stopProducing(self) -> None:
        """The connection is going away; `_finished` does the cleanup."""

    # Ending.

    def close(self, retry_ms: int | None = None) -> None:
        """End the response from the server side, telling the client when to come back."""
        if self._closed:
            return
        tail = [encode_retry(retry_ms)] if retry_ms is not None else []
        data = b"".join([*self._pending, *tail])
        if self._writer is not None:
            self._writer.write(data)
        else:
            self._request.write(data)
        self._pending = []
        self._request.unregisterProducer()
        self._request.finish()

    def abort(self, why: str) -> None:
        """Cut the connection at once, dropping what is queued."""
        if self._closed:
            return
        _log.warn("stream from {peer} cut: {why}", peer=self.peer, why=why)
        self._shared.hub.counters.slow_clients_cut += 1
        self._closed = True  # nothing more is written; `_finished` still runs when the connection goes
        self._pending = []
        cut(self._request)

    def _queue(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        if self._pending_bytes > self._shared.max_queue:
            self.abort(f"client too slow, more than {self._shared.max_queue} bytes queued")

    def _not_subscribed(self, failure: Failure) -> None:
        if self._pages is not None:
            self._shared.hub.counters.resumed("failed")
        if self._closed:
            return
        _log.warn(
            "stream from {peer} closed: subscribing or reading history of {channels} failed: {error}",
            peer=self.peer,
            channels=",".join(self.channels),
            error=failure.getErrorMessage(),
        )
        self.close(self._shared.retry_after_failure())

    def _finished(self, result: object) -> None:
        """The one cleanup path: reached whatever ended the response."""
        self._closed = True
        self._pending = []
        self._shared.hub.remove(self)
        wanted, self._page_wanted = self._page_wanted, None
        if wanted is not None:
            wanted.callback(None)  # a replay waiting for the client ends, and frees its resume slot
        if self._shared.lifetimes is not None:
            self._shared.lifetimes.discard(self)
        if self._shared.closed.allows():
            _log.info(
                "stream closed: {channels} from {peer} after {duration:.1f}s, {events} events",
                channels=",".join(self.channels),
                peer=self.peer,
                duration=self._shared.clock.seconds() - self._opened_at,
                events=self.events_sent,
            )
