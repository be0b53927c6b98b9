"""The HTTP surface: routing, validation, headers, and publishing over HTTP.

    GET  /events/{channel}                    one stream
    GET  /events?channel=a&channel=b          one stream for several channels
    POST /events/{channel}[?event=TYPE]       publish the body (Bearer token needed)
    POST /events  (application/x-ndjson)      publish a batch: {"channel", "data", "event"} a line
    HEAD, OPTIONS on both;  GET /healthz

Errors are plain text with a status that says what is wrong. A stream request is only
refused (4xx) when it can never work: a browser's EventSource gives up for good on any
non-200 answer.
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

from twisted.internet.defer import Deferred, DeferredSemaphore
from twisted.internet.interfaces import IReactorTime
from twisted.python.failure import Failure
from twisted.web.http import parse_qs
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request

from twisted_sse.core import (
    CHANNEL_RULE,
    MAX_CHANNELS_PER_STREAM,
    MAX_EVENT_TYPE,
    BatchRefused,
    Broker,
    Budget,
    EventKey,
    Hub,
    Logger,
    Publication,
    Receipt,
    Settings,
    check_field,
    encode_comment,
    encode_retry,
    parse_batch,
    parse_id,
    valid_channel,
)
from twisted_sse.web._access import AccessPolicy, Denied
from twisted_sse.web._client_address import TrustedProxies, client_address, client_key, describe_client
from twisted_sse.web._lifetimes import Lifetimes
from twisted_sse.web._post_request import PostRequest, WholePost
from twisted_sse.web._stream import EventStream, Resumes, Streams

__all__ = ["SSEResource"]

_T = TypeVar("_T")

_log = Logger()

_SCREENED = "sse_publish_screened"
"""The attribute `SSEResource.screen` sets on a request whose publisher it allowed: the channel it checked."""
_PREFLIGHT_HEADERS = b"Authorization, Content-Type, Last-Event-ID, Cache-Control"
_PUBLISH_TARGET = re.compile(rb"/events(?:/([^/?#%]*))?(?:\?([^#]*))?")
"""What `whole_post` serves: /events[/][?query] (a batch), /events/{channel}[?query]; a `%` is Twisted's to decode."""


