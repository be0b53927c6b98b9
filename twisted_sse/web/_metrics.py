"""`/metrics`: the process's counts in Prometheus's text format, read when scraped.

Nothing is counted here: the hub, streams, resource and site count into one `Counters`
value (integer additions, once per block), and a collector turns it, with the hub's and
broker's state, into metric families at scrape time. The page is rendered in the reactor
thread with `prometheus_client.generate_latest` (prometheus_client's own Twisted resource
renders in a thread pool, which would read the hub from another thread). Each service has
a registry of its own, so two services in one process don't collide.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import Collector
from twisted.web.resource import Resource
from twisted.web.server import Request

from twisted_sse.core import Broker, Counters, Histogram, Hub

__all__ = ["MetricsPage", "SSECollector"]


class SSECollector(Collector):
    """The metric families of one service, built from its counts when Prometheus scrapes."""

    def __init__(self, hub: Hub, broker: Broker, counters: Counters, worker: int | None = None) -> None:
        """`worker`: a --workers worker labels every series with its number."""
        self._hub = hub
        self._broker = broker
        self._counters = counters
        self._worker = worker

    def collect(self) -> Iterator[Metric]:
        if self._worker is None:
            yield from self._families()
            return
        worker = str(self._worker)
        for family in self._families():
            labelled = Metric(family.name, family.documentation, family.type)
            for sample in family.samples:
                labelled.add_sample(sample.name, {**sample.labels, "worker": worker}, sample.value)
            yield labelled

    def _families(self) -> Iterator[Metric]:
        hub, counters = self._hub, self._counters
        yield GaugeMetricFamily("sse_streams", "Streams open now.", value=hub.streams_open)
        yield GaugeMetricFamily("sse_channels", "Channels held (subscribed) now.", value=hub.channels_held)
        yield _counter("sse_streams_opened", "Streams opened.", counters.streams_opened)
        yield _by_label("sse_streams_refused", "Stream requests sent away with retry:, by reason.", "reason",
                        counters.refused_streams)  # fmt: skip
        yield _counter("sse_slow_clients_cut", "Streams cut for holding more than --max-queue.",
                       counters.slow_clients_cut)  # fmt: skip
        yield _counter("sse_pending_connections_cut", "Connections that were no streams, cut past --max-pending.",
                       counters.connections_cut_pending)  # fmt: skip
        yield _by_label("sse_http2_connections_cut", "HTTP/2 connections cut for what they sent, by reason "
                        "(protocol_error, control_flood).", "reason", counters.http2_cuts)  # fmt: skip
        yield _counter("sse_messages", "Messages received from the broker.", counters.messages)
        yield _counter("sse_deliveries", "Events written to clients (live and replayed).", counters.deliveries)
        yield _counter("sse_sent_bytes", "Bytes of the events written to clients.", counters.sent_bytes)
        yield _by_label("sse_publishes", "HTTP publishes (a batch is one), by outcome (ok, unreplicated, refused, "
                        "failed).", "outcome", counters.publishes)  # fmt: skip
        yield _counter("sse_published_events", "Events published over HTTP.", counters.published_events)
        yield _histogram("sse_publish_seconds", "From a publish's request to the broker's confirmation.",
                         counters.publish_seconds)  # fmt: skip
        yield _histogram("sse_fanout_seconds", "Handing one read's messages to every listening stream.",
                         counters.fanout_seconds)  # fmt: skip
        connected = GaugeMetricFamily("sse_redis_connected", "1 while the broker delivers messages.", labels=["broker"])
        connected.add_metric([self._broker.kind], 1.0 if self._broker.is_connected() else 0.0)
        yield connected
        yield _counter("sse_redis_reconnects", "Times the broker's connection was made again.", self._broker.reconnects)
        yield _by_label("sse_resumes", "Streams that resumed from Last-Event-ID, by outcome (complete, lost, ahead, "
                        "failed).", "outcome", counters.resumes)  # fmt: skip
        refusals = dict(counters.refused)
        if counters.auth_unavailable:
            refusals["unavailable"] = counters.auth_unavailable
        yield _by_label("sse_auth_refusals", "Requests refused for their credentials, by reason (unauthenticated, "
                        "forbidden, unavailable).", "reason", refusals)  # fmt: skip


def _counter(name: str, documentation: str, value: float) -> CounterMetricFamily:
    return CounterMetricFamily(name, documentation, value=value)


def _by_label(name: str, documentation: str, label: str, values: dict[str, int]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, documentation, labels=[label])
    for key, value in sorted(values.items()):
        family.add_metric([key], value)
    return family


def _histogram(name: str, documentation: str, histogram: Histogram) -> HistogramMetricFamily:
    buckets, cumulative = [], 0
    for bound, count in zip((*histogram.bounds, float("inf")), histogram.counts, strict=True):
        cumulative += count
        buckets.append(("+Inf" if bound == float("inf") else repr(bound), cumulative))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=histogram.total)


class MetricsPage(Resource):
    """`/metrics` for one service."""

    isLeaf = True

    def __init__(self, collector: SSECollector) -> None:
        super().__init__()
        self._registry = CollectorRegistry(auto_describe=True)
        self._registry.register(collector)

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", CONTENT_TYPE_LATEST.encode("ascii"))
        request.setHeader(b"cache-control", b"no-cache")
        return generate_latest(self._registry)
