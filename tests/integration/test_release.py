"""Clients that leave are released at once, on both brokers: nothing held, nothing subscribed."""

import socket
import struct
import time

import pytest

from testbed import Daemon, get, health, wait_until
from tests.live import LiveStream

TOKEN = {"Authorization": "Bearer s3cret"}


@pytest.fixture(params=["memory", "redis"])
def setup(request, tmp_path):
    """A daemon on the in-process broker, or on the session's redis-server."""
    redis = request.getfixturevalue("redis_db") if request.param == "redis" else None
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--max-streams-per-ip", "0", "--max-channels-per-ip", "0",
                    "--max-pending", "100000",
                    redis_url=redis.url if redis else None)  # fmt: skip  # every client is 127.0.0.1
    yield daemon, redis
    daemon.stop()


def _open_raw_stream(port: int, channel: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(f"GET /events/{channel} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    return sock


def _numsub(redis, channels):
    return dict((k.decode(), v) for k, v in redis.client().pubsub_numsub(*(f"sse:{c}" for c in channels)))


def test_hundreds_of_clients_dropped_abruptly_and_politely_leave_nothing(setup):
    """300 clients cut by RST and 300 closed by FIN are released within one second; one stays served."""
    daemon, redis = setup
    channels = [f"ch{i}" for i in range(7)]
    if redis:
        clients_before = len(redis.client().client_list())
    survivor = LiveStream(daemon.port, "/events/keep")
    socks = [_open_raw_stream(daemon.port, channels[i % 7]) for i in range(600)]
    wait_until(lambda: health(daemon.port)["streams"] == 601, timeout=15)
    assert health(daemon.port)["channels"] == 8
    if redis:
        wait_until(lambda: set(_numsub(redis, channels).values()) == {1}, timeout=5)
        assert len(redis.client().client_list(_type="pubsub")) == 1, "one subscriber connection for 601 streams"
        assert len(redis.client().client_list()) <= clients_before, "no connection per client"
    for sock in socks[:300]:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close sends RST
        sock.close()
    for sock in socks[300:]:
        sock.shutdown(socket.SHUT_RDWR)  # FIN
        sock.close()
    dropped = time.monotonic()
    wait_until(lambda: health(daemon.port)["streams"] == 1, timeout=1.0)
    if redis:
        wait_until(lambda: set(_numsub(redis, channels).values()) == {0}, timeout=1.0 - (time.monotonic() - dropped))
    assert time.monotonic() - dropped < 1.0
    report = health(daemon.port)
    assert (report["streams"], report["channels"]) == (1, 1), report
    assert get(daemon.port, "/events/keep", "POST", b"still here", TOKEN)[0] == 200
    assert survivor.read(1)[0].data == "still here"
    survivor.close()
    wait_until(lambda: health(daemon.port)["streams"] == 0, timeout=1.0)
    assert health(daemon.port)["channels"] == 0
    if redis:
        wait_until(lambda: _numsub(redis, ["keep"]) == {"sse:keep": 0}, timeout=1.0)
        assert len(redis.client().client_list()) <= clients_before  # (the test's own clients come and go)


def test_a_client_that_pipelined_behind_its_stream_is_released_at_once(tmp_path):
    """With --heartbeat 0, a client that sent 20 KiB after its stream request and left is released within 1 s."""
    daemon = Daemon(tmp_path, "--heartbeat", "0")
    try:
        sock = socket.create_connection(("127.0.0.1", daemon.port))
        sock.sendall(b"GET /events/p HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET /events/q HTTP/1.1\r\nX: " + b"y" * 20480)
        wait_until(lambda: health(daemon.port)["streams"] == 1, timeout=5)
        time.sleep(0.2)  # the pipelined bytes have arrived
        sock.close()
        left = time.monotonic()
        wait_until(lambda: health(daemon.port)["streams"] == 0, timeout=2)
        assert time.monotonic() - left < 1.0
    finally:
        daemon.stop()
