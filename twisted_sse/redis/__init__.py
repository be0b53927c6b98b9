"""The Redis edge: the broker on one shared subscriber, its connections, the Lua scripts, URLs.

`RedisBroker` is imported on first use, not with this package: importing txredisapi
installs a reactor, and `twistd` must be able to choose one first.
"""

from typing import Any

from twisted_sse.redis._scripts import (
    PUBLISH_MANY_SCRIPT,
    PUBLISH_SCRIPT,
    history_bounds,
    keys,
    publish_args,
    publish_many_call,
)
from twisted_sse.redis._url import parse_redis_url

__all__ = ["RedisBroker", "RedisUnavailable", "parse_redis_url", "PUBLISH_SCRIPT", "history_bounds", "keys",
           "publish_args", "PUBLISH_MANY_SCRIPT", "publish_many_call"]  # fmt: skip


def __getattr__(name: str) -> Any:
    if name in ("RedisBroker", "RedisUnavailable"):
        from twisted_sse.redis import _broker

        return getattr(_broker, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
