"""Faults produced for real: Redis cut, paused, restarted, refusing AUTH; stalled and slow clients; SIGTERM.

Each test says what was lost (nothing, unless Redis itself lost its data) and prints how
long recovery took (run with -s to see the figures).
"""

import json
import signal
import socket
import threading
import time

import pytest

from testbed import Daemon, RedisServer, get, health, wait_until
from tests.live import LiveStream
from tests.sse_parser import SSEParser
from twisted_sse.publish import Publisher

TOKEN = {"Authorization": "Bearer s3cret"}


@pytest.fixture
def redis(tmp_path):
    server = RedisServer(tmp_path)
    yield server
    server.stop()


def _rss_kib(pid, field="VmRSS"):
    """Resident memory of `pid` in KiB; field VmHWM is the peak since start."""
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise AssertionError(f"no {field}")


def _subscriber_ids(redis):
    return [c["id"] for c in redis.client().client_list(_type="pubsub")]


class Reader(threading.Thread):
    """Reads a stream in the background until it has `count` events (or fails)."""

    def __init__(self, port, path, count, headers=None):
        super().__init__(daemon=True)
        self.stream = LiveStream(port, path, headers, timeout=30)
        self.count, self.events, self.error = count, [], None
        self.start()

    def run(self):
        try:
            self.events = self.stream.read(self.count)
        except Exception as error:  # reported by the test
            self.error = error

    def result(self, timeout=30):
        self.join(timeout)
        assert not self.is_alive(), f"only {len(self.stream.events)} of {self.count} events"
        assert self.error is None, self.error
        return self.events


def test_pubsub_connection_killed_mid_traffic_loses_nothing(tmp_path, redis):
    """CLIENT KILL TYPE pubsub while events flow: every client still gets every event once, in order."""
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--redis-timeout", "1", redis_url=redis.url)
    try:
        total = 400
        readers = [Reader(daemon.port, "/events?channel=x&channel=y", total) for _ in range(3)]
        wait_until(lambda: health(daemon.port)["streams"] == 3, timeout=5)
        wait_until(lambda: redis.client().pubsub_numsub(b"sse:x")[0][1] == 1, timeout=5)
        publisher = Publisher(redis.url)
        before = _subscriber_ids(redis)
        ids, killed_at = [], None
        for n in range(total):
            ids.append(publisher.publish("xy"[n % 2], str(n)))
            if n == 100:
                redis.client().execute_command("CLIENT", "KILL", "TYPE", "pubsub")
                killed_at = time.monotonic()
            time.sleep(0.002)
        for reader in readers:
            events = reader.result()
            assert [e.last_event_id for e in events] == ids, "lost, doubled or reordered events"
        wait_until(lambda: redis.client().pubsub_numsub(b"sse:x")[0][1] == 1, timeout=5)
        assert _subscriber_ids(redis) != before
        recovered = re_recovered(daemon.log())
        print(f"pub/sub connection killed: 0 of {total} events lost; "
              f"{recovered}; all delivered {time.monotonic() - killed_at:.2f}s after the kill")  # fmt: skip
    finally:
        daemon.stop()


def re_recovered(log):
    lines = [line for line in log.splitlines() if "recovered" in line]
    assert lines, "no recovery logged"
    return lines[-1].split("] ", 1)[1]


def test_paused_redis_is_detected_and_survived(tmp_path, redis):
    """SIGSTOP: the silent connection is found within the timeout, publishes fail fast with 503,
    streams stay open; after SIGCONT everything flows again and nothing published before was lost."""
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--redis-timeout", "1", redis_url=redis.url)
    try:
        reader = Reader(daemon.port, "/events/news", 6)
        wait_until(lambda: redis.client().pubsub_numsub(b"sse:news")[0][1] == 1, timeout=5)
        ids = [json.loads(get(daemon.port, "/events/news", "POST", b"%d" % n, TOKEN)[2])["id"] for n in range(5)]
        wait_until(lambda: len(reader.stream.events) == 5, timeout=5)
        redis.process.send_signal(signal.SIGSTOP)
        paused = time.monotonic()
        try:
            wait_until(lambda: daemon.healthy() == 503, timeout=5)
            detected = time.monotonic() - paused
            started = time.monotonic()
            status, headers, body = get(daemon.port, "/events/news", "POST", b"during", TOKEN)
            assert status == 503 and headers.get("Retry-After") and b"not connected" in body
            assert time.monotonic() - started < 2, "publish during the outage must fail fast"
            assert health(daemon.port)["streams"] == 1, "the client stays connected"
        finally:
            redis.process.send_signal(signal.SIGCONT)
        resumed = time.monotonic()
        wait_until(lambda: daemon.healthy() == 200, timeout=15)
        back = time.monotonic() - resumed
        ids.append(json.loads(get(daemon.port, "/events/news", "POST", b"after", TOKEN)[2])["id"])
        assert [e.last_event_id for e in reader.result()] == ids
        print(f"Redis paused: detected in {detected:.2f}s, serving again {back:.2f}s after SIGCONT, 0 events lost")
    finally:
        daemon.stop()


def test_failed_auth_keeps_retrying_until_it_works(tmp_path):
    """A wrong password doesn't stop reconnection for good (txredisapi would): fixing Redis is enough."""
    redis = RedisServer(tmp_path, password="right")
    url = f"redis://:wrong@127.0.0.1:{redis.port}/0"
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", redis_url=url, ready_path="/")
    try:
        time.sleep(2)
        assert daemon.healthy() == 503
        assert "retrying" in daemon.log()
        redis.client().config_set("requirepass", "wrong")
        fixed = time.monotonic()
        wait_until(lambda: daemon.healthy() == 200, timeout=15)
        print(f"wrong password fixed in Redis: connected {time.monotonic() - fixed:.2f}s later")
    finally:
        daemon.stop()
        redis.stop()


