"""`twistd sse`: command-line options, and the hand-off to `SSEService`."""

from __future__ import annotations

import gc
import os
import re
import sys
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import IO, Any, TypeVar

from twisted.application.service import MultiService, Service
from twisted.internet import endpoints
from twisted.internet.testing import MemoryReactor
from twisted.logger import ILogObserver
from twisted.python import usage
from twisted.python.components import Componentized

from twisted_sse._capacity import RESERVED_FILES, raise_open_files_limit
from twisted_sse.core import LEVELS, JsonLines, Logger, Settings, set_level, valid_pattern
from twisted_sse.redis import parse_redis_url
from twisted_sse.web import TokenVerifier, check_cidrs

__all__ = ["Options", "makeService"]

_log = Logger()
_N = TypeVar("_N", int, float)
_DEFAULTS = Settings()
_ORIGIN = re.compile(r"https?://[^\s/?#]+")


_REPEATABLE = ("listen", "cors-origin", "trusted-proxy", "public")
_ALIASES: dict[str, tuple[str, ...]] = {"redis": ("SSE_REDIS_URL",)}
"""Older variable names that keep working."""
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off", "")


def environment_name(option: str) -> str:
    """The variable an option may come from: `max-queue` -> `SSE_MAX_QUEUE`."""
    return "SSE_" + option.upper().replace("-", "_")


