"""What the test suite and the benchmarks share: real processes on free loopback ports.

A throwaway `redis-server` (no persistence, killed by PID) and a `twistd sse` run from this
checkout, with the small HTTP helpers that talk to them. Not part of the installed package.
"""

from testbed.certificates import server_certificate
from testbed.processes import REPO, TWISTD, Daemon, free_port, get, health, source_env, wait_until
from testbed.redis_server import RedisServer, redis_server_binary

__all__ = ["REPO", "TWISTD", "Daemon", "free_port", "get", "health", "source_env", "wait_until", "RedisServer",
           "redis_server_binary", "server_certificate"]  # fmt: skip
