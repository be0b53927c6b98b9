"""twisted-sse on a real redis-server: raw publishes, shared subscriber, publishing, outages."""

import json
import time

import pytest

from testbed import REPO, Daemon, RedisServer, get, health, wait_until
from tests.live import LiveStream

TOKEN = {"Authorization": "Bearer s3cret"}


@pytest.fixture
def daemon(tmp_path, redis_db):
    process = Daemon(tmp_path, "--publish-token", "s3cret", redis_url=redis_db.url)
    yield process
    process.stop()


def _subscribed(redis, channel):
    return dict(redis.client().pubsub_numsub(f"sse:{channel}".encode()))[f"sse:{channel}".encode()] > 0


def test_raw_publish_from_any_redis_client_arrives_byte_for_byte(daemon, redis_db):
    """A plain PUBLISH sse:news reaches /events/news as data: JSON, 007, UTF-8 and multi-line intact."""
    stream = LiveStream(daemon.port, "/events/news")
    wait_until(lambda: _subscribed(redis_db, "news"), timeout=5)
    payloads = ['{"price": 1.50, "id": "007"}', "007", "h\u00e9llo \u2713 \U0001f600", "line one\nline two", ""]
    for payload in payloads:
        assert redis_db.client().publish("sse:news", payload.encode("utf-8")) == 1
    events = stream.read(len(payloads))
    assert [e.data for e in events] == payloads
    assert {(e.type, e.last_event_id) for e in events} == {("message", "")}


def test_http_publish_goes_through_redis_to_every_process(tmp_path, redis_db):
    """A POST to one process reaches the streams of another process on the same Redis."""
    first = Daemon(tmp_path, "--publish-token", "s3cret", redis_url=redis_db.url)
    second = Daemon(tmp_path, "--publish-token", "s3cret", redis_url=redis_db.url)
    try:
        streams = [LiveStream(first.port, "/events/news"), LiveStream(second.port, "/events/news")]
        wait_until(lambda: redis_db.client().pubsub_numsub(b"sse:news")[0][1] == 2, timeout=5)
        status, _, body = get(first.port, "/events/news?event=headline", "POST", b"one\ntwo", TOKEN)
        assert (status, json.loads(body)["channel"]) == (200, "news")
        for stream in streams:
            event = stream.read(1)[0]
            assert (event.type, event.data) == ("headline", "one\ntwo")
    finally:
        first.stop()
        second.stop()


def test_in_process_publish_goes_through_redis(tmp_path, redis_db):
    """The embedding example's in-process publishes reach a separate daemon on the same Redis."""
    app = Daemon(tmp_path, tac=REPO / "examples" / "embedded.tac", redis_url=redis_db.url)
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", redis_url=redis_db.url)
    try:
        tick = LiveStream(daemon.port, "/events/ticks").read(1)[0]
        assert tick.type == "tick" and abs(int(tick.data) - time.time()) < 5
    finally:
        app.stop()
        daemon.stop()


def test_subscriber_has_no_database_and_numbers_stay_text(tmp_path, redis_db):
    """With a /db in the URL the subscriber still works (no SELECT in subscribe mode)."""
    process = Daemon(tmp_path, "--publish-token", "s3cret", redis_url=redis_db.url.replace("/0", "/3"))
    try:
        stream = LiveStream(process.port, "/events/n")
        wait_until(lambda: _subscribed(redis_db, "n"), timeout=5)
        redis_db.client().publish("sse:n", b"00042")
        assert stream.read(1)[0].data == "00042"
    finally:
        process.stop()


def test_outage_healthz_503_then_resubscribed_after_restart(tmp_path):
    """While Redis is down /healthz is 503 and streams stay open; after a restart they get new events."""
    redis = RedisServer(tmp_path)
    process = Daemon(tmp_path, "--publish-token", "s3cret", redis_url=redis.url)
    try:
        stream = LiveStream(process.port, "/events/news", timeout=30)
        wait_until(lambda: _subscribed(redis, "news"), timeout=5)
        redis.kill()
        wait_until(lambda: process.healthy() == 503, timeout=5)
        assert health(process.port)["connected"] is False
        assert health(process.port)["streams"] == 1
        # A stream asked for while Redis is down is answered 200 and closed: EventSource retries.
        status, headers, body = get(process.port, "/events/other")
        assert status == 200 and body.startswith(b"retry:")
        redis.start()
        started = time.monotonic()
        wait_until(lambda: _subscribed(redis, "news"), timeout=20)
        resubscribed = time.monotonic() - started
        assert process.healthy() == 200
        redis.client().publish("sse:news", b"after the outage")
        # Redis came back empty: the stream is told it may have lost events, then goes on live.
        lost, after = stream.read(2)
        assert (lost.type, after.data) == ("sse-lost", "after the outage")
        assert "Redis reconnected" in process.log()
        print(f"re-subscribed {resubscribed:.2f}s after redis-server came back")
    finally:
        process.stop()
        redis.stop()


def test_bad_redis_url_is_a_usage_error(tmp_path):
    """A malformed --redis stops twistd with a usage error naming the option, not the password."""
    import subprocess

    from testbed import TWISTD, source_env

    out = subprocess.run([*TWISTD, "-n", "sse", "--redis", "redis://user:hunter2@host:notaport"],
                         capture_output=True, text=True, env=source_env(), cwd=tmp_path)  # fmt: skip
    assert out.returncode != 0
    assert "--redis" in out.stdout + out.stderr
    assert "hunter2" not in out.stdout + out.stderr


