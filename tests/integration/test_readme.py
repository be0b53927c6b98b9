"""The README's embedding example, exactly as written, runs as a Twisted application (in-process and on Redis)."""

import re

import pytest

from testbed import REPO, Daemon, free_port, wait_until
from tests.live import LiveStream
from tests.sse_parser import Dispatched
from twisted_sse.publish import Publisher


def _embedding_example() -> str:
    readme = (REPO / "README.md").read_text()
    section = readme.split("## Embed it in a Twisted application", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def _as_tac(tmp_path, port: int, redis_url: str | None = None):
    """The example with only its port changed (and, on Redis, its commented alternative used)."""
    source = _embedding_example()
    assert source.count('"tcp:8080"') == 1
    source = source.replace('"tcp:8080"', f'"tcp:{port}:interface=127.0.0.1"')
    if redis_url is not None:
        on_redis = re.search(r"^# on Redis: (SSEService\(.*\))$", source, re.M)
        assert on_redis is not None and source.count("SSEService(Settings(listen=()))") == 1
        on_redis_here = on_redis.group(1).replace("redis://127.0.0.1:6379/0", redis_url)
        source = source.replace("SSEService(Settings(listen=()))", on_redis_here)
    path = tmp_path / "readme_example.tac"
    path.write_text(source)
    return path


def test_the_embedding_example_streams_what_it_published_in_process(tmp_path):
    """Mounted at /sse/: the example's own publish is in history, and a resuming stream gets it."""
    port = free_port()
    daemon = Daemon(tmp_path, tac=_as_tac(tmp_path, port), port=port)
    try:
        stream = LiveStream(port, "/sse/events/news", headers={"Last-Event-ID": "1-0"})
        assert stream.response.status == 200
        events = stream.read(2)
        assert events[0].type == "sse-lost"  # 1-0 is older than anything this process issued
        assert (events[1].type, events[1].data) == ("headline", "hello")
        stream.close()
    finally:
        daemon.stop()


@pytest.mark.usefixtures("redis_db")
def test_the_embedding_example_on_redis_streams_what_any_publisher_sends(tmp_path, redis_server):
    """With the README's Redis line: streams at /sse/events/news get events published through Redis."""
    port = free_port()
    daemon = Daemon(tmp_path, tac=_as_tac(tmp_path, port, redis_server.url), port=port)
    try:
        stream = LiveStream(port, "/sse/events/news")
        assert stream.response.status == 200
        wait_until(lambda: redis_server.client().pubsub_numsub("sse:#events:news")[0][1] == 1, timeout=5)
        event_id = Publisher(redis_server.url).publish("news", "from redis", event="headline")
        [event] = stream.read(1)
        assert event == Dispatched("headline", "from redis", event_id)
        stream.close()
    finally:
        daemon.stop()
