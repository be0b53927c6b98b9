"""/metrics: the process's counts in Prometheus's format, read back with prometheus_client's own parser."""

import json

from prometheus_client.parser import text_string_to_metric_families
from twisted.internet.task import Clock

from tests.http_harness import Harness


def _scrape(harness):
    response = harness.request("GET", "/metrics")
    assert response.status == 200 and response.headers["content-type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.body.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_are_served_only_when_asked_for():
    """Without --metrics there is no /metrics."""
    assert Harness().request("GET", "/metrics").status == 404


def test_the_counts_of_streams_publishes_deliveries_and_refusals_are_exported():
    """After real traffic through the HTTP surface the scrape says what happened, under sse_ names."""
    clock = Clock()
    clock.advance(1000)
    harness = Harness(clock=clock, metrics=True, max_connections=3)
    first = harness.stream("/events/news")
    second = harness.stream("/events?channel=news&channel=other")
    ids = [json.loads(harness.publish("news", b"hello").body)["id"] for _ in range(2)]
    harness.request("POST", "/events/news", {"Authorization": "Bearer wrong"}, b"x")
    resumed = harness.stream("/events/news", {"Last-Event-ID": ids[0]})
    harness.stream("/events/full").response()  # the fourth: the server is full
    assert [e.data for e in resumed.response().events()] == ["hello"]
    assert len(first.response().events()) == len(second.response().events()) == 2
    samples = _scrape(harness)
    assert samples[("sse_streams", ())] == 3 and samples[("sse_channels", ())] == 2
    assert samples[("sse_streams_opened_total", ())] == 3
    assert samples[("sse_streams_refused_total", (("reason", "full"),))] == 1
    assert samples[("sse_publishes_total", (("outcome", "ok"),))] == 2
    assert samples[("sse_publishes_total", (("outcome", "refused"),))] == 1
    assert samples[("sse_auth_refusals_total", (("reason", "forbidden"),))] == 1
    assert samples[("sse_messages_total", ())] == 2
    assert samples[("sse_deliveries_total", ())] == 2 * 2 + 1  # two live to two streams, one replayed
    assert samples[("sse_sent_bytes_total", ())] > 5 * len(b"data: hello\n\n")
    assert samples[("sse_resumes_total", (("outcome", "complete"),))] == 1
    assert samples[("sse_publish_seconds_count", ())] == 2
    assert samples[("sse_publish_seconds_bucket", (("le", "+Inf"),))] == 2
    assert samples[("sse_fanout_seconds_count", ())] == 2
    assert samples[("sse_redis_connected", (("broker", "memory"),))] == 1
    assert samples[("sse_redis_reconnects_total", ())] == 0


def test_a_resume_that_lost_events_is_counted_as_lost():
    """A client whose id is older than the history holds: outcome lost."""
    harness = Harness(metrics=True, history=1)
    ids = [json.loads(harness.publish("news", b"%d" % n).body)["id"] for n in range(3)]
    harness.stream("/events/news", {"Last-Event-ID": ids[0]}).response()
    assert _scrape(harness)[("sse_resumes_total", (("outcome", "lost"),))] == 1


def test_a_worker_labels_every_series_with_its_number():
    """Under --workers each worker's scrape says which worker it is, on every series."""
    samples = _scrape(Harness(metrics=True, worker=1))
    assert samples and all(dict(labels).get("worker") == "1" for _, labels in samples)
    assert samples[("sse_streams", (("worker", "1"),))] == 0
