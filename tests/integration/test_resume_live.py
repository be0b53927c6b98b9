"""Resume on real daemons: random schedules, a killed process, a real SSE client, loss signals."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
from hypothesis import settings
from hypothesis.stateful import run_state_machine_as_test

from testbed import Daemon, RedisServer, get, source_env, wait_until
from tests.live import LiveStream
from tests.resume_model import STATS, make_machine
from twisted_sse.core._replay import LOST_EVENT_TYPE

TOKEN = {"Authorization": "Bearer s3cret"}


def publish(port, channel, data, query=""):
    status, _, body = get(port, f"/events/{channel}{query}", "POST", data, TOKEN)
    assert status == 200, body
    return json.loads(body)["id"]


class Live:
    """The state machine's driver for a real daemon over HTTP."""

    def __init__(self, port):
        self.port = port

    def publish(self, channel, data):
        return publish(self.port, channel, data)

    def connect(self, channels, last_id):
        query = "&".join(f"channel={c}" for c in channels)
        return LiveStream(self.port, f"/events?{query}", {"Last-Event-ID": last_id})

    def received(self, stream, count):
        return [(e.type, e.data, e.last_event_id) for e in stream.read(count)]

    def drop(self, stream):
        stream.close()


@pytest.fixture(scope="module", params=["memory", "redis"])
def model_daemon(request, tmp_path_factory):
    redis = request.getfixturevalue("redis_server") if request.param == "redis" else None
    daemon = Daemon(tmp_path_factory.mktemp("model"), "--publish-token", "s3cret",
                    redis_url=redis.url if redis else None)  # fmt: skip
    yield daemon
    daemon.stop()


def test_random_schedules_lose_nothing_and_double_nothing(model_daemon):
    """Random publishes, drops and resumes over real HTTP: each client gets exactly what was published."""
    machine = make_machine(lambda: Live(model_daemon.port))
    examples = int(os.environ.get("SSE_MODEL_EXAMPLES", "15"))
    STATS.clear()
    steps = int(os.environ.get("SSE_MODEL_STEPS", "30"))
    run_state_machine_as_test(
        machine, settings=settings(max_examples=examples, stateful_step_count=steps, deadline=None)
    )
    print(dict(STATS))


def test_clients_resume_on_another_process_after_sigkill(tmp_path, redis_db):
    """Clients reading from a SIGKILLed process resume on a second one with their last id and lose nothing."""
    first = Daemon(tmp_path, "--publish-token", "s3cret", redis_url=redis_db.url)
    second = Daemon(tmp_path, "--publish-token", "s3cret", redis_url=redis_db.url)
    try:
        streams = [LiveStream(first.port, "/events?channel=x&channel=y") for _ in range(5)]
        wait_until(lambda: redis_db.client().pubsub_numsub(b"sse:x")[0][1] == 1, timeout=5)
        ids = [publish(second.port, "xy"[n % 2], b"%d" % n) for n in range(20)]
        last_seen = [stream.read(10 + i)[-1].last_event_id for i, stream in enumerate(streams)]
        first.process.send_signal(signal.SIGKILL)
        first.process.wait()
        killed = time.monotonic()
        ids += [publish(second.port, "xy"[n % 2], b"%d" % n) for n in range(20, 30)]
        for last in last_seen:
            resumed = LiveStream(second.port, "/events?channel=x&channel=y", {"Last-Event-ID": last})
            expected = ids[ids.index(last) + 1 :]
            got = resumed.read(len(expected))
            assert [e.last_event_id for e in got] == expected
            assert [e.data for e in got] == [str(ids.index(i)) for i in expected]
            resumed.close()
        print(f"5 clients resumed on the second process {time.monotonic() - killed:.2f}s after the SIGKILL")
    finally:
        first.stop()
        second.stop()