def test_stalled_client_is_cut_and_nobody_else_waits(tmp_path, redis):
    """A client that stops reading is cut past --max-queue; the others get everything, memory stays
    bounded, and the Redis subscriber is never paused or dropped."""
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--max-queue", "262144", redis_url=redis.url)
    try:
        stalled = socket.socket()
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.connect(("127.0.0.1", daemon.port))
        stalled.sendall(b"GET /events/big HTTP/1.1\r\nHost: x\r\n\r\n")
        count, size = 400, 32 * 1024
        reader = Reader(daemon.port, "/events/big", count)
        wait_until(lambda: health(daemon.port)["streams"] == 2, timeout=5)
        subscriber = _subscriber_ids(redis)
        rss_before = _rss_kib(daemon.process.pid)
        publisher = Publisher(redis.url)
        started = time.monotonic()
        for n in range(count):
            publisher.publish("big", str(n).encode() + b"x" * size)
            if n % 16 == 15:  # the reader is a Python thread: on a loaded machine it must not fall 256 KiB behind
                wait_until(lambda n=n: len(reader.stream.events) > n - 16 or reader.error, timeout=10)
        events = reader.result()
        elapsed = time.monotonic() - started
        assert [e.data[: len(str(n))] for n, e in zip(range(count), events, strict=True)] == [
            str(n) for n in range(count)
        ]
        wait_until(lambda: health(daemon.port)["counters"].get("slow_clients_cut") == 1, timeout=5)
        assert health(daemon.port)["streams"] == 1
        assert _subscriber_ids(redis) == subscriber, "the Redis subscriber connection was dropped"
        omem = [c["omem"] for c in redis.client().client_list(_type="pubsub")]
        assert omem == ["0"], f"Redis holds output for the subscriber: {omem}"
        growth = (_rss_kib(daemon.process.pid, "VmHWM") - rss_before) / 1024
        print(f"stalled client: cut after the 256 KiB queue; {count} x 32 KiB delivered to the other client "
              f"in {elapsed:.2f}s; daemon peak RSS {growth:.1f} MiB above its level before; 0 events lost")  # fmt: skip
        assert growth < 64
        stalled.close()
    finally:
        daemon.stop()


def test_sigterm_under_load_drains_with_jittered_retry(tmp_path, redis):
    """SIGTERM with 200 streams open: every stream gets all its events, then a retry hint spread
    over [retry, 3 x retry], and the process exits within --drain-timeout."""
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--drain-timeout", "3", "--max-streams-per-ip", "0",
                    redis_url=redis.url)  # fmt: skip
    try:
        clients = [socket.create_connection(("127.0.0.1", daemon.port)) for _ in range(200)]
        for sock in clients:
            sock.sendall(b"GET /events/news HTTP/1.1\r\nHost: x\r\n\r\n")
        wait_until(lambda: health(daemon.port)["streams"] == 200, timeout=10)
        ids = [json.loads(get(daemon.port, "/events/news", "POST", b"%d" % n, TOKEN)[2])["id"] for n in range(20)]
        daemon.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        daemon.process.wait(10)
        exited = time.monotonic() - signalled
        retries = []
        for sock in clients:
            sock.settimeout(5)
            raw = b""
            while not raw.endswith(b"0\r\n\r\n"):
                chunk = sock.recv(65536)
                assert chunk, "connection closed before the stream ended cleanly"
                raw += chunk
            parser = SSEParser()
            body = raw.split(b"\r\n\r\n", 1)[1]
            events = parser.feed(_dechunk(body))
            assert [e.last_event_id for e in events] == ids
            retries.append(parser.retry)
            sock.close()
        assert all(3000 <= r <= 9000 for r in retries) and len(set(retries)) > 100
        assert exited < 3 + 2
        print(f"SIGTERM with 200 streams: exited in {exited:.2f}s, retry hints {min(retries)}-{max(retries)} ms "
              f"({len(set(retries))} distinct), 0 events lost")  # fmt: skip
    finally:
        daemon.stop()


def _dechunk(data):
    body = b""
    while data:
        size, _, rest = data.partition(b"\r\n")
        size = int(size, 16)
        if size == 0:
            break
        body, data = body + rest[:size], rest[size + 2 :]
    return body


def test_slowloris_and_huge_bodies_are_cut_without_touching_streams(tmp_path):
    """A client dribbling its headers is cut at --header-timeout; a 10 GB body gets 413 at once;
    a stream open meanwhile is unaffected."""
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--header-timeout", "1")
    try:
        stream = LiveStream(daemon.port, "/events/news")
        slow = socket.create_connection(("127.0.0.1", daemon.port))
        slow.sendall(b"GET /events/news HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        slow.settimeout(5)
        try:
            while True:
                slow.sendall(b"X")
                time.sleep(0.2)
        except OSError:
            pass
        cut_after = time.monotonic() - started
        assert cut_after < 3
        huge = socket.create_connection(("127.0.0.1", daemon.port))
        huge.sendall(b"POST /events/news HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\n"
                     b"Content-Length: 10000000000\r\n\r\n" + b"x" * 65536)  # fmt: skip
        huge.settimeout(5)
        assert huge.recv(4096).startswith(b"HTTP/1.1 413 ")
        get(daemon.port, "/events/news", "POST", b"still streaming", TOKEN)
        assert stream.read(1)[0].data == "still streaming"
        print(f"slowloris client cut after {cut_after:.2f}s; 10 GB body refused with 413 at once")
    finally:
        daemon.stop()
