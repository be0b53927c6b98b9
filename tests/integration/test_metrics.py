"""Metrics on a real daemon: /metrics next to the streams, or on an internal --admin-listen listener."""

import json

from prometheus_client.parser import text_string_to_metric_families

from testbed import Daemon, free_port, get, health, wait_until
from tests.live import LiveStream

TOKEN = {"Authorization": "Bearer s3cret"}


def _families(port, path="/metrics"):
    status, headers, body = get(port, path)
    assert status == 200, body
    return {family.name: family for family in text_string_to_metric_families(body.decode())}


def test_metrics_next_to_the_streams_count_what_happened(tmp_path):
    """--metrics: a scrape after a stream and a publish shows them."""
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--metrics")
    try:
        stream = LiveStream(daemon.port, "/events/news")
        wait_until(lambda: health(daemon.port)["streams"] == 1, timeout=5)
        assert get(daemon.port, "/events/news", "POST", b"hello", TOKEN)[0] == 200
        stream.read(1)
        families = _families(daemon.port)
        assert families["sse_streams"].samples[0].value == 1
        assert families["sse_deliveries"].samples[0].value == 1
        assert "counters" in health(daemon.port)
        stream.close()
    finally:
        daemon.stop()


def test_admin_listen_serves_metrics_and_counts_apart_from_the_public_port(tmp_path):
    """--admin-listen: /metrics and /healthz with counters there; the public port has neither."""
    admin = free_port()
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--admin-listen", f"tcp:{admin}:interface=127.0.0.1")
    try:
        get(daemon.port, "/events/news", "POST", b"x", {"Authorization": "Bearer wrong"})
        assert get(daemon.port, "/metrics")[0] == 404
        public = health(daemon.port)
        assert public["status"] == "ok" and "counters" not in public
        private = json.loads(get(admin, "/healthz")[2])
        assert private["counters"] == {"refused_forbidden": 1}
        refused = _families(admin)["sse_publishes"].samples
        assert [(s.labels["outcome"], s.value) for s in refused if s.name.endswith("_total")] == [("refused", 1)]
    finally:
        daemon.stop()
