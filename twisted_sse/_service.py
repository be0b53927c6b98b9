"""The service that `twistd sse` runs, and the entry point for embedding applications.

    service = SSEService(Settings(listen=("tcp:8080",)))
    service.setServiceParent(application)        # or your own MultiService
    service.publish("news", b"hello")            # publish in-process

or mount `service.resource` under your own `Site` with `Settings(listen=())`.
"""

from __future__ import annotations

import secrets
from typing import Any

from twisted.application import strports
from twisted.application.service import IService, MultiService, Service
from twisted.internet.defer import Deferred, gatherResults, maybeDeferred
from twisted.web.resource import Resource
from twisted.web.server import Site

from twisted_sse._inherited import InheritedPort
from twisted_sse.core import Broker, Counters, Hub, Logger, MemoryBroker, Settings, checked_publication
from twisted_sse.web import (
    AccessPolicy,
    AuthCallback,
    Heartbeat,
    Lifetimes,
    MetricsPage,
    SSECollector,
    SSEResource,
    SSESite,
    TokenVerifier,
    add_demo,
    make_agent,
)

__all__ = ["SSEService"]

_log = Logger()


class SSEService(MultiService):
    """Hub, broker, heartbeat and HTTP listeners of one twisted-sse process.

    `resource` is the HTTP surface (mount it in a `Site` of your own), `hub` reports
    what is open, `publish` sends an event from this process. `reactor` defaults to the
    global one; pass a `MemoryReactorClock` in tests.
    """

    def __init__(self, settings: Settings | None = None, reactor: Any = None, broker: Broker | None = None) -> None:
        super().__init__()
        if settings is None:
            settings = Settings()
        if reactor is None:
            from twisted.internet import reactor as _global

            reactor = _global
        self.reactor = reactor
        """The reactor (or a `Clock` in tests) the service runs on."""
        self.settings = settings
        self.broker: Broker = broker if broker is not None else _default_broker(settings, reactor)
        if IService.providedBy(self.broker):
            self.broker.setServiceParent(self)
        self.counters = Counters()
        self.hub = Hub(self.broker, reactor, settings.coalesce, self.counters)
        self._token_generated = settings.publish_token is None
        self.publish_token = settings.publish_token or secrets.token_urlsafe(24)
        lifetimes = Lifetimes(reactor, lambda: settings.retry_ms)
        lifetimes.setServiceParent(self)
        self.resource = SSEResource(self.hub, self.broker, settings, reactor, self.publish_token,
                                    access=_access_policy(settings, reactor), lifetimes=lifetimes)  # fmt: skip
        Heartbeat(self.hub.heartbeat, settings.heartbeat, reactor).setServiceParent(self)
        self.site = SSESite(
            self.resource,
            settings.max_message_size,
            settings.header_timeout,
            reactor,
            settings.access_log,
            settings.body_timeout,
            self.resource.screen,
            self.counters,
            self.resource.whole_post,
        )
        self.site.max_pending = settings.max_pending
        self.site.streams_open = lambda: self.hub.streams_open
        self._listening = MultiService()
        for n, description in enumerate(settings.listen):
            listener: Service
            if n < len(settings.inherited):  # a --workers worker: the parent bound it
                listener = InheritedPort(reactor, settings.inherited[n], description, self.site)
            else:
                listener = strports.service(description, self.site, reactor=reactor)
            listener.setServiceParent(self._listening)
        self._serve_metrics(settings, reactor)
        if settings.demo:
            add_demo(self.resource)
        self._listening.setServiceParent(self)

    def _serve_metrics(self, settings: Settings, reactor: Any) -> None:
        """--metrics: /metrics next to the streams; --admin-listen: /metrics and /healthz with its counts on an
        internal listener of their own, and the public /healthz without counts."""
        if not (settings.metrics or settings.admin_listen):
            return
        page = MetricsPage(SSECollector(self.hub, self.broker, self.counters, settings.worker))
        if settings.admin_listen is None:
            self.resource.putChild(b"metrics", page)
            return
        admin = Resource()
        admin.putChild(b"metrics", page)
        admin.putChild(b"healthz", self.resource.health(counters=True))
        self.resource.putChild(b"healthz", self.resource.health(counters=False))
        admin_site = Site(admin, reactor=reactor)
        admin_site.displayTracebacks = False
        strports.service(settings.admin_listen, admin_site, reactor=reactor).setServiceParent(self._listening)

    def publish(self, channel: str, data: bytes | str, event: str | None = None) -> Deferred[str | None]:
        """Publish one event to `channel`; fires with its id (None when it has none).

        Raises ValueError at once for an invalid channel name or event type.
        """
        publication = (channel, checked_publication(channel, data, event), event)
        return self.broker.publish([publication]).addCallback(lambda receipt: receipt.ids[0])

    def startService(self) -> None:
        _log.info(
            "twisted-sse on {listen} with the {broker}",
            listen=", ".join(self.settings.listen) or "(no listener: mounted by the application)",
            broker=_describe(self.broker),
        )
        if self._token_generated:
            _log.info(
                "no --publish-token given; generated one for this run. Publish with:\n"
                "  curl -X POST -H 'Authorization: Bearer {token}' --data-binary hello {url}",
                token=self.publish_token,
                url=_example_url(self.settings.listen),
            )
        if "*" in self.settings.cors_origins:
            _log.warn(
                "--cors-origin *: any origin may read public streams, but never with credentials (browsers "
                "forbid it): list the application's origins for EventSource withCredentials and cookie tokens"
            )
        super().startService()

    def stopService(self) -> Deferred[None]:
        """Stop accepting, end every stream with a jittered retry hint, then release the broker.

        Bounded by `drain_timeout`: connections still open by then are cut.
        """
        Service.stopService(self)
        stopped = maybeDeferred(self._listening.stopService)
        stopped.addCallback(lambda _: self.resource.drain())
        stopped.addCallback(lambda _: self.site.close_connections(self.settings.drain_timeout))
        others = [child for child in reversed(list(self)) if child is not self._listening]
        stopped.addCallback(lambda _: gatherResults([maybeDeferred(child.stopService) for child in others]))
        return stopped.addCallback(lambda _: None)


