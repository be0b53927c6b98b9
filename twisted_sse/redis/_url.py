"""Parse `--redis` URLs: redis://, rediss:// (TLS), unix:// and redis+sentinel:// (pure; txredisapi parses none)."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from twisted_sse.core import RedisAddress

__all__ = ["parse_redis_url"]


def parse_redis_url(url: str) -> RedisAddress:
    """Parse `url`; raise ValueError with a plain reason when it isn't a usable Redis URL.

    redis://[[user]:password@]host[:port][/db], rediss://... (TLS, certificate verified),
    unix://[[user]:password@]/path/to/redis.sock[?db=N],
    redis+sentinel://[[user]:password@]host:26379[,host2:26379...]/SERVICE[/db] (the password is the master's).
    """
    if url.startswith("redis+sentinel://"):
        return _sentinel(url[len("redis+sentinel://") :])
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise ValueError(f"not a valid URL: {error}") from None
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    query = parse_qs(parts.query)
    if parts.scheme == "unix":
        if not parts.path:
            raise ValueError("unix:// needs a socket path, e.g. unix:///run/redis/redis.sock")
        return RedisAddress(
            unix_path=parts.path, db=_db(query.get("db", ["0"])[0]), username=username, password=password
        )
    if parts.scheme not in ("redis", "rediss"):
        raise ValueError(
            "use redis://host:port/db, rediss://host:port/db, unix:///path.sock or redis+sentinel://host:26379/SERVICE"
        )
    if not parts.hostname:
        raise ValueError("no host: use redis://host:port/db")
    path = parts.path.lstrip("/")
    db = _db(path) if path else _db(query.get("db", ["0"])[0])
    return RedisAddress(
        host=parts.hostname,
        port=port if port is not None else 6379,
        tls=parts.scheme == "rediss",
        db=db,
        username=username,
        password=password,
    )


def _db(text: str) -> int:
    if not text.isdigit():
        raise ValueError(f"database {text!r} is not a number")
    return int(text)


def _sentinel(rest: str) -> RedisAddress:
    """`[[user]:password@]host:port[,host:port...]/SERVICE[/db]`, after the scheme."""
    location, _, path = rest.partition("/")
    credentials, _, hosts = location.rpartition("@")
    username = password = None
    if credentials:
        user, colon, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    sentinels = tuple(_host_port(part) for part in hosts.split(",") if part)
    if not sentinels:
        raise ValueError("redis+sentinel:// needs at least one sentinel: redis+sentinel://host:26379/SERVICE")
    service, _, db = path.partition("/")
    if not service:
        raise ValueError("redis+sentinel:// needs the service name the sentinels watch: .../SERVICE[/db]")
    return RedisAddress(sentinels=sentinels, service=unquote(service), db=_db(db) if db else 0, username=username,
                        password=password)  # fmt: skip


def _host_port(text: str) -> tuple[str, int]:
    if text.startswith("["):
        host, _, port = text[1:].partition("]")
        port = port.removeprefix(":")
    else:
        host, _, port = text.rpartition(":") if ":" in text else (text, "", "")
    if not host:
        raise ValueError(f"sentinel {text!r}: no host")
    if port and not port.isdigit():
        raise ValueError(f"sentinel {text!r}: the port is not a number")
    number = int(port) if port else 26379
    if not 0 < number < 65536:
        raise ValueError(f"sentinel {text!r}: no such port")
    return host, number