class _Refused(Exception):
    """A request that gets a plain-text error answer."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _plain(request: PostRequest, code: int, message: str) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"text/plain; charset=utf-8")
    request.setHeader(b"cache-control", b"no-cache")
    return message.encode("utf-8") + b"\n"


def _json(request: PostRequest, code: int, value: object) -> bytes:
    request.setResponseCode(code)
    request.setHeader(b"content-type", b"application/json")
    request.setHeader(b"cache-control", b"no-cache")
    return json.dumps(value).encode("utf-8") + b"\n"


def _finish(request: PostRequest, body: bytes) -> None:
    """Answer a request whose render returned NOT_DONE_YET with `body`, whole: with its length, it goes
    out unchunked, in one write."""
    request.setHeader(b"content-length", b"%d" % len(body))
    request.write(body)
    request.finish()


def _receipt_answer(receipt: Receipt, answer: dict[str, object]) -> tuple[int, dict[str, object]]:
    """200, or 202 when the replicas asked for did not confirm in time (the events are live:
    publishing them again would duplicate them); "replicated" says which, when replicas were asked for."""
    if receipt.replicated is None:
        return 200, answer
    return 200 if receipt.replicated else 202, {**answer, "replicated": receipt.replicated}


def _checked_channel(raw: bytes) -> str:
    try:
        name = raw.decode("utf-8")
    except UnicodeDecodeError:
        name = ""
    if not valid_channel(name):
        raise _Refused(400, f"invalid channel name {raw.decode('utf-8', 'replace')!r}: use {CHANNEL_RULE}")
    return name


@dataclass
class _Surface:
    """What every resource of one service shares."""

    hub: Hub
    broker: Broker
    settings: Settings
    clock: IReactorTime
    publish_token: str
    rng: random.Random = field(default_factory=random.Random)
    draining: bool = False
    proxies: TrustedProxies = field(default_factory=TrustedProxies)
    access: AccessPolicy = field(default_factory=lambda: AccessPolicy(None))
    lifetimes: Lifetimes | None = None
    resumes: Resumes = field(default_factory=Resumes)
    streams: Streams = field(init=False)
    """What the streams of this service share."""
    refused_lines: Budget = field(init=False)

    def __post_init__(self) -> None:
        max_queue = self.settings.max_queue
        self.streams = Streams(self.hub, self.broker, self.clock, max_queue, self.jittered_retry, self.lifetimes,
                               self.resumes)  # fmt: skip
        self.refused_lines = Budget(_log, "streams refused", self.clock)

    def describe(self, request: Request) -> str:
        """The client, for logs (behind trusted proxies: the address they forwarded)."""
        return describe_client(request, self.proxies)

    def jittered_retry(self) -> int:
        """A reconnect delay between one and three times --retry, so clients don't come back at once."""
        return int(self.settings.retry_ms * self.rng.uniform(1.0, 3.0))

    def _unavailable(self, client: str, channels: int) -> tuple[str, str] | None:
        """Why a stream of `channels` channels for `client` can't be served right now (a reason for
        the counts, and a message), or None."""
        if self.draining:
            return "draining", "the server is shutting down"
        if not self.broker.is_connected():
            return "broker_down", "the broker is not connected"
        limit = self.settings.max_connections
        if limit and self.hub.streams_open >= limit:
            return "full", f"the server is full ({limit} streams)"
        streams, held = self.hub.held_by(client)
        per_client = self.settings.max_streams_per_ip
        if per_client and streams >= per_client:
            return "streams_per_ip", f"{client} has {streams} streams open, the most one address may have"
        per_client = self.settings.max_channels_per_ip
        if per_client and held + channels > per_client:
            return "channels_per_ip", f"{client}'s streams would hold more than {per_client} channels"
        return None

    def cors(self, request: PostRequest) -> None:
        """A listed origin is echoed with credentials allowed (`new EventSource(url, {withCredentials: true})`
        then sends its cookie); `*` allows any origin without credentials (browsers forbid both)."""
        origins = self.settings.cors_origins
        if not origins:
            return
        listed = [origin for origin in origins if origin != "*"]
        if listed:
            request.setHeader(b"vary", b"Origin")
        origin = request.getHeader(b"origin")
        if origin is not None and origin.decode("latin-1") in listed:
            request.setHeader(b"access-control-allow-origin", origin)
            request.setHeader(b"access-control-allow-credentials", b"true")
        elif "*" in origins:
            request.setHeader(b"access-control-allow-origin", b"*")

    def preflight(self, request: Request, methods: Sequence[bytes]) -> bytes:
        allow = b", ".join((*methods, b"OPTIONS"))
        request.setHeader(b"allow", allow)
        if request.responseHeaders.hasHeader(b"access-control-allow-origin"):
            request.setHeader(b"access-control-allow-methods", allow)
            request.setHeader(b"access-control-allow-headers", _PREFLIGHT_HEADERS)
            request.setHeader(b"access-control-max-age", b"600")
        request.setResponseCode(204)
        return b""

    def check(self, request: PostRequest, decide: Callable[[], _T]) -> _T:
        """`decide()`'s answer; a denial becomes a plain 401/403, counted by reason."""
        try:
            return decide()
        except Denied as denied:
            raise self.refusal(request, denied) from None

    def refusal(self, request: PostRequest, denied: Denied) -> _Refused:
        """The answer to a denial (401 with its challenge, or 403), counted by reason."""
        self.hub.counters.refuse(denied.reason)
        if denied.code == 401:
            request.setHeader(b"www-authenticate", b'Bearer realm="twisted-sse"')
        return _Refused(denied.code, denied.message)

    def stream_ends_at(self, expires: float | None) -> float | None:
        """When a stream opening now must end: its token's expiry, or its jittered --max-stream-age."""
        ends = [expires] if expires is not None else []
        if self.settings.max_stream_age:
            ends.append(self.clock.seconds() + self.settings.max_stream_age * self.rng.uniform(0.9, 1.1))
        return min(ends) if ends else None

    def open_stream(self, request: Request, channels: Sequence[str]) -> int | bytes:
        address = client_address(request, self.proxies)
        decided = self.check(request, lambda: self.access.check_stream(request, channels, address))
        if isinstance(decided, Deferred):  # the application decides (--auth-url)
            gone: list[object] = []
            request.notifyFinish().addBoth(gone.append)
            decided.addCallbacks(
                lambda expires: (
                    None if gone else self._answer(request, self._start(request, channels, expires, address))
                ),
                lambda failure: None if gone else self._answer(request, self._not_decided(request, failure)),
            )
            return NOT_DONE_YET
        return self._start(request, channels, decided, address)

    def _start(self, request: Request, channels: Sequence[str], expires: float | None, address: str) -> int | bytes:
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        request.setHeader(b"x-accel-buffering", b"no")
        if request.method == b"HEAD":
            return b""
        client = client_key(address)
        unavailable = self._unavailable(client, len(channels))
        if unavailable is not None:
            return self._retry_later(request, *unavailable)
        stream = EventStream(request, self.streams, channels, self.describe(request), client)
        stream.open(self.settings.retry_ms, self._resume_from(request), self.stream_ends_at(expires))
        return NOT_DONE_YET

    def _retry_later(self, request: Request, reason: str, why: str) -> bytes:
        """EventSource gives up on any non-200 answer: say 200, when to retry, and close."""
        request.setHeader(b"content-type", b"text/event-stream; charset=utf-8")
        request.setHeader(b"cache-control", b"no-cache")
        self.hub.counters.refuse_stream(reason)
        retry = self.jittered_retry()
        if self.refused_lines.allows():
            _log.info("stream from {peer} refused: {why}; retry in {retry} ms",
                      peer=self.describe(request), why=why, retry=retry)  # fmt: skip
        return encode_retry(retry) + encode_comment(why.encode("utf-8"))

    def _not_decided(self, request: Request, failure: Failure) -> bytes:
        """The application said no (401/403), or could not say (a passing failure: retry later)."""
        if isinstance(failure.value, Denied):
            refused = self.refusal(request, failure.value)
            return _plain(request, refused.code, refused.message)
        self.hub.counters.auth_unavailable += 1
        return self._retry_later(
            request, "auth_unavailable", f"the authorization callback failed: {failure.getErrorMessage()}"
        )

    @staticmethod
    def _answer(request: Request, body: int | bytes) -> None:
        """Finish a request answered after its render returned (NOT_DONE_YET: a stream took it over)."""
        if not isinstance(body, bytes):
            return  # NOT_DONE_YET
        request.write(body)
        request.finish()

    def _resume_from(self, request: Request) -> EventKey | None:
        """The id to resume after: the Last-Event-ID header, else ?lastEventId=; bad ones are ignored."""
        raw = request.getHeader(b"last-event-id")
        if raw is None:
            raw = request.args.get(b"lastEventId", [None])[0]
        if raw is None or raw == b"":
            return None
        key = parse_id(raw.decode("latin-1"))
        if key is None:
            _log.info(
                "ignoring Last-Event-ID {id!r} from {peer}: not an id of ours; starting live",
                id=raw[:64],
                peer=self.describe(request),
            )
        return key

    def posted(self, request: PostRequest, channel: str | None) -> int | bytes:
        """A publish to `channel`, or a batch (None): NOT_DONE_YET until the broker answers; refusals
        are raised, and counted."""
        try:
            return self.publish(request, channel) if channel is not None else self.publish_batch(request)
        except _Refused:
            self.hub.counters.published("refused")
            raise

    def publish(self, request: PostRequest, channel: str) -> int | bytes:
        if getattr(request, _SCREENED, None) != channel:  # else the site checked this very channel on the headers
            self.check(request, lambda: self.access.check_publish(request, [channel], self.publish_token))
        data = self._body(request)
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            raise _Refused(400, "the body is not valid UTF-8") from None
        event = self._event_type(request)
        return self._publish(request, [(channel, data, event)], lambda ids: {"channel": channel, "id": ids[0]})

    def publish_batch(self, request: PostRequest) -> int | bytes:
        """An ndjson batch: every line checked and every channel allowed before anything is published."""
        publisher = self.check(request, lambda: self.access.check_publisher(request, self.publish_token))
        kind = (request.getHeader(b"content-type") or b"").split(b";", 1)[0].strip().lower()
        if kind != b"application/x-ndjson":
            raise _Refused(415, "a batch is Content-Type: application/x-ndjson, one JSON object a line; "
                                "one event: POST /events/{channel}")  # fmt: skip
        try:
            publications = parse_batch(self._body(request), self.settings.max_batch)
        except BatchRefused as refused:
            raise _Refused(400, f"nothing published: {refused}") from None
        if publisher is not None:
            channels = list(dict.fromkeys(channel for channel, _, _ in publications))
            self.check(request, lambda: self.access.check_publish(request, channels, self.publish_token))
        return self._publish(request, publications, lambda ids: {"ids": ids})

    def _body(self, request: PostRequest) -> bytes:
        """The request body, refused past --max-message-size (by its declared length before it is read)."""
        limit = self.settings.max_message_size
        declared = request.getHeader(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _Refused(413, f"the body is larger than {limit} bytes")
        assert request.content is not None  # set while the request is connected
        data = request.content.read(limit + 1)
        if len(data) > limit:
            raise _Refused(413, f"the body is larger than {limit} bytes")
        return data

    def _publish(
        self,
        request: PostRequest,
        publications: list[Publication],
        answer: Callable[[list[str | None]], dict[str, object]],
    ) -> int:
        """Hand checked publications to the broker; answer with `answer(ids)` once it confirmed them
        (202 when replicas did not), 503 when it failed (nothing of it is answered as published)."""
        finished: list[bool] = []
        request.notifyFinish().addBoth(lambda _: finished.append(True))
        counters, started = self.hub.counters, self.clock.seconds()

        def published(receipt: Receipt) -> None:
            counters.published("unreplicated" if receipt.replicated is False else "ok")
            counters.published_events += len(publications)
            counters.publish_seconds.observe(self.clock.seconds() - started)
            if not finished:
                _finish(request, _json(request, *_receipt_answer(receipt, answer(receipt.ids))))

        def failed(failure: Failure) -> None:
            counters.published("failed")
            channel = publications[0][0] if len(publications) == 1 else f"a batch of {len(publications)}"
            _log.warn("publish to {channel} failed: {error}", channel=channel, error=failure.getErrorMessage())
            if not finished:
                request.setHeader(b"retry-after", b"1")
                _finish(request, _plain(request, 503, f"publishing failed: {failure.getErrorMessage()}"))

        self.broker.publish(publications).addCallbacks(published, failed)
        return NOT_DONE_YET

    @staticmethod
    def _event_type(request: PostRequest) -> str | None:
        raw = request.args.get(b"event", [b""])[0]
        try:
            event = raw.decode("utf-8")
            check_field("event", event)
        except (UnicodeDecodeError, ValueError):
            raise _Refused(400, "the event type must be UTF-8 without CR, LF or NUL") from None
        if len(event) > MAX_EVENT_TYPE:
            raise _Refused(400, f"the event type is longer than {MAX_EVENT_TYPE} characters")
        return event or None


class _Page(Resource):
    """Dispatches on method, answers OPTIONS and 405 itself, turns `_Refused` into text."""

    methods: tuple[bytes, ...] = ()

    def __init__(self, surface: _Surface) -> None:
        super().__init__()
        self._surface = surface

    def getChild(self, path: bytes, request: Request) -> Resource:
        return _ErrorPage(404, "no such resource")

    def render(self, request: Request) -> int | bytes:
        self._surface.cors(request)
        if request.method == b"OPTIONS":
            return self._surface.preflight(request, self.methods)
        if request.method not in self.methods:
            request.setHeader(b"allow", b", ".join((*self.methods, b"OPTIONS")))
            allowed = ", ".join(m.decode("ascii") for m in self.methods)
            return _plain(request, 405, f"method not allowed here; use {allowed}")
        try:
            return self.answer(request)
        except _Refused as refused:
            return _plain(request, refused.code, refused.message)

    def answer(self, request: Request) -> int | bytes:
        raise NotImplementedError


class _ErrorPage(Resource):
    isLeaf = True

    def __init__(self, code: int, message: str) -> None:
        super().__init__()
        self._code = code
        self._message = message

    def render(self, request: Request) -> bytes:
        return _plain(request, self._code, self._message)


class _Channel(_Page):
    """`/events/{channel}`: a stream of one channel, and publishing to it."""

    methods = (b"GET", b"HEAD", b"POST")

    def __init__(self, surface: _Surface, channel: str) -> None:
        super().__init__(surface)
        self._channel = channel

    def answer(self, request: Request) -> int | bytes:
        if request.method == b"POST":
            return self._surface.posted(request, self._channel)
        return self._surface.open_stream(request, [self._channel])


class _Events(_Page):
    """`/events?channel=a&channel=b`: one stream for several channels; POST: a batch of events."""

    methods = (b"GET", b"HEAD", b"POST")

    def getChild(self, path: bytes, request: Request) -> Resource:
        if path == b"":
            return self
        try:
            return _Channel(self._surface, _checked_channel(path))
        except _Refused as refused:
            return _ErrorPage(refused.code, refused.message)

    def answer(self, request: Request) -> int | bytes:
        if request.method == b"POST":
            return self._surface.posted(request, None)
        raw = request.args.get(b"channel", [])
        if not raw:
            raise _Refused(400, "name a channel: /events/{channel} or /events?channel=a&channel=b")
        if len(raw) > MAX_CHANNELS_PER_STREAM:
            raise _Refused(400, f"at most {MAX_CHANNELS_PER_STREAM} channels per stream")
        return self._surface.open_stream(request, list(dict.fromkeys(_checked_channel(c) for c in raw)))


class _Health(_Page):
    """`/healthz`: 200 with JSON while messages can flow, 503 while they can't; the counts too unless they
    are served on an internal listener (--admin-listen)."""

    methods = (b"GET", b"HEAD")

    def __init__(self, surface: _Surface, counters: bool = True) -> None:
        super().__init__(surface)
        self._counters = counters

    def answer(self, request: Request) -> bytes:
        surface = self._surface
        connected = surface.broker.is_connected()
        healthy = connected and not surface.draining
        report: dict[str, object] = {
            "status": "ok" if healthy else "draining" if surface.draining else "unavailable",
            "broker": surface.broker.kind,
            "connected": connected,
            "streams": surface.hub.streams_open,
            "channels": surface.hub.channels_held,
        }
        if surface.settings.worker is not None:
            report["worker"] = surface.settings.worker  # which of the --workers answered
        if self._counters:
            report["counters"] = surface.hub.counters.report()
        if not healthy:
            request.setHeader(b"retry-after", b"1")
        return _json(request, 200 if healthy else 503, report)


class SSEResource(_Page):
    """The root of twisted-sse's URL space: `events/` and `healthz`. Mount it anywhere."""

    def __init__(
        self,
        hub: Hub,
        broker: Broker,
        settings: Settings,
        clock: IReactorTime,
        publish_token: str,
        rng: random.Random | None = None,
        access: AccessPolicy | None = None,
        lifetimes: Lifetimes | None = None,
    ) -> None:
        """`access` decides who may listen and publish (default: everyone listens, the token publishes);
        `lifetimes` ends streams at their token's expiry and --max-stream-age (default: never)."""
        surface = _Surface(
            hub,
            broker,
            settings,
            clock,
            publish_token,
            rng or random.Random(),
            proxies=TrustedProxies(settings.trusted_proxies),
            access=access or AccessPolicy(None),
            lifetimes=lifetimes,
            resumes=Resumes(
                DeferredSemaphore(settings.max_resumes),
                settings.resume_page_events,
                settings.resume_page_bytes,
                settings.resume_window,
            ),
        )
        super().__init__(surface)
        self.putChild(b"events", _Events(self._surface))
        self.putChild(b"healthz", self.health())

    def render(self, request: Request) -> bytes:
        return _plain(request, 404, "no such resource; streams are at events/{channel}")

    def health(self, counters: bool = True) -> Resource:
        """A `/healthz` page of this service (with its counts, or without: for the public side when an
        internal listener shows them)."""
        return _Health(self._surface, counters)

    def whole_post(self, request: WholePost) -> int | bytes | None:
        """A POST the site read whole, answered as `render` would answer it; None, having done nothing, when
        it isn't a publish to a valid channel name (Twisted's request machinery then serves it: its 404s,
        400s and percent-decoding)."""
        route = _PUBLISH_TARGET.fullmatch(request.uri)
        if route is None:
            return None
        name, query = route[1], route[2]
        channel = name.decode("ascii") if name else None
        if channel is not None and not valid_channel(channel):
            return None
        if query is not None:
            request.args = parse_qs(query, 1)
        surface = self._surface
        surface.cors(request)
        try:
            return surface.posted(request, channel)
        except _Refused as refused:
            return _plain(request, refused.code, refused.message)

    def screen(self, request: Request, method: bytes, path: bytes) -> tuple[int, bytes, str] | None:
        """A publish whose headers already fail (no or a bad token) is refused before its body is read.

        For a site whose root is this resource (`twistd sse`); mounted elsewhere, publishes are
        checked once their body is in, as before.
        """
        if method != b"POST":
            return None
        parts = path.split(b"?", 1)[0].split(b"/")
        surface = self._surface
        if parts in ([b"", b"events"], [b"", b"events", b""]):  # a batch: its channels are in the body

            def decide() -> None:
                surface.access.check_publisher(request, surface.publish_token)
        elif len(parts) == 3 and parts[:2] == [b"", b"events"]:
            try:
                channel = _checked_channel(parts[2])
            except _Refused:
                return None  # answered 400 once the request is in

            def decide() -> None:
                surface.access.check_publish(request, [channel], surface.publish_token)
                setattr(request, _SCREENED, channel)
        else:
            return None
        try:
            surface.check(request, decide)
        except _Refused as refused:
            surface.hub.counters.published("refused")
            return refused.code, b"Unauthorized" if refused.code == 401 else b"Forbidden", refused.message
        return None

    def drain(self) -> None:
        """Refuse new streams and end every open one with a jittered reconnect hint."""
        surface = self._surface
        surface.draining = True
        surface.hub.flush()  # what coalescing holds goes out before the streams end
        streams = surface.hub.listeners()
        _log.info("draining {count} streams", count=len(streams))
        for stream in streams:
            stream.close(surface.jittered_retry())