class Options(usage.Options):
    synopsis = "[options]"
    longdesc = (
        "Stream publish/subscribe channels to browsers as Server-Sent Events: "
        "GET /events/{channel} streams, POST /events/{channel} publishes. "
        "Every option can also come from the environment: SSE_ and its name upper-cased with - as _ "
        "(--max-queue: SSE_MAX_QUEUE); repeatable ones take several values separated by spaces, "
        "flags 1/0 or true/false; SSE_REDIS_URL works for --redis. The command line wins."
    )
    optFlags = [
        ["access-log", None, "Log one line per HTTP request (streams are logged either way)."],
        ["jwt-query", None, "Also take a subscriber's token from ?token= (it leaks into proxy logs and Referer)."],
        ["metrics", None, "Serve Prometheus metrics at /metrics next to the streams."],
        ["demo", None, "Serve a demo page at /: subscribe, publish, watch reconnects, resumes and sse-lost."],
    ]
    optParameters = [
        ["prefix", None, _DEFAULTS.prefix, "Redis pub/sub channel prefix: channel news is <prefix>news."],
        ["heartbeat", None, str(_DEFAULTS.heartbeat), "Seconds between keep-alive comments; 0 = off."],
        ["retry", None, str(_DEFAULTS.retry_ms), "Reconnect delay sent to clients as retry:, in ms."],
        [
            "publish-token",
            None,
            None,
            "Bearer token that HTTP publishing requires (default: env SSE_PUBLISH_TOKEN, "
            "else one generated at start and logged).",
        ],
        ["max-message-size", None, str(_DEFAULTS.max_message_size), "Largest published body, in bytes."],
        ["history", None, str(_DEFAULTS.history), "Events kept per channel for resuming clients; 0 = none."],
        ["max-batch", None, str(_DEFAULTS.max_batch), "Events one batch publish (POST /events, ndjson) may hold."],
        [
            "coalesce",
            None,
            str(int(_DEFAULTS.coalesce * 1000)),
            "Milliseconds messages are held to go out to each client in one write; 0 = per reactor turn.",
        ],
        ["history-ttl", None, "0", "Seconds an event stays in history; 0 = no age bound."],
        ["max-queue", None, str(_DEFAULTS.max_queue), "Bytes held for one slow client before it is cut."],
        [
            "max-connections",
            None,
            "0",
            "Streams open at once; past it a stream gets retry: and a close. 0 = what the open-files limit allows.",
        ],
        ["header-timeout", None, str(_DEFAULTS.header_timeout), "Seconds a client has to send its request headers."],
        [
            "max-pending",
            None,
            "0",
            "Connections that are not streams (yet) held at once; past it the oldest is cut. "
            "0 = a tenth of what the open-files limit allows.",
        ],
        ["body-timeout", None, str(_DEFAULTS.body_timeout), "Seconds a request body has to arrive after its headers."],
        ["log-level", None, "info", "Least important twisted-sse lines logged: debug, info, warn or error."],
        ["log-format", None, "text", "text, or json: one JSON object per line (time, level, message, fields)."],
        ["drain-timeout", None, str(_DEFAULTS.drain_timeout), "Seconds shutdown waits for streams to close."],
        [
            "redis-timeout",
            None,
            str(_DEFAULTS.redis_timeout),
            "Seconds a Redis command may take, and a silent Redis connection may last before it is cut.",
        ],
        [
            "publish-replicas",
            None,
            "0",
            "Replicas that must confirm a publish (WAIT, bounded by --redis-timeout) before it is answered 200; "
            'unconfirmed: 202 with "replicated": false. 0 = the master\'s answer is enough.',
        ],
        [
            "max-streams-per-ip",
            None,
            str(_DEFAULTS.max_streams_per_ip),
            "Streams one client address (IPv6: one /64) may have open in this process; 0 = no limit.",
        ],
        [
            "max-channels-per-ip",
            None,
            str(_DEFAULTS.max_channels_per_ip),
            "Channels one address's open streams may hold together in this process; 0 = no limit.",
        ],
        [
            "max-resumes",
            None,
            str(_DEFAULTS.max_resumes),
            "History reads (a page each) at once in this process; resuming streams wait their turn for each page.",
        ],
        [
            "max-stream-age",
            None,
            str(_DEFAULTS.max_stream_age),
            "Seconds a stream lives (10% jitter) before it ends with retry: and the client resumes; 0 = no bound.",
        ],
        [
            "jwt-key",
            None,
            None,
            "Tokens decide who may subscribe and publish: an HMAC secret (32+ bytes), or @/path/key.pem with a PEM "
            "public key (RSA, EC, Ed25519) (default: env SSE_JWT_KEY, else every channel is public).",
        ],
        ["jwt-algorithms", None, None, "Comma-separated algorithms to accept, narrowing what the key allows."],
        ["jwt-audience", None, None, "The aud claim tokens must carry."],
        ["jwt-issuer", None, None, "The iss claim tokens must carry."],
        ["jwt-cookie", None, _DEFAULTS.jwt_cookie, "Cookie that may carry a subscriber's token."],
        [
            "auth-url",
            None,
            None,
            "Ask the application at this http(s) URL whether a stream of private channels may open "
            "(instead of --jwt-key); 2xx allows, 401/403/3xx deny.",
        ],
        ["auth-timeout", None, str(_DEFAULTS.auth_timeout), "Seconds the --auth-url answer may take."],
        ["auth-cache", None, str(_DEFAULTS.auth_cache), "Seconds an allowed --auth-url answer is reused."],
        ["workers", None, "1", "Processes serving the listeners (auto: one per core); above 1 needs --redis."],
        ["worker", None, None, "(set by the --workers parent for each worker: its number)"],
        ["ready-fd", None, None, "(set by the --workers parent: where a worker says it is serving)"],
        [
            "admin-listen",
            None,
            None,
            "An internal endpoint (tcp:9100:interface=127.0.0.1) for /metrics and /healthz with its counts; "
            "the public /healthz then shows none.",
        ],
        ["sentinel-password", None, None, "With a redis+sentinel:// URL: the password the sentinels ask for."],
        [
            "redis",
            None,
            None,
            "Redis URL: redis://[user:password@]host:port/db, rediss://... (TLS), unix:///path.sock "
            "(default: env SSE_REDIS_URL, else the in-process broker: one process, no Redis).",
        ],
    ]

    def __init__(self) -> None:
        super().__init__()
        self["inherit"] = []
        self["listen"] = []
        self["cors-origin"] = []
        self["trusted-proxy"] = []
        self["public"] = []

    def opt_listen(self, description: str) -> None:
        """Endpoint to serve HTTP on: tcp:8080:interface=127.0.0.1, unix:/run/sse.sock, ssl:8443:privateKey=key.pem:certKey=cert.pem, ... Repeatable. [default: tcp:8080]"""  # noqa: E501
        self["listen"].append(description)

    def opt_inherit(self, fd: str) -> None:
        """(set by the --workers parent: the descriptor of each --listen socket it bound, in order)"""
        self["inherit"].append(fd)

    def opt_cors_origin(self, origin: str) -> None:
        """Origin allowed to use the server from a browser (https://app.example), or * for any. Repeatable. [default: none, no CORS headers]"""  # noqa: E501
        self["cors-origin"].append(origin)

    def opt_trusted_proxy(self, cidr: str) -> None:
        """Address or network (10.0.0.0/8, 127.0.0.1) of a reverse proxy whose X-Forwarded-For names the client. Repeatable. A peer on a UNIX socket is always trusted. [default: none]"""  # noqa: E501
        self["trusted-proxy"].append(cidr)

    def opt_public(self, pattern: str) -> None:
        """With --jwt-key: channels anyone may subscribe to without a token (news, status.*). Repeatable. [default: none]"""  # noqa: E501
        self["public"].append(pattern)

    def parseOptions(self, options: list[str] | None = None) -> None:
        self._from_environment(os.environ)
        super().parseOptions(options)

    def _from_environment(self, environ: Mapping[str, str]) -> None:
        """Options from SSE_* variables, before the command line (which then wins). Unknown SSE_* are ignored."""
        self._environment: dict[str, tuple[str, str]] = {}
        """option -> (variable, value) of what came from the environment."""
        for name in (str(entry[0]) for entry in self.optParameters):
            for variable in (environment_name(name), *_ALIASES.get(name, ())):
                if environ.get(variable):
                    self[name] = environ[variable]
                    self._environment[name] = (variable, environ[variable])
                    break
        for name in (str(entry[0]) for entry in self.optFlags):
            variable = environment_name(name)
            if variable in environ:
                value = environ[variable].strip().lower()
                if value not in _TRUE + _FALSE:
                    raise usage.UsageError(f"{variable}={environ[variable]!r}: give 1 or 0 (true or false)")
                self[name] = 1 if value in _TRUE else 0
                self._environment[name] = (variable, environ[variable])
        self._environment_lists = {
            name: (environment_name(name), environ[environment_name(name)].split())
            for name in _REPEATABLE
            if environ.get(environment_name(name), "").strip()
        }

    def postOptions(self) -> None:
        for name, (variable, values) in self._environment_lists.items():
            if not self[name]:  # the command line wins
                self[name] = list(values)
                self._environment[name] = (variable, " ".join(values))
        try:
            self._check()
        except usage.UsageError as error:
            raise usage.UsageError(self._blame(str(error))) from None

    def _blame(self, message: str) -> str:
        """A usage error about a value that came from the environment names its variable."""
        for name, (variable, value) in self._environment.items():
            current = self[name]
            now = " ".join(current) if isinstance(current, list) else str(current)
            if message.startswith(f"--{name}") and now == value:
                return f"{message} (from {variable})"
        return message

    def _check(self) -> None:
        listen = tuple(self["listen"]) or _DEFAULTS.listen
        for description in listen:
            try:
                endpoints.serverFromString(MemoryReactor(), description)
            except Exception as error:  # endpoint parsers raise many kinds
                why = str(error)
                if description.startswith("systemd:"):
                    why = f"no such socket was passed ({why!r}): start it from a systemd socket unit"
                raise usage.UsageError(f"--listen {description!r}: {why}") from None
        if self["admin-listen"] is not None:
            try:
                endpoints.serverFromString(MemoryReactor(), self["admin-listen"])
            except Exception as error:  # endpoint parsers raise many kinds
                raise usage.UsageError(f"--admin-listen {self['admin-listen']!r}: {error}") from None
        for origin in self["cors-origin"]:
            if origin != "*" and not _ORIGIN.fullmatch(origin):
                raise usage.UsageError(f"--cors-origin {origin!r}: give * or an origin like https://app.example")
        token = self["publish-token"] or None
        if token is not None and (not token.isprintable() or " " in token):
            raise usage.UsageError("--publish-token: use printable characters without spaces")
        try:
            check_cidrs(self["trusted-proxy"])
        except ValueError as error:
            raise usage.UsageError(f"--trusted-proxy: {error}") from None
        jwt_key = self["jwt-key"] or None
        algorithms = tuple(a.strip() for a in (self["jwt-algorithms"] or "").split(",") if a.strip())
        if jwt_key is not None:
            try:
                TokenVerifier(jwt_key, algorithms, self["jwt-audience"], self["jwt-issuer"])
            except ValueError as error:
                option = "--jwt-algorithms" if "can't verify" in str(error) else "--jwt-key"
                raise usage.UsageError(f"{option}: {error}") from None
        auth_url = self["auth-url"]
        if auth_url is not None and not re.fullmatch(r"https?://[^\s]+", auth_url):
            raise usage.UsageError(f"--auth-url {auth_url!r}: give an http:// or https:// URL")
        if auth_url is not None and jwt_key is not None:
            raise usage.UsageError("--auth-url and --jwt-key: choose one way to authorize subscribers")
        if self["public"] and jwt_key is None and auth_url is None:
            raise usage.UsageError("--public needs --jwt-key or --auth-url")
        if jwt_key is None and (algorithms or self["jwt-audience"] or self["jwt-issuer"] or self["jwt-query"]):
            raise usage.UsageError("--jwt-algorithms, --jwt-audience, --jwt-issuer and --jwt-query need --jwt-key")
        for pattern in self["public"]:
            if not valid_pattern(pattern):
                raise usage.UsageError(f"--public {pattern!r}: a channel name, * for any run of characters")
        if not re.fullmatch(r"[A-Za-z0-9_.-]{1,64}", self["jwt-cookie"]):
            raise usage.UsageError(f"--jwt-cookie {self['jwt-cookie']!r}: a cookie name (letters, digits, _ . -)")
        workers = _workers(self["workers"])
        worker = None if self["worker"] is None else _number(self, "worker", int, 0)
        inherited = tuple(_whole(fd, "--inherit") for fd in self["inherit"])
        if inherited and len(inherited) != len(listen):
            raise usage.UsageError("--inherit: one descriptor per --listen")
        if workers > 1 and worker is None:
            if not (self["redis"] or None):
                raise usage.UsageError(
                    "--workers above 1 needs --redis: with the in-process broker workers can't share events"
                )
            for description in listen:
                if description.split(":", 1)[0] not in ("tcp", "ssl", "unix", "systemd"):
                    raise usage.UsageError(f"--listen {description!r}: --workers serves tcp, ssl, unix and systemd")
        if self["log-format"] not in ("text", "json"):
            raise usage.UsageError(f"--log-format {self['log-format']!r}: use text or json")
        if self["log-level"] not in LEVELS:
            raise usage.UsageError(f"--log-level {self['log-level']!r}: use one of {', '.join(LEVELS)}")
        redis_url = self["redis"] or None
        try:
            redis = parse_redis_url(redis_url) if redis_url is not None else None
        except ValueError as error:
            raise usage.UsageError(f"--redis: {error}") from None
        if self["sentinel-password"] is not None:
            if redis is None or not redis.sentinels:
                raise usage.UsageError("--sentinel-password needs a redis+sentinel:// URL")
            redis = replace(redis, sentinel_password=self["sentinel-password"])
        publish_replicas = _number(self, "publish-replicas", int, 0)
        if publish_replicas and redis is None:
            raise usage.UsageError("--publish-replicas needs --redis: the in-process broker has no replicas")
        self.settings = Settings(
            redis=redis,
            listen=listen,
            prefix=self["prefix"],
            heartbeat=_number(self, "heartbeat", float, 0.0),
            retry_ms=_number(self, "retry", int, 0),
            publish_token=token,
            cors_origins=tuple(self["cors-origin"]),
            trusted_proxies=tuple(self["trusted-proxy"]),
            max_stream_age=_number(self, "max-stream-age", float, 0.0),
            max_resumes=_number(self, "max-resumes", int, 1),
            metrics=bool(self["metrics"]),
            workers=workers,
            worker=worker,
            inherited=inherited,
            demo=bool(self["demo"]),
            admin_listen=self["admin-listen"],
            max_streams_per_ip=_number(self, "max-streams-per-ip", int, 0),
            max_channels_per_ip=_number(self, "max-channels-per-ip", int, 0),
            jwt_key=jwt_key,
            jwt_algorithms=algorithms,
            jwt_audience=self["jwt-audience"],
            jwt_issuer=self["jwt-issuer"],
            jwt_cookie=self["jwt-cookie"],
            jwt_query=bool(self["jwt-query"]),
            public=tuple(self["public"]),
            auth_url=auth_url,
            auth_timeout=_number(self, "auth-timeout", float, 0.1),
            auth_cache=_number(self, "auth-cache", float, 0.0),
            max_message_size=_number(self, "max-message-size", int, 1),
            history=_number(self, "history", int, 0),
            history_ttl=_number(self, "history-ttl", float, 0.0),
            coalesce=_number(self, "coalesce", float, 0.0) / 1000,
            access_log=bool(self["access-log"]),
            max_queue=_number(self, "max-queue", int, 1024),
            max_connections=_number(self, "max-connections", int, 0),
            header_timeout=_number(self, "header-timeout", float, 0.1),
            body_timeout=_number(self, "body-timeout", float, 0.1),
            max_pending=_number(self, "max-pending", int, 0),
            drain_timeout=_number(self, "drain-timeout", float, 0.0),
            redis_timeout=_number(self, "redis-timeout", float, 0.1),
            publish_replicas=publish_replicas,
            max_batch=_number(self, "max-batch", int, 1),
        )


