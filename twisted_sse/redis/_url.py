"""Parse `--redis` URLs: redis://, rediss:// (TLS) and unix:// (pure; txredisapi parses none)."""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

from twisted_sse.core import RedisAddress

__all__ = ["parse_redis_url"]


def parse_redis_url(url: str) -> RedisAddress:
    """Parse `url`; raise ValueError with a plain reason when it isn't a usable Redis URL.

    redis://[[user]:password@]host[:port][/db], rediss://... (TLS, certificate verified),
    unix://[[user]:password@]/path/to/redis.sock[?db=N].
    """
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
        raise ValueError("use redis://host:port/db, rediss://host:port/db or unix:///path.sock")
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