def test_third_party_client_reconnects_with_last_event_id(tmp_path, redis_db):
    """launchdarkly-eventsource, reconnecting as browsers do, gets every event across a server restart."""
    from ld_eventsource import SSEClient
    from ld_eventsource.config import ConnectStrategy, ErrorStrategy

    from twisted_sse.publish import Publisher

    args = ("--publish-token", "s3cret", "--retry", "200")
    server = Daemon(tmp_path, *args, redis_url=redis_db.url)
    port = server.port
    received, done = [], threading.Event()

    def consume():
        client = SSEClient(
            ConnectStrategy.http(f"http://127.0.0.1:{port}/events/feed"),
            initial_retry_delay=0.2,
            error_strategy=ErrorStrategy.always_continue(),  # keep reconnecting, as EventSource does
        )
        for event in client.events:
            received.append((event.data, event.id))
            if len(received) == 10:
                done.set()
                client.close()
                return

    thread = threading.Thread(target=consume, daemon=True)
    thread.start()
    publisher = Publisher(redis_db.url)
    try:
        wait_until(lambda: redis_db.client().pubsub_numsub(b"sse:feed")[0][1] == 1, timeout=10)
        ids = [publisher.publish("feed", f"e{n}") for n in range(5)]
        wait_until(lambda: len(received) == 5, timeout=5)
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        ids += [publisher.publish("feed", f"e{n}") for n in range(5, 10)]  # while nobody serves the client
        server = Daemon(tmp_path, *args, redis_url=redis_db.url, port=port)
        assert done.wait(15), received
        assert received == [(f"e{n}", ids[n]) for n in range(10)]
    finally:
        server.stop()


@pytest.fixture(params=["memory", "redis"])
def history_daemon(request, tmp_path):
    redis = request.getfixturevalue("redis_db") if request.param == "redis" else None
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--history", "10",
                    redis_url=redis.url if redis else None)  # fmt: skip
    yield daemon
    daemon.stop()


def test_client_50_behind_gets_loss_signal_then_the_10_retained(history_daemon):
    """With --history 10 a client 50 events behind gets the loss signal, then the 10 retained events."""
    port = history_daemon.port
    quiet_id = publish(port, "quiet", b"q")
    first = publish(port, "busy", b"0")
    for n in range(1, 51):
        publish(port, "busy", b"%d" % n)
    stream = LiveStream(port, "/events/busy", {"Last-Event-ID": first})
    events = stream.read(11)
    assert events[0].type == LOST_EVENT_TYPE
    assert json.loads(events[0].data) == {"channels": ["busy"], "lastEventId": first}
    assert [e.data for e in events[1:]] == [str(n) for n in range(41, 51)]
    quiet = LiveStream(port, "/events/quiet", {"Last-Event-ID": quiet_id})
    publish(port, "quiet", b"after")
    assert [(e.type, e.data) for e in quiet.read(1)] == [("message", "after")]


def test_history_ttl_expires_events_with_a_loss_signal(tmp_path, redis_db):
    """--history-ttl drops older events; a client that needed them is told, one that didn't is not."""
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--history-ttl", "0.5", redis_url=redis_db.url)
    try:
        start = publish(daemon.port, "news", b"seen")
        publish(daemon.port, "news", b"expires")
        time.sleep(0.7)
        recent = publish(daemon.port, "news", b"new")
        events = LiveStream(daemon.port, "/events/news", {"Last-Event-ID": start}).read(2)
        assert [(e.type, e.data) for e in events] == [(LOST_EVENT_TYPE, events[0].data), ("message", "new")]
        fresh = LiveStream(daemon.port, "/events/news", {"Last-Event-ID": recent})
        publish(daemon.port, "news", b"live")
        assert [e.data for e in fresh.read(1)] == ["live"]
    finally:
        daemon.stop()


