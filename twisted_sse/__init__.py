"""twisted-sse: Server-Sent Events from Redis pub/sub (or an in-process broker) on Twisted."""

from twisted_sse.framing import Event, encode
from twisted_sse.hub import Hub
from twisted_sse.memory_broker import MemoryBroker
from twisted_sse.redis_url import RedisAddress, parse_redis_url
from twisted_sse.resource import SSEResource
from twisted_sse.service import SSEService
from twisted_sse.settings import Settings

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
]
__version__ = "0.1.0"