AUTH_CONNECTIONS = 20
"""Authorization callbacks in flight at once (and connections kept to the application)."""


def _access_policy(settings: Settings, reactor: Any) -> AccessPolicy:
    """Who may listen and publish: everyone listens without a JWT key; with one, tokens decide."""
    if settings.auth_url is not None:
        agent = make_agent(reactor, AUTH_CONNECTIONS)
        callback = AuthCallback(settings.auth_url, agent, reactor, settings.auth_timeout, settings.auth_cache,
                                AUTH_CONNECTIONS)  # fmt: skip
        return AccessPolicy(None, settings.public, callback=callback)
    if settings.jwt_key is None:
        return AccessPolicy(None)
    verifier = TokenVerifier(settings.jwt_key, settings.jwt_algorithms, settings.jwt_audience, settings.jwt_issuer)
    return AccessPolicy(verifier, settings.public, settings.jwt_cookie, settings.jwt_query)


def _describe(broker: Broker) -> str:
    address = getattr(broker, "address", None)
    if address is not None:
        return f"Redis broker at {address.describe()}"
    return "in-process broker (no Redis)" if broker.kind == "memory" else f"{broker.kind} broker"


def _default_broker(settings: Settings, reactor: Any) -> Broker:
    """Redis when the settings name one, else the in-process broker."""
    if settings.redis is None:
        return MemoryBroker(reactor, settings.history, settings.history_ttl)
    from twisted_sse.redis import RedisBroker  # importing txredisapi installs a reactor

    return RedisBroker(
        settings.redis,
        settings.prefix,
        reactor,
        settings.history,
        settings.history_ttl,
        settings.redis_timeout,
        settings.publish_replicas,
    )


def _example_url(listen: tuple[str, ...]) -> str:
    """A URL for the log's curl example, taken from the first TCP or SSL listener."""
    for description in listen:
        kind, _, rest = description.partition(":")
        port = rest.split(":")[0].removeprefix("port=")
        if kind in ("tcp", "tcp6", "ssl") and port.isdigit():
            scheme = "https" if kind == "ssl" else "http"
            return f"{scheme}://127.0.0.1:{port}/events/news"
    return "http://HOST:PORT/events/news"