def test_redis_that_lost_its_data_gives_a_loss_signal_and_ids_keep_increasing(tmp_path):
    """After redis-server restarts empty, old ids resume with a loss signal and new ids are greater."""
    redis = RedisServer(tmp_path)
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", redis_url=redis.url)
    try:
        before = publish(daemon.port, "news", b"before")
        redis.restart()
        wait_until(lambda: daemon.healthy() == 200, timeout=20)
        after = wait_until(lambda: _try_publish(daemon.port, "news", b"after"), timeout=10)
        assert tuple(map(int, after.split("-"))) > tuple(map(int, before.split("-")))
        events = LiveStream(daemon.port, "/events/news", {"Last-Event-ID": before}).read(2)
        assert [(e.type, e.data) for e in events][1] == ("message", "after")
        assert events[0].type == LOST_EVENT_TYPE
    finally:
        daemon.stop()
        redis.stop()


def _try_publish(port, channel, data):
    status, _, body = get(port, f"/events/{channel}", "POST", data, TOKEN)
    return json.loads(body)["id"] if status == 200 else None


def test_sync_publisher_and_cli_publish_durable_events(tmp_path, redis_db):
    """The WSGI helper and sse-publish publish durable events in the daemons' id sequence."""
    from twisted_sse.publish import Publisher

    daemon = Daemon(tmp_path, "--publish-token", "s3cret", redis_url=redis_db.url)
    try:
        stream = LiveStream(daemon.port, "/events/news")
        wait_until(lambda: redis_db.client().pubsub_numsub(b"sse:news")[0][1] == 1, timeout=5)
        helper_id = Publisher(redis_db.url).publish("news", '{"from": "django"}', event="update")
        cli = subprocess.run(
            [sys.executable, "-m", "twisted_sse.publish", "--redis", redis_db.url, "--event", "cli", "news", "-"],
            input=b"from the shell\n", capture_output=True, env=source_env(), timeout=30,
        )  # fmt: skip
        assert cli.returncode == 0, cli.stderr
        cli_id = cli.stdout.decode().strip()
        http_id = publish(daemon.port, "news", b"from http")
        events = stream.read(3)
        assert [(e.type, e.data, e.last_event_id) for e in events] == [
            ("update", '{"from": "django"}', helper_id),
            ("cli", "from the shell\n", cli_id),
            ("message", "from http", http_id),
        ]
        resumed = LiveStream(daemon.port, "/events/news", {"Last-Event-ID": helper_id}).read(2)
        assert [e.last_event_id for e in resumed] == [cli_id, http_id]
        bad = subprocess.run([sys.executable, "-m", "twisted_sse.publish", "--redis", redis_db.url, "bad name", "x"],
                             capture_output=True, text=True, env=source_env(), timeout=30)  # fmt: skip
        assert bad.returncode == 2 and "invalid channel name" in bad.stderr
    finally:
        daemon.stop()


def test_a_resume_whose_channels_were_read_at_different_ids_waits_for_redis_to_answer_a_ping(tmp_path, redis_db):
    """a's read is current (made for a resume of a alone); then an event of a channel nobody here listens to
    moves the ids on, so b's read stands further than a's. The page goes up to b's read, and before it goes
    out the daemon PINGs Redis on its subscriber connection: an event of a published between the two reads
    would arrive before the answer (and go out in its place). With --redis-timeout 60, an answer the daemon
    failed to recognise would hold the page for a minute: the stream gets everything at once, in order."""
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--redis-timeout", "60", redis_url=redis_db.url)
    try:
        ids = [publish(daemon.port, "ab"[n % 2], b"%d" % n) for n in range(6)]
        alone = LiveStream(daemon.port, "/events?channel=a", {"Last-Event-ID": ids[0]})
        assert [event.last_event_id for event in alone.read(2)] == [ids[2], ids[4]]
        pings = redis_db.client().info("commandstats").get("cmdstat_ping", {}).get("calls", 0)
        publish(daemon.port, "elsewhere", b"x")
        both = LiveStream(daemon.port, "/events?channel=a&channel=b", {"Last-Event-ID": ids[0]})
        assert [event.last_event_id for event in both.read(5)] == ids[1:]
        assert redis_db.client().info("commandstats")["cmdstat_ping"]["calls"] > pings
        publish(daemon.port, "b", b"live")
        assert both.read(6)[-1].data == "live"
        alone.close()
        both.close()
    finally:
        daemon.stop()
