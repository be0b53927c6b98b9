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

Inside a Twisted process use `SSEService.publish`, which returns a Deferred of the id.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from twisted_sse.core import Settings, checked_publication
from twisted_sse.redis import PUBLISH_SCRIPT, history_bounds, keys, parse_redis_url, publish_args

__all__ = ["Publisher", "main"]

_DEFAULTS = Settings()


class Publisher:
    """Publishes durable events to twisted-sse channels through Redis, synchronously."""

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        prefix: str = _DEFAULTS.prefix,
        history: int = _DEFAULTS.history,
        history_ttl: float = _DEFAULTS.history_ttl,
        client: Any = None,
    ) -> None:
        """`client` may be an existing redis-py client to share; otherwise `url` makes one."""
        if client is None:
            client = _client_for(url)
        self._client = client
        self._prefix = prefix.encode("utf-8")
        self._bounds = history_bounds(history, history_ttl)
        self._script = client.register_script(PUBLISH_SCRIPT)

    def publish(self, channel: str, data: bytes | str, event: str | None = None) -> str:
        """Publish one event; returns its id. ValueError for a bad channel name or event type."""
        data = checked_publication(channel, data, event)
        args = publish_args(self._prefix, channel, data, event, self._bounds)
        event_id = self._script(keys=keys(self._prefix, channel.encode("ascii")), args=args)
        return event_id.decode("ascii") if isinstance(event_id, bytes) else str(event_id)


def _client_for(url: str) -> Any:
    try:
        import redis
    except ImportError:
        raise ImportError("twisted_sse.publish needs redis-py: pip install 'twisted-sse[redis-py]'") from None
    address = parse_redis_url(url)
    if address.sentinels:
        from redis.sentinel import Sentinel

        sentinel_login = {"password": address.sentinel_password} if address.sentinel_password else {}
        sentinel = Sentinel(list(address.sentinels), sentinel_kwargs=sentinel_login, socket_timeout=5)
        return sentinel.master_for(address.service, db=address.db, username=address.username,
                                   password=address.password, socket_timeout=5)  # fmt: skip
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
    """`sse-publish`: publish one durable event from the command line; prints its id."""
    parser = argparse.ArgumentParser(prog="sse-publish", description="Publish one event to a twisted-sse channel.")
    parser.add_argument("--redis", default=os.environ.get("SSE_REDIS_URL", "redis://127.0.0.1:6379/0"),
                        help="Redis URL (default: env SSE_REDIS_URL, else redis://127.0.0.1:6379/0)")  # fmt: skip
    parser.add_argument("--prefix", default=_DEFAULTS.prefix, help="channel prefix (default: %(default)s)")
    parser.add_argument("--history", type=int, default=_DEFAULTS.history, help="history length (default: %(default)s)")
    parser.add_argument("--history-ttl", type=float, default=0, help="history age bound in seconds (default: none)")
    parser.add_argument("--event", help="event type")
    parser.add_argument("channel")
    parser.add_argument("data", nargs="?", default="-", help="the data, or - to read it from standard input")
    args = parser.parse_args(argv)
    data = sys.stdin.buffer.read() if args.data == "-" else args.data.encode("utf-8")
    try:
        publisher = Publisher(args.redis, args.prefix, args.history, args.history_ttl)
        print(publisher.publish(args.channel, data, args.event))
    except ValueError as error:
        parser.error(str(error))
    except Exception as error:  # redis-py's connection and response errors
        print(f"sse-publish: publishing failed: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
