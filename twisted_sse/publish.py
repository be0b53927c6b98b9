"""Durable publishing from outside Twisted: WSGI apps (Django, Flask), scripts, workers.

    from twisted_sse.publish import Publisher
    publisher = Publisher("redis://127.0.0.1:6379/0")      # once, at start-up
    event_id = publisher.publish("news", '{"title": "hi"}', event="headline")

It runs the same Lua script as the daemon (`twisted_sse.redis._scripts`), so the event is
in the channel's history and published in one atomic step, with an id in the same
sequence. Give it the same prefix and history bounds as the daemons. Needs redis-py:
``pip install 'twisted-sse[redis-py]'``. The command line does the same:

    sse-publish --redis redis://127.0.0.1:6379/0 news 'hello'
    echo '{"a": 1}' | sse-publish --event update news -
    sse-publish --batch events.ndjson        # {"channel": ..., "data": ..., "event": ...} a line

Many events at once: `publisher.publish_many([("news", "a"), ("chat.1", "b", "message")])`
publishes them in order with one script call per PUBLISH_MANY_CHUNK events (each call atomic)
and returns their ids. With `replicas=N` every call is followed by WAIT N (bounded by
`timeout`) on the same connection, and each id says whether N replicas confirmed it
(`event_id.replicated`); an unconfirmed event is published and live all the same: do not
publish it again. `sse-publish --replicas N` exits 3 when they did not confirm.

Inside a Twisted process use `SSEService.publish`, which returns a Deferred of the id.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from twisted_sse.core import BatchRefused, Settings, checked_publication, parse_batch
from twisted_sse.redis import (
    PUBLISH_MANY_SCRIPT,
    PUBLISH_SCRIPT,
    history_bounds,
    keys,
    parse_redis_url,
    publish_args,
    publish_many_call,
)

__all__ = ["Publisher", "EventId", "main"]

_DEFAULTS = Settings()
PUBLISH_MANY_CHUNK = 1000
"""Events per script call of `publish_many` (a call blocks Redis while it runs)."""
NOT_REPLICATED = 3
"""sse-publish's exit status when the events are published but the replicas asked for did not confirm."""


class EventId(str):
    """An event's id, as a string; `replicated` says whether the replicas asked for confirmed it
    (None when none were asked for)."""

    replicated: bool | None

    def __new__(cls, value: str, replicated: bool | None = None) -> EventId:
        made = super().__new__(cls, value)
        made.replicated = replicated
        return made


