"""A real `twistd sse` process on the in-process broker, driven by real HTTP clients."""

import json
import os
import re
import signal
import socket
import subprocess
import time

import pytest

from testbed import REPO, TWISTD, Daemon, free_port, get, health, source_env, wait_until
from tests.live import LiveStream
from tests.sse_parser import Dispatched

TOKEN = {"Authorization": "Bearer s3cret"}


@pytest.fixture
def daemon(tmp_path):
    process = Daemon(tmp_path, "--publish-token", "s3cret")
    yield process
    process.stop()


def test_twistd_lists_sse():
    """`twistd --help` lists the sse command."""
    out = subprocess.run([*TWISTD, "--help"], capture_output=True, text=True, env=source_env(), cwd=REPO)
    assert re.search(r"^\s+sse\s", out.stdout, re.M), out.stdout


def test_bad_option_is_a_usage_error(tmp_path):
    """A bad option value stops twistd with a usage error naming the option."""
    out = subprocess.run([*TWISTD, "-n", "sse", "--heartbeat", "often"], capture_output=True, text=True,
                         env=source_env(), cwd=tmp_path)  # fmt: skip
    assert out.returncode != 0
    assert "--heartbeat" in out.stdout + out.stderr


def test_publish_reaches_every_stream_within_milliseconds(daemon):
    """A POST reaches every connected client of the channel, multi-line data and type intact."""
    streams = [LiveStream(daemon.port, "/events/news") for _ in range(3)]
    other = LiveStream(daemon.port, "/events?channel=sport&channel=news")
    wait_until(lambda: health(daemon.port)["streams"] == 4, timeout=5)
    for stream in streams:
        assert stream.response.status == 200
        assert stream.response.getheader("content-type") == "text/event-stream; charset=utf-8"
    started = time.monotonic()
    status, _, body = get(daemon.port, "/events/news?event=update", "POST", b'{"a": 1}\nsecond', TOKEN)
    event_id = json.loads(body)["id"]
    assert (status, json.loads(body)) == (200, {"channel": "news", "id": event_id})
    expected = [Dispatched("update", '{"a": 1}\nsecond', event_id)]
    for stream in [*streams, other]:
        assert stream.read(1) == expected
    elapsed = time.monotonic() - started
    assert elapsed < 1.0
    assert streams[0].parser.retry == 3000


def test_generated_token_is_logged_with_a_curl_line(tmp_path):
    """Without a token the daemon logs one in a ready-to-paste curl line, and it works."""
    process = Daemon(tmp_path)
    try:
        match = wait_until(lambda: re.search(r"Authorization: Bearer (\S+?)'", process.log()), timeout=5)
        token = match.group(1)
        assert get(process.port, "/events/news", "POST", b"x", {"Authorization": "Bearer nope"})[0] == 403
        assert get(process.port, "/events/news", "POST", b"x", {"Authorization": f"Bearer {token}"})[0] == 200
        assert "in-process broker (no Redis)" in process.log()
        assert re.search(r"room for about \d+ connections", process.log())
    finally:
        process.stop()


