"""The parent's aggregation of its workers' metrics: each series gets a `worker` label, one HELP per family."""

from prometheus_client.parser import text_string_to_metric_families

from twisted_sse._workers_admin import _merge

WORKER = b"""# HELP sse_streams Streams open now.
# TYPE sse_streams gauge
sse_streams %d
# HELP sse_publishes_total HTTP publishes.
# TYPE sse_publishes_total counter
sse_publishes_total{outcome="ok"} %d
"""


def test_each_workers_series_is_labelled_and_a_down_worker_is_left_out():
    """Two answering workers and one that didn't: the scrape has the two, told apart by `worker`."""
    text = _merge([(200, WORKER % (3, 7)), (0, b"no answer"), (200, WORKER % (5, 1))]).decode()
    assert text.count("# HELP sse_streams ") == 1
    families = {f.name: f for f in text_string_to_metric_families(text)}
    assert {s.labels["worker"]: s.value for s in families["sse_streams"].samples} == {"0": 3, "2": 5}
    published = {(s.labels["worker"], s.labels["outcome"]): s.value for s in families["sse_publishes"].samples}
    assert published == {("0", "ok"): 7, ("2", "ok"): 1}