class Publisher:
    """Publishes durable events to twisted-sse channels through Redis, synchronously."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = _DEFAULTS.prefix,
        history: int = _DEFAULTS.history,
        history_ttl: float = _DEFAULTS.history_ttl,
        client: Any = None,
        replicas: int = 0,
        timeout: float = 5.0,
    ) -> None:
        """`client` may be an existing redis-py client to share; otherwise `url` makes one. `replicas`:
        how many replicas must confirm each publish (WAIT, at most `timeout` seconds)."""
        if client is None:
            client = _client_for(url, timeout)
        if replicas < 0:
            raise ValueError("replicas: 0 or more")
        self._client = client
        self._prefix = prefix.encode("utf-8")
        self._bounds = history_bounds(history, history_ttl)
        self._script = client.register_script(PUBLISH_SCRIPT)
        self._many = client.register_script(PUBLISH_MANY_SCRIPT)
        self._replicas = replicas
        self._wait_ms = max(1, int(timeout * 1000))

    def publish(self, channel: str, data: bytes | str, event: str | None = None) -> EventId:
        """Publish one event; returns its id. ValueError for a bad channel name or event type."""
        data = checked_publication(channel, data, event)
        args = publish_args(self._prefix, channel, data, event, self._bounds)
        [event_id], replicated = self._run(self._script, keys(self._prefix, channel.encode("ascii")), args)
        return EventId(_text(event_id), replicated)

    def publish_many(self, events: Iterable[Sequence[Any]]) -> list[EventId]:
        """Publish (channel, data) or (channel, data, event type) tuples in order; returns their ids.

        Every event is checked before any is sent (ValueError naming its position); then one
        script call per PUBLISH_MANY_CHUNK events, each atomic."""
        checked = []
        for position, item in enumerate(events):
            channel, data, event = (*item, None)[:3] if len(item) == 2 else item
            try:
                checked.append((channel, checked_publication(channel, data, event), event))
            except ValueError as error:
                raise ValueError(f"event {position}: {error}") from None
        ids: list[EventId] = []
        for start in range(0, len(checked), PUBLISH_MANY_CHUNK):
            script_keys, args = publish_many_call(self._prefix, checked[start : start + PUBLISH_MANY_CHUNK],
                                                  self._bounds)  # fmt: skip
            chunk, replicated = self._run(self._many, script_keys, args)
            ids += [EventId(_text(event_id), replicated) for event_id in chunk]
        return ids

    def _run(self, script: Any, script_keys: list[bytes], args: list[bytes]) -> tuple[list[Any], bool | None]:
        """Run `script`; with replicas, WAIT on the same connection (one pipeline) and say whether they confirmed."""
        if not self._replicas:
            reply = script(keys=script_keys, args=args)
            return (reply if isinstance(reply, list) else [reply]), None
        pipe = self._client.pipeline(transaction=False)
        script(keys=script_keys, args=args, client=pipe)
        pipe.execute_command("WAIT", self._replicas, self._wait_ms)
        reply, confirmed = pipe.execute()
        return (reply if isinstance(reply, list) else [reply]), int(confirmed) >= self._replicas


def _text(event_id: Any) -> str:
    return event_id.decode("ascii") if isinstance(event_id, bytes) else str(event_id)


def _client_for(url: str, timeout: float = 5.0) -> Any:
    try:
        import redis
    except ImportError:
        raise ImportError("twisted_sse.publish needs redis-py: pip install 'twisted-sse[redis-py]'") from None
    address = parse_redis_url(url)
    if address.sentinels:
        from redis.sentinel import Sentinel

        sentinel_login = {"password": address.sentinel_password} if address.sentinel_password else {}
        sentinel = Sentinel(list(address.sentinels), sentinel_kwargs=sentinel_login, socket_timeout=timeout + 1)
        return sentinel.master_for(address.service, db=address.db, username=address.username,
                                   password=address.password, socket_timeout=timeout + 1)  # fmt: skip
    common: dict[str, Any] = {
        "db": address.db,
        "username": address.username,
        "password": address.password,
        "socket_timeout": 5,
    }
    if address.unix_path is not None:
        return redis.Redis(unix_socket_path=address.unix_path, **common)
    assert address.host is not None
    return redis.Redis(host=address.host, port=address.port, ssl=address.tls, **common)


def main(argv: list[str] | None = None) -> int:
    """`sse-publish`: publish one durable event (or a batch) from the command line; prints the ids."""
    parser = argparse.ArgumentParser(prog="sse-publish", description="Publish events to twisted-sse channels.")
    parser.add_argument("--redis", default=os.environ.get("SSE_REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="Redis URL (default: env SSE_REDIS_URL, else redis://127.0.0.1:6379/0)")  # fmt: skip
    parser.add_argument("--prefix", default=_DEFAULTS.prefix, help="channel prefix (default: %(default)s)")
    parser.add_argument("--history", type=int, default=_DEFAULTS.history, help="history length (default: %(default)s)")
    parser.add_argument("--history-ttl", type=float, default=0, help="history age bound in seconds (default: none)")
    parser.add_argument("--event", help="event type")
    parser.add_argument(
        "--replicas", type=int, default=0, help="replicas that must confirm (WAIT); exit 3 when they don't in time"
    )
    parser.add_argument("--timeout", type=float, default=5.0, help="seconds for Redis, and the WAIT (default: 5)")
    parser.add_argument(
        "--batch",
        metavar="FILE",
        help='a batch: a JSON object a line, {"channel", "data", "event"}; - is stdin',
    )
    parser.add_argument("channel", nargs="?")
    parser.add_argument("data", nargs="?", default="-", help="the data, or - to read it from standard input")
    args = parser.parse_args(argv)
    if (args.batch is None) == (args.channel is None):
        parser.error("give a channel (and data), or --batch FILE")
    try:
        publications = _batch(args.batch) if args.batch is not None else None
        publisher = Publisher(args.redis, args.prefix, args.history, args.history_ttl, replicas=args.replicas,
                              timeout=args.timeout)  # fmt: skip
        if publications is None:
            data = sys.stdin.buffer.read() if args.data == "-" else args.data.encode("utf-8")
            ids = [publisher.publish(args.channel, data, args.event)]
        else:
            ids = publisher.publish_many(publications)
    except (ValueError, OSError) as error:
        parser.error(str(error))
    except Exception as error:  # redis-py's connection and response errors
        print(f"sse-publish: publishing failed: {error}", file=sys.stderr)
        return 1
    print("\n".join(ids))
    if any(event_id.replicated is False for event_id in ids):
        print(f"sse-publish: published, but {args.replicas} replicas did not confirm within {args.timeout}s; "
              "do not publish again", file=sys.stderr)  # fmt: skip
        return NOT_REPLICATED
    return 0


def _batch(path: str) -> list[tuple[str, bytes, str | None]]:
    body = sys.stdin.buffer.read() if path == "-" else open(path, "rb").read()  # noqa: SIM115
    try:
        return parse_batch(body, max_lines=sys.maxsize)
    except BatchRefused as refused:
        raise ValueError(f"{path}: nothing published: {refused}") from None


if __name__ == "__main__":
    sys.exit(main())
