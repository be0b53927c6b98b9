"""Publishing in batches: what one publish is, what it is answered, and the queue that sends
the publishes of a reactor turn to the broker together.

Every publish (one POST, a batch POST, `SSEService.publish`) is put on the queue as a list of
publications. The queue keeps one batch in flight: what arrives while Redis works on it goes
out together when the answer comes, so the busier the server, the more publishes share one
script call (and one WAIT for replicas), and a quiet server sends each on the next reactor
turn. Each caller gets its own ids, in order, or its own failure: a batch that fails fails
every publish in it, and none of them is answered as done. Ids increase in the order the
batches go out, which is the order their answers come back in.
"""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure

from twisted_sse.core._channels import checked_publication

__all__ = ["Publication", "Receipt", "PublishQueue", "parse_batch", "BatchRefused"]

Publication = tuple[str, bytes, str | None]
"""(channel, data, event type or None): one event to publish, already checked."""


class BatchRefused(ValueError):
    """A batch with a bad line: nothing of it is published. `line` counts from 1."""

    def __init__(self, line: int, problem: str) -> None:
        super().__init__(f"line {line}: {problem}")
        self.line = line


_FIELDS = frozenset({"channel", "data", "event"})


def parse_batch(body: bytes, max_lines: int) -> list[Publication]:
    """The events of an ndjson batch: one JSON object a line, {"channel": ..., "data": ..., "event": ...}
    (event optional); blank lines are skipped. Any bad line refuses the whole batch (BatchRefused)."""
    publications: list[Publication] = []
    for number, line in enumerate(body.split(b"\n"), 1):
        if not line.strip():
            continue
        if len(publications) == max_lines:
            raise BatchRefused(number, f"more than {max_lines} events in one batch")
        try:
            item = json.loads(line)
        except (UnicodeDecodeError, ValueError):
            raise BatchRefused(number, "not a JSON object") from None
        if not isinstance(item, dict):
            raise BatchRefused(number, "not a JSON object")
        if unknown := set(item) - _FIELDS:
            raise BatchRefused(number, f"unknown field {sorted(unknown)[0]!r}: use channel, data and event")
        channel, data, event = item.get("channel"), item.get("data"), item.get("event")
        if not isinstance(channel, str) or not isinstance(data, str) or not isinstance(event, str | None):
            raise BatchRefused(number, "channel and data must be strings, and event a string when given")
        try:
            publications.append((channel, checked_publication(channel, data, event or None), event or None))
        except UnicodeEncodeError:
            raise BatchRefused(number, "data is not valid Unicode (a lone surrogate)") from None
        except ValueError as error:
            raise BatchRefused(number, str(error)) from None
    if not publications:
        raise BatchRefused(1, "no events: send one JSON object a line")
    return publications


@dataclass(frozen=True)
class Receipt:
    """What a publish is answered: its events' ids in order, and whether replicas confirmed them."""

    ids: list[str | None]
    replicated: bool | None = None
    """None when no replicas were asked for (--publish-replicas 0); else whether enough confirmed in time."""


class PublishQueue:
    """Sends the publications put in one reactor turn to `send` together, one batch in flight.

    A batch holds at most `max_events` publications and `max_bytes` of data, except that one
    put always goes whole (its own size is bounded where it comes in).
    """

    def __init__(
        self,
        send: Callable[[list[Publication]], Deferred[Receipt]],
        clock: Any,
        max_events: int = 1000,
        max_bytes: int = 1 << 20,
    ) -> None:
        self._send = send
        self._clock = clock
        self._max_events = max_events
        self._max_bytes = max_bytes
        self._waiting: deque[tuple[list[Publication], Deferred[Receipt]]] = deque()
        self._busy = False
        """A batch is in flight, or the next one is scheduled."""
        self.batches = 0
        """Batches sent so far (how many script calls the publishes cost)."""

    def put(self, publications: list[Publication]) -> Deferred[Receipt]:
        """Publish `publications` in order; fires with their receipt once the broker confirmed them."""
        answer: Deferred[Receipt] = Deferred()
        self._waiting.append((publications, answer))
        if not self._busy:
            self._busy = True
            self._clock.callLater(0, self._next)
        return answer

    def _next(self) -> None:
        if not self._waiting:
            self._busy = False
            return
        batch = [self._waiting.popleft()]
        events, size = len(batch[0][0]), sum(len(data) for _, data, _ in batch[0][0])
        while self._waiting:
            publications = self._waiting[0][0]
            more = sum(len(data) for _, data, _ in publications)
            if events + len(publications) > self._max_events or size + more > self._max_bytes:
                break
            batch.append(self._waiting.popleft())
            events, size = events + len(publications), size + more
        self.batches += 1
        try:
            sent = self._send([publication for publications, _ in batch for publication in publications])
        except Exception:
            sent = Deferred()
            sent.errback(Failure())
        sent.addCallbacks(self._answered, self._failed, callbackArgs=(batch,), errbackArgs=(batch,))
        sent.addBoth(lambda _: self._clock.callLater(0, self._next))

    @staticmethod
    def _answered(receipt: Receipt, batch: list[tuple[list[Publication], Deferred[Receipt]]]) -> None:
        start = 0
        for publications, answer in batch:
            end = start + len(publications)
            answer.callback(Receipt(receipt.ids[start:end], receipt.replicated))
            start = end

    @staticmethod
    def _failed(failure: Failure, batch: list[tuple[list[Publication], Deferred[Receipt]]]) -> None:
        for _, answer in batch:
            answer.errback(failure)
