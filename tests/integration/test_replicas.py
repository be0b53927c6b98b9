"""--publish-replicas and Publisher(replicas=...) against a real master and replica: WAIT confirms, or a
stopped replica makes the answer "published, not replicated" (202, replicated False, exit 3) in bounded time."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest

from testbed import Daemon, RedisServer, get, source_env, wait_until
from tests.live import LiveStream
from twisted_sse.publish import Publisher

TOKEN = {"Authorization": "Bearer s3cret"}


@pytest.fixture
def replicated(tmp_path):
    """A master and one replica of it, in sync."""
    (tmp_path / "master").mkdir()
    (tmp_path / "replica").mkdir()
    master = RedisServer(tmp_path / "master")
    replica = RedisServer(tmp_path / "replica", "--replicaof", "127.0.0.1", str(master.port))
    wait_until(lambda: replica.client().info("replication")["master_link_status"] == "up", timeout=10)
    yield master, replica
    os.kill(replica.process.pid, signal.SIGCONT)
    replica.stop()
    master.stop()


def test_a_publish_is_answered_200_once_the_replica_has_it_and_202_when_it_does_not_confirm(tmp_path, replicated):
    master, replica = replicated
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--publish-replicas", "1", "--redis-timeout", "1",
                    redis_url=master.url)  # fmt: skip
    try:
        stream = LiveStream(daemon.port, "/events/news")
        wait_until(lambda: get(daemon.port, "/healthz")[0] == 200, timeout=10)
        status, _, body = get(daemon.port, "/events/news", "POST", b"confirmed", TOKEN)
        answer = json.loads(body)
        assert (status, answer["replicated"]) == (200, True)
        assert replica.client().xrange("sse:#history:news")[-1][0].decode() == answer["id"]
        os.kill(replica.process.pid, signal.SIGSTOP)  # alive, connected, silent: WAIT can only time out
        started = time.monotonic()
        status, _, body = get(daemon.port, "/events/news", "POST", b"unconfirmed", TOKEN)
        took = time.monotonic() - started
        answer = json.loads(body)
        assert (status, answer["replicated"]) == (202, False) and 0.7 < took < 3, (status, took)  # WAIT: 3/4 s
        assert [(e.data, e.last_event_id) for e in stream.read(2)][1] == ("unconfirmed", answer["id"])  # live
        batch = b'{"channel": "news", "data": "a"}\n{"channel": "news", "data": "b"}'
        status, _, body = get(daemon.port, "/events", "POST", batch, {**TOKEN, "Content-Type": "application/x-ndjson"})
        assert status == 202 and json.loads(body)["replicated"] is False and len(json.loads(body)["ids"]) == 2
        os.kill(replica.process.pid, signal.SIGCONT)
        wait_until(lambda: get(daemon.port, "/events/news", "POST", b"again", TOKEN)[0] == 200, timeout=10)
        print(f"an unconfirmed publish was answered 202 after {took:.2f}s (--redis-timeout 1)")
    finally:
        daemon.stop()


def test_the_publisher_and_sse_publish_say_whether_replicas_confirmed(replicated):
    master, replica = replicated
    publisher = Publisher(master.url, replicas=1, timeout=0.5)
    assert publisher.publish("news", "x").replicated is True
    assert [i.replicated for i in publisher.publish_many([("news", "a"), ("other", "b", "t")])] == [True, True]
    os.kill(replica.process.pid, signal.SIGSTOP)
    event_id = publisher.publish("news", "y")
    assert event_id.replicated is False and master.client().xrange("sse:#history:news")[-1][0].decode() == event_id
    command = [sys.executable, "-m", "twisted_sse.publish", "--redis", master.url, "--replicas", "1",
               "--timeout", "0.5", "news", "z"]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=source_env(), timeout=30)
    assert done.returncode == 3 and "do not publish again" in done.stderr
    assert done.stdout.strip() == master.client().xrange("sse:#history:news")[-1][0].decode()
