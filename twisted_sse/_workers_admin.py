"""The --workers parent's `--admin-listen`: every worker's metrics in one scrape, and one health answer.

Each worker serves its own `/metrics` and `/healthz` on a UNIX socket of its own (its
`--admin-listen`, in a directory only this parent uses). When Prometheus scrapes the
parent, it asks every worker, labels each series with `worker`, and answers with all of
them (sum them with `sum without (worker) (...)`): the equivalent of prometheus_client's
multiprocess mode without files shared between processes. `/healthz` is 200 only while
every worker answers 200.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from twisted.internet.defer import Deferred, gatherResults
from twisted.internet.endpoints import UNIXClientEndpoint
from twisted.web.client import Agent, readBody
from twisted.web.iweb import IAgentEndpointFactory
from twisted.web.resource import Resource
from twisted.web.server import NOT_DONE_YET, Request
from zope.interface import implementer

__all__ = ["admin_root"]


@implementer(IAgentEndpointFactory)
class _Socket:
    def __init__(self, reactor: Any, path: str) -> None:
        self._reactor = reactor
        self._path = path

    def endpointForURI(self, uri: Any) -> UNIXClientEndpoint:
        return UNIXClientEndpoint(self._reactor, self._path, timeout=5)


def _ask(reactor: Any, path: str, page: bytes) -> Deferred[tuple[int, bytes]]:
    """GET `page` from the worker listening on `path`: (status, body); (0, reason) when it can't answer."""
    agent = Agent.usingEndpointFactory(reactor, _Socket(reactor, path))
    answered: Deferred[Any] = agent.request(b"GET", b"http://worker" + page)
    answered.addCallback(lambda response: readBody(response).addCallback(lambda body: (response.code, body)))
    answered.addErrback(lambda failure: (0, failure.getErrorMessage().encode()))
    answered.addTimeout(5, reactor)
    answered.addErrback(lambda failure: (0, b"no answer"))
    return answered


class _Labelled(Collector):
    def __init__(self, families: list[Metric]) -> None:
        self._families = families

    def collect(self) -> Iterator[Metric]:
        return iter(self._families)


def _merge(answers: list[tuple[int, bytes]]) -> bytes:
    merged: dict[str, Metric] = {}
    for worker, (status, body) in enumerate(answers):
        if status != 200:
            continue
        for family in text_string_to_metric_families(body.decode("utf-8")):
            into = merged.setdefault(family.name, Metric(family.name, family.documentation, family.type))
            for sample in family.samples:
                into.add_sample(sample.name, {**sample.labels, "worker": str(worker)}, sample.value)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Labelled(list(merged.values())))
    return generate_latest(registry)


class _Aggregate(Resource):
    isLeaf = True

    def __init__(self, reactor: Any, sockets: list[str], page: bytes) -> None:
        super().__init__()
        self._reactor = reactor
        self._sockets = sockets
        self._page = page

    def render_GET(self, request: Request) -> int:
        gone: list[object] = []
        request.notifyFinish().addBoth(gone.append)
        asked = gatherResults([_ask(self._reactor, path, self._page) for path in self._sockets])
        asked.addCallback(self._answer, request, gone)
        return NOT_DONE_YET

    def _answer(self, answers: list[tuple[int, bytes]], request: Request, gone: list[object]) -> None:
        request.setHeader(b"cache-control", b"no-cache")
        if self._page == b"/metrics":
            request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
            body = _merge(answers)
        else:
            workers = {}
            for worker, (status, text) in enumerate(answers):
                workers[str(worker)] = json.loads(text) if status in (200, 503) else {"status": "down"}
            healthy = all(status == 200 for status, _ in answers)
            request.setResponseCode(200 if healthy else 503)
            request.setHeader(b"content-type", b"application/json")
            body = json.dumps({"status": "ok" if healthy else "degraded", "workers": workers}).encode() + b"\n"
        if not gone:
            request.write(body)
            request.finish()


def admin_root(reactor: Any, sockets: list[str]) -> Resource:
    """`/metrics` and `/healthz` of all the workers listening on `sockets` (worker N on the Nth)."""
    root = Resource()
    root.putChild(b"metrics", _Aggregate(reactor, sockets, b"/metrics"))
    root.putChild(b"healthz", _Aggregate(reactor, sockets, b"/healthz"))
    return root