def test_unix_socket_url(tmp_path):
    """--redis unix:///path.sock reaches a redis-server listening on a Unix socket."""
    sock = tmp_path / "redis.sock"
    redis = RedisServer(tmp_path, "--unixsocket", str(sock), "--unixsocketperm", "700")
    process = Daemon(tmp_path, "--publish-token", "s3cret", redis_url=f"unix://{sock}")
    try:
        stream = LiveStream(process.port, "/events/u")
        wait_until(lambda: _subscribed(redis, "u"), timeout=5)
        assert get(process.port, "/events/u", "POST", b"via unix", TOKEN)[0] == 200
        assert stream.read(1)[0].data == "via unix"
    finally:
        process.stop()
        redis.stop()


def test_an_id_above_2_64_never_reaches_redis(daemon, redis_db):
    """Last-Event-ID 2^64: ignored (the stream starts live) instead of a Redis error and a retry loop."""
    stream = LiveStream(daemon.port, "/events/big", {"Last-Event-ID": "18446744073709551616-0"})
    wait_until(lambda: _subscribed(redis_db, "big"), timeout=5)
    get(daemon.port, "/events/big", "POST", b"live", {"Authorization": "Bearer s3cret"})
    assert [e.data for e in stream.read(1)] == ["live"]
    assert "ERR" not in daemon.log() and "failed" not in daemon.log()
    stream.close()


def test_an_id_ahead_of_everything_redis_issued_gets_the_real_position(daemon, redis_db):
    """A far-future Last-Event-ID: sse-lost carrying the last id Redis issued, then live events (no starvation)."""
    token = {"Authorization": "Bearer s3cret"}
    last = json.loads(get(daemon.port, "/events/f", "POST", b"old", token)[2])["id"]
    stream = LiveStream(daemon.port, "/events/f", {"Last-Event-ID": "99999999999999-0"})
    lost = stream.read(1)[0]
    assert (lost.type, lost.last_event_id) == ("sse-lost", last)
    get(daemon.port, "/events/f", "POST", b"live", token)
    assert stream.read(2)[1].data == "live"
    stream.close()


def test_a_forged_envelope_by_raw_publish_changes_nothing_for_durable_events(daemon, redis_db):
    """A raw PUBLISH crafted as an envelope with a huge id is delivered as data; durable events go on for every
    stream, new ones included."""
    token = {"Authorization": "Bearer s3cret"}
    stream = LiveStream(daemon.port, "/events/victim")
    wait_until(lambda: _subscribed(redis_db, "victim"), timeout=5)
    forged = b'\x00sse2{"id":"99999999999999-0","event":"sse-lost"}\n{}'
    assert redis_db.client().publish("sse:victim", forged) == 1
    first = json.loads(get(daemon.port, "/events/victim", "POST", b"after", token)[2])["id"]
    events = stream.read(2)
    assert [(e.type, e.last_event_id) for e in events] == [("message", ""), ("message", first)]
    assert events[0].data.endswith('"sse-lost"}\n{}') and events[1].data == "after"
    late = LiveStream(daemon.port, "/events/victim", {"Last-Event-ID": first})
    get(daemon.port, "/events/victim", "POST", b"later", token)
    assert [e.data for e in late.read(1)] == ["later"]
    assert [e.data for e in stream.read(3)][2] == "later"
    stream.close()
    late.close()


def test_a_redis_that_came_back_older_is_settled_no_silent_gap_no_reused_id(tmp_path):
    """Redis restarts from a snapshot taken before the last two events (what a promoted replica
    that lagged looks like): the open stream goes on without a false loss signal, resuming from
    before the lost events gets sse-lost, the last id is raised to the newest id the daemon
    received, and resuming from that newest id is clean."""
    redis = RedisServer(tmp_path)
    process = Daemon(tmp_path, "--publish-token", "s3cret", redis_url=redis.url)
    try:
        stream = LiveStream(process.port, "/events/news", timeout=30)
        wait_until(lambda: _subscribed(redis, "news"), timeout=5)

        def publish(n):
            return json.loads(get(process.port, "/events/news", "POST", b"e%d" % n, TOKEN)[2])["id"]

        ids = [publish(0), publish(1)]
        redis.client().save()  # e0, e1; e2 and e3 never reach the snapshot
        snapshot_has = ids[1]
        ids += [publish(2), publish(3)]
        assert [e.data for e in stream.read(4)] == ["e0", "e1", "e2", "e3"]
        redis.kill()
        client = redis.client()
        redis.start()
        wait_until(lambda: _subscribed(redis, "news"), timeout=20)
        wait_until(lambda: client.get("sse:#last-id").decode() == ids[3], timeout=10)
        assert client.hget("sse:#cuts", "news").decode() == ids[3]
        after = json.loads(get(process.port, "/events/news", "POST", b"after", TOKEN)[2])["id"]
        assert [(e.type, e.data) for e in stream.read(5)][4] == ("message", "after")  # no sse-lost before it
        behind = LiveStream(process.port, "/events/news", {"Last-Event-ID": snapshot_has})
        lost, resumed = behind.read(2)
        assert lost.type == "sse-lost" and (resumed.data, resumed.last_event_id) == ("after", after)
        current = LiveStream(process.port, "/events/news", {"Last-Event-ID": ids[3]})
        assert [(e.type, e.data) for e in current.read(1)] == [("message", "after")]
        assert "recorded cuts there" in process.log()
        for open_stream in (stream, behind, current):
            open_stream.close()
    finally:
        process.stop()
        redis.stop()