def _workers(raw: str) -> int:
    if raw == "auto":
        return os.cpu_count() or 1
    value = _whole(raw, "--workers")
    if value < 1:
        raise usage.UsageError(f"--workers {raw!r}: at least 1, or auto")
    return value


def _whole(raw: str, option: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise usage.UsageError(f"{option} {raw!r}: not a whole number") from None


def _number(options: usage.Options, name: str, kind: Callable[[str], _N], minimum: _N) -> _N:
    raw = options[name]
    try:
        value = kind(raw)
    except ValueError:
        what = "whole number" if kind is int else "number"
        raise usage.UsageError(f"--{name} {raw!r}: not a {what}") from None
    if not minimum <= value < float("inf"):
        raise usage.UsageError(f"--{name} {raw!r}: must be at least {minimum}")
    return value


def makeService(options: Options) -> MultiService:
    """Build the daemon's service from parsed options."""
    from twisted_sse._service import SSEService
    from twisted_sse._systemd import Notifier

    set_level(options["log-level"])
    limit = raise_open_files_limit()
    room = max(limit - RESERVED_FILES, 1)
    settings = options.settings
    pending = max(min(64, room // 2), room // 10, 1)  # a tenth of the room for connections that are not streams
    if not settings.max_pending:
        settings = replace(settings, max_pending=pending)
    if not settings.max_connections:
        settings = replace(settings, max_connections=max(room - pending, 1))
    _log.info(
        "open-files limit {limit}: room for about {room} connections; serving at most {most} streams "
        "and {pending} connections that are not streams",
        limit=limit,
        room=room,
        most=settings.max_connections,
        pending=settings.max_pending,
    )
    _tune_garbage_collector()
    daemon = _Daemon(_json_log_file(options.parent) if options["log-format"] == "json" else None)
    if settings.workers > 1 and settings.worker is None:
        from twisted.internet import reactor

        from twisted_sse._workers import Workers

        logfile = options.parent.get("logfile") if options.parent is not None else None
        workers = Workers(reactor, settings.workers, settings.listen, sys.argv, logfile, settings.drain_timeout,
                          settings.admin_listen)  # fmt: skip
        workers.setServiceParent(daemon)
        return daemon
    service = SSEService(settings)
    service.setServiceParent(daemon)
    if options["ready-fd"] is not None:
        _Ready(int(options["ready-fd"])).setServiceParent(daemon)
    notifier = Notifier(os.environ, service.reactor)
    if notifier.enabled:  # under systemd: started after the service (READY once it listens), stopped before it
        notifier.setServiceParent(daemon)
    return daemon


class _Daemon(MultiService):
    """What `twistd sse` runs. With --log-format json it hands twistd a JSON log observer: twistd starts logging
    after it has put this service into its application, with the application's `ILogObserver` if one is set."""

    def __init__(self, json_out: IO[str] | None) -> None:
        super().__init__()
        self._json_out = json_out

    def setServiceParent(self, parent: Any) -> Any:
        if self._json_out is not None and isinstance(parent, Componentized):
            parent.setComponent(ILogObserver, JsonLines(self._json_out))
        return super().setServiceParent(parent)


class _Ready(Service):
    """A --workers worker tells its parent, on the pipe it was given, once it serves."""

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def startService(self) -> None:
        super().startService()
        try:
            os.write(self._fd, b"ready\n")
            os.close(self._fd)
        except OSError:
            pass  # the parent is gone: it will not ask


def _json_log_file(twistd_options: Any) -> IO[str]:
    """Where twistd would have logged: standard output with -n (or --logfile -), else --logfile or twistd.log."""
    logfile = twistd_options.get("logfile") if twistd_options is not None else "-"
    if logfile == "-" or (not logfile and twistd_options.get("nodaemon")):
        return sys.stdout
    return open(logfile or "twistd.log", "a", encoding="utf-8")  # noqa: SIM115 (open for the process's life)


def _tune_garbage_collector() -> None:
    """Fewer, cheaper collections for a long-running daemon.

    What is loaded at start (modules, the service) is frozen out of every collection, and
    young collections run every 20,000 allocations instead of 700: per-message objects
    form no cycles, so they are freed by reference counting anyway, and with thousands
    of streams open each collection that does run is what stalls deliveries.
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
