"""twisted-sse: Server-Sent Events from Redis pub/sub (or an in-process broker) on Twisted.

The package shows its layers: `core` (pure rules: framing, ids, history, hub, resume),
`redis` and `web` (the edges), and at the top the service, `twistd sse`'s options
(`tap`), publishing (`publish`) and subscriber tokens (`tokens`).
"""

from twisted_sse._service import SSEService
from twisted_sse.core import Event, Hub, MemoryBroker, RedisAddress, Settings, encode
from twisted_sse.publish import Publisher
from twisted_sse.redis import parse_redis_url
from twisted_sse.tokens import subscriber_token
from twisted_sse.web import SSEResource

__all__ = [
    "Event",
    "encode",
    "Hub",
    "MemoryBroker",
    "RedisAddress",
    "SSEResource",
    "SSEService",
    "Settings",
    "parse_redis_url",
    "Publisher",
    "subscriber_token",
]
__version__ = "0.1.0"