def test_daemonizes_with_pidfile_and_logfile(tmp_path):
    """Without -n twistd detaches, writes its pid file and log, and stops on SIGTERM."""
    port = free_port()
    pidfile, logfile = tmp_path / "sse.pid", tmp_path / "sse.log"
    out = subprocess.run(
        [*TWISTD, "--pidfile", str(pidfile), "--logfile", str(logfile), "sse",
         "--listen", f"tcp:{port}:interface=127.0.0.1", "--publish-token", "t"],
        env=source_env(), cwd=tmp_path, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    pid = int(wait_until(lambda: pidfile.exists() and pidfile.read_text().strip(), timeout=10))
    try:
        wait_until(lambda: _healthy(port), timeout=10)
        assert "twisted-sse on" in logfile.read_text()
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_until(lambda: not pidfile.exists(), timeout=10)


def _healthy(port: int) -> bool:
    try:
        return get(port, "/healthz")[0] == 200
    except OSError:
        return False


def test_embedded_tac_example_mounts_resource_and_publishes_in_process(tmp_path):
    """The .tac example serves its page, mounts the SSE resource at /sse and its timer's ticks arrive."""
    process = Daemon(tmp_path, tac=REPO / "examples" / "embedded.tac")
    try:
        status, _, page = get(process.port, "/")
        assert status == 200 and b"/sse/events/ticks" in page
        stream = LiveStream(process.port, "/sse/events/ticks")
        tick = stream.read(1)[0]
        assert tick.type == "tick" and abs(int(tick.data) - time.time()) < 5
        stream.close()
    finally:
        process.stop()


def test_access_log_only_when_asked(tmp_path):
    """Requests are not logged one line each unless --access-log is given."""
    quiet = Daemon(tmp_path, "--publish-token", "t")
    loud = Daemon(tmp_path, "--publish-token", "t", "--access-log")
    try:
        for process in (quiet, loud):
            get(process.port, "/events/news", "POST", b"x", {"Authorization": "Bearer t"})
        wait_until(lambda: '"POST /events/news HTTP/1.1" 200' in loud.log(), timeout=5)
        assert '"POST /events/news HTTP/1.1"' not in quiet.log()
    finally:
        quiet.stop()
        loud.stop()


def test_http_1_0_client_gets_an_unchunked_stream(daemon):
    """An HTTP/1.0 client (no chunked encoding) gets the plain event stream, not chunk framing."""
    import socket

    sock = socket.create_connection(("127.0.0.1", daemon.port))
    sock.sendall(b"GET /events/old HTTP/1.0\r\n\r\n")
    sock.settimeout(5)
    raw = b""
    while b"retry: 3000\n" not in raw:
        raw += sock.recv(4096)
    assert get(daemon.port, "/events/old", "POST", b"one\ntwo", TOKEN)[0] == 200
    while b"data: two\n\n" not in raw:
        raw += sock.recv(4096)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert b"chunked" not in head.lower()
    assert body.startswith(b"retry: 3000\nid: ") and body.endswith(b"data: one\ndata: two\n\n")
    sock.close()


@pytest.mark.parametrize(("trusted", "logged"), [(False, "from 127.0.0.1:"), (True, "from 198.51.100.7 ")])
def test_client_address_behind_a_trusted_proxy(tmp_path, trusted, logged):
    """The log names the X-Forwarded-For client only when the peer is a --trusted-proxy."""
    args = ("--trusted-proxy", "127.0.0.0/8") if trusted else ()
    process = Daemon(tmp_path, *args)
    try:
        stream = LiveStream(process.port, "/events/x", {"X-Forwarded-For": "6.6.6.6, 198.51.100.7"})
        wait_until(lambda: "stream opened: x " in process.log(), timeout=5)
        opened = next(line for line in process.log().splitlines() if "stream opened: x " in line)
        assert logged in opened + " "
        stream.close()
    finally:
        process.stop()


def test_one_address_cannot_take_every_stream(tmp_path):
    """--max-streams-per-ip 5: a sixth stream from 127.0.0.1 gets retry: and a close; others keep theirs."""
    process = Daemon(tmp_path, "--max-streams-per-ip", "5")
    try:
        streams = [LiveStream(process.port, f"/events/s{i}") for i in range(5)]
        status, _, body = get(process.port, "/events/s5")  # ends at once: the refusal closes it
        assert status == 200 and body.startswith(b"retry: ") and b"the most one address may have" in body
        assert health(process.port)["streams"] == 5
        streams.pop().close()
        wait_until(lambda: health(process.port)["streams"] == 4, timeout=5)
        streams.append(LiveStream(process.port, "/events/s5"))
        wait_until(lambda: health(process.port)["streams"] == 5, timeout=5)
        for stream in streams:
            stream.close()
    finally:
        process.stop()


def test_publishes_are_refused_on_their_headers_and_slow_bodies_cut(tmp_path):
    """Without a token a POST gets 401 before any body byte (header-only or trickling); a slow body gets 408."""
    process = Daemon(tmp_path, "--publish-token", "s3cret", "--body-timeout", "1")
    try:
        for auth in (b"", b"Authorization: Bearer wrong\r\n"):
            sock = socket.create_connection(("127.0.0.1", process.port), timeout=5)
            started = time.monotonic()
            sock.sendall(b"POST /events/x HTTP/1.1\r\nHost: x\r\n" + auth + b"Content-Length: 100000\r\n\r\nx")
            answer = sock.recv(4096)
            assert answer.split(b" ")[1] == (b"403" if auth else b"401")
            assert time.monotonic() - started < 0.5 and sock.recv(4096) == b""  # answered at once, then closed
            sock.close()
        sock = socket.create_connection(("127.0.0.1", process.port), timeout=5)
        started = time.monotonic()
        sock.sendall(
            b"POST /events/x HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nContent-Length: 10\r\n\r\nab"
        )
        answer = sock.recv(4096)
        assert answer.startswith(b"HTTP/1.1 408 ") and 0.9 < time.monotonic() - started < 2.5
        sock.close()
    finally:
        process.stop()


@pytest.mark.parametrize(("level", "per_channel_lines"), [("info", False), ("debug", True)])
def test_per_channel_lines_only_at_debug(tmp_path, level, per_channel_lines):
    """At the default --log-level the per-channel lines are not written; --log-level debug writes them."""
    args = ("--log-level", "debug") if level == "debug" else ()
    process = Daemon(tmp_path, *args)
    try:
        stream = LiveStream(process.port, "/events/quiet")
        wait_until(lambda: "stream opened: quiet" in process.log(), timeout=5)
        stream.close()
        wait_until(lambda: "stream closed: quiet" in process.log(), timeout=5)
        assert ("channel quiet subscribing" in process.log()) is per_channel_lines
    finally:
        process.stop()


def test_idle_connections_past_max_pending_make_room_for_new_requests(tmp_path):
    """--max-pending 3 with 6 idle connections open: the oldest are cut, /healthz and a stream still work."""
    process = Daemon(tmp_path, "--max-pending", "3", "--publish-token", "t")
    try:
        stream = LiveStream(process.port, "/events/kept")
        idle = [socket.create_connection(("127.0.0.1", process.port), timeout=5) for _ in range(6)]
        time.sleep(0.3)
        assert health(process.port)["streams"] == 1
        cut = 0
        for sock in idle[:3]:
            sock.settimeout(2)
            try:
                cut += sock.recv(1) == b""
            except (ConnectionResetError, TimeoutError):
                cut += 1
        assert cut == 3
        assert get(process.port, "/events/kept", "POST", b"still", {"Authorization": "Bearer t"})[0] == 200
        assert stream.read(1)[0].data == "still"
        assert "connections_cut_pending" in health(process.port)["counters"]
        stream.close()
        for sock in idle:
            sock.close()
    finally:
        process.stop()


def test_json_logs_are_one_object_per_line_with_the_streams_fields(tmp_path):
    """--log-format json (twistd -n: standard output): every line parses, and a stream's lines carry its fields."""
    process = Daemon(tmp_path, "--log-format", "json", "--log-level", "info")
    try:
        stream = LiveStream(process.port, "/events/news")
        wait_until(lambda: health(process.port)["streams"] == 1, timeout=5)
        stream.close()
        wait_until(lambda: "stream closed" in process.log(), timeout=5)
    finally:
        process.stop()
    records = [json.loads(line) for line in process.log().splitlines() if line.strip()]
    opened = [r for r in records if r["message"].startswith("stream opened")]
    assert opened and opened[0]["channels"] == "news" and opened[0]["peer"].startswith("127.0.0.1:")
    assert {"time", "level", "namespace", "message"} <= set(records[0]) and opened[0]["level"] == "info"
