"""Everything a twisted-sse service can be told, with its defaults, in one value (plain data: every layer reads it)."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Settings", "RedisAddress"]


@dataclass(frozen=True)
class RedisAddress:
    """Where Redis is and how to log in: exactly one of `host`, `unix_path` and `sentinels` is set (with
    `sentinels`, `service` names the master they watch; the password is the master's)."""

    host: str | None = None
    port: int = 6379
    unix_path: str | None = None
    tls: bool = False
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinels: tuple[tuple[str, int], ...] = ()
    service: str | None = None
    sentinel_password: str | None = None

    def describe(self) -> str:
        """The address without its password, for logs."""
        user = f"{self.username}@" if self.username else ""
        if self.sentinels:
            hosts = ",".join(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in self.sentinels)
            return f"redis+sentinel://{user}{hosts}/{self.service}/{self.db}"
        if self.unix_path is not None:
            return f"unix://{user}{self.unix_path}?db={self.db}"
        scheme = "rediss" if self.tls else "redis"
        host = f"[{self.host}]" if self.host and ":" in self.host else self.host
        return f"{scheme}://{user}{host}:{self.port}/{self.db}"


@dataclass(frozen=True)
class Settings:
    """The configuration of one service; `twistd sse` fills it from the command line."""

    listen: tuple[str, ...] = ("tcp:8080",)
    """Twisted server endpoint strings to serve HTTP on; empty to serve none (embedding)."""
    inherited: tuple[int, ...] = ()
    """A --workers worker: the descriptors of the sockets its parent bound for `listen`, in its order."""
    worker: int | None = None
    """A --workers worker: its number (shown by /healthz); None: the process serves alone."""
    workers: int = 1
    """Processes serving the listeners (`twistd sse --workers`); the service itself is one of them."""
    prefix: str = "sse:"
    """Prepended to a channel name to make its Redis pub/sub channel."""
    heartbeat: float = 15.0
    """Seconds between keep-alive comments on every stream; 0 turns them off."""
    retry_ms: int = 3000
    """Sent to clients as `retry:`: how long to wait before reconnecting."""
    publish_token: str | None = None
    """Bearer token for HTTP publishing; None: one is generated at start and logged."""
    cors_origins: tuple[str, ...] = ()
    """Origins allowed by CORS (`*` for any); empty: no CORS headers."""
    max_message_size: int = 1024 * 1024
    """Largest body an HTTP publish may have, in bytes."""
    max_queue: int = 1024 * 1024
    """Bytes held for one slow client before it is disconnected."""
    max_connections: int = 0
    """Streams open at once; past it a stream gets retry: and a close. 0: no limit."""
    max_pending: int = 0
    """Connections that are not streams held at once (past it the oldest is cut); 0: no bound.
    `twistd sse` sets it from the open-files limit when not given."""
    body_timeout: float = 10.0
    """Seconds a request body has to arrive once its headers are in."""
    header_timeout: float = 10.0
    """Seconds a client has to send complete request headers."""
    drain_timeout: float = 5.0
    """Seconds shutdown waits for streams and connections to close before cutting them."""
    redis_timeout: float = 5.0
    """Seconds a Redis command may take, and a silent subscriber connection may last."""
    max_batch: int = 1000
    """Events one batch publish (POST /events, ndjson) may hold; its body is bounded by max_message_size."""
    publish_replicas: int = 0
    """Replicas that must confirm a publish (WAIT, bounded by redis_timeout) before it is answered 200;
    unconfirmed in time: 202 with "replicated": false. 0: answered once the master has it."""
    history: int = 1000
    """Events kept per channel for resuming clients (exactly; 0 keeps none)."""
    history_ttl: float = 0
    """Seconds an event stays in history; 0: no age bound, only `history`."""
    coalesce: float = 0.010
    """Seconds messages are held to go out together (fewer, larger writes); 0: per reactor turn."""
    trusted_proxies: tuple[str, ...] = ()
    """Networks (CIDR) of reverse proxies whose X-Forwarded-For names the client; a UNIX-socket peer is one."""
    max_streams_per_ip: int = 100
    """Streams one client address (an IPv6 /64) may have open in this process; 0: no limit."""
    max_channels_per_ip: int = 1024
    """Channels one address's open streams may hold together in this process; 0: no limit."""
    max_resumes: int = 8
    """History reads (a page each) at once in this process; resuming streams wait their turn for each page."""
    resume_page_events: int = 256
    """Events a resuming stream reads per page, across its channels (the next page once it took this one)."""
    resume_window: float = 0.005
    """Seconds a channel's history read waits for other resumes of the channel to share it (reconnect storms)."""
    resume_page_bytes: int = 256 * 1024
    """Bytes of event data a resuming stream reads per page (at least one event of each channel it reads)."""
    max_stream_age: float = 3600.0
    """Seconds a stream lives (jittered by 10% either way) before it ends with retry: and resumes; 0: no bound."""
    jwt_key: str | None = None
    """HMAC secret, or `@/path/key.pem` with a PEM public key; None: every channel is public."""
    jwt_algorithms: tuple[str, ...] = ()
    """Narrows the algorithms the key accepts; empty: all of the key's family."""
    jwt_audience: str | None = None
    """The `aud` tokens must carry; None: not checked."""
    jwt_issuer: str | None = None
    """The `iss` tokens must carry; None: not checked."""
    jwt_cookie: str = "sse_token"
    """The cookie a subscriber's token may come in."""
    jwt_query: bool = False
    """Accept a subscriber's token as `?token=` (it leaks into logs and Referer headers)."""
    auth_url: str | None = None
    """The application's authorization URL, asked for every stream of private channels (instead of a JWT key)."""
    auth_timeout: float = 5.0
    """Seconds the authorization callback may take; past them the stream gets retry:, not a denial."""
    auth_cache: float = 10.0
    """Seconds an allowed answer of the callback is reused for the same credentials and channels."""
    public: tuple[str, ...] = ()
    """With a JWT key: channel patterns anyone may subscribe to without a token."""
    demo: bool = False
    """Serve the demo page at / (subscribe, publish, watch reconnects and resumes)."""
    metrics: bool = False
    """Serve Prometheus metrics at /metrics next to the streams."""
    admin_listen: str | None = None
    """An internal endpoint for /metrics and /healthz with its counts (the public /healthz then has none)."""
    access_log: bool = False
    """Log one line per HTTP request (streams are logged when they open and close either way)."""
    redis: RedisAddress | None = None
    """Where Redis is; None: the in-process broker (one process, no Redis)."""
