"""HTTP/2 attacks on a real daemon's TLS listener, with raw frames over real TLS sockets (testbed/h2_attacks.py).

Each attack keeps sending until the server closes: an oversized frame followed by zeros, a
header block without end, floods of each kind of control frame, and malformed frames
that h2 itself rejects. Each must get its GOAWAY and a close within moments, the daemon's
memory must stay where it was, every cut must be counted and logged in one line, and
real clients (httpx, curl) that do real work must never come near the budget.
"""

from __future__ import annotations

import asyncio
import re
import struct
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from testbed import get, health, wait_until
from testbed.h2_attacks import (
    ATTACKS,
    DATA,
    HEADERS,
    PING,
    PREFACE,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    flood,
    frame,
    request_block,
)
from tests.h2_client import H2Client
from tests.listeners import TOKEN, Listeners
from twisted_sse.web._connection import HANG_UP_GRACE

_CODES = {"oversized": 0x6}  # FRAME_SIZE_ERROR; every other attack: ENHANCE_YOUR_CALM (0xb)
_OPEN = PREFACE + frame(SETTINGS, 0, 0)
_KEEP_SENDING = frame(PING, 0, 0, bytes(8)) * 4  # the attacker never stops (within the budget or not)
MALFORMED = {
    "window_update_of_zero": (frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 0)), 0x1),
    "rst_stream_on_stream_zero": (frame(RST_STREAM, 0, 0, bytes(4)), 0x1),
    "ping_of_three_bytes": (frame(PING, 0, 0, b"123"), 0x6),
    "settings_with_a_bad_window": (frame(SETTINGS, 0, 0, struct.pack(">HI", 4, 1 << 31)), 0x3),
    "headers_on_an_even_stream": (frame(HEADERS, 0x5, 2, request_block("GET", "/healthz")), 0x1),
    "undecodable_hpack": (frame(HEADERS, 0x5, 1, b"\xff\xff\xff\xff"), 0x1),
    "data_on_an_idle_stream": (frame(DATA, 0x1, 7, b"x"), 0x1),
}


def _rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def _cuts(port: int) -> dict[str, float]:
    body = get(port, "/metrics")[2].decode()
    families = {f.name: f for f in text_string_to_metric_families(body)}
    return {s.labels["reason"]: s.value for s in families["sse_http2_connections_cut"].samples
            if s.name.endswith("_total")}  # fmt: skip


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    listeners = Listeners(tmp_path_factory.mktemp("h2attacks"), "--metrics", "--heartbeat", "0.5",
                          "--log-level", "debug")  # fmt: skip
    yield listeners
    listeners.stop()


@pytest.mark.parametrize("attack", sorted(ATTACKS))
def test_each_attack_gets_its_goaway_and_a_close_at_once(server, attack):
    """The server answers GOAWAY with the attack's code and closes well before the hang-up grace runs out,
    having taken no more than kernel buffers hold."""
    before = _cuts(server.port)
    outcome = flood(server.tls_port, str(server.ca_pem), attack, seconds=HANG_UP_GRACE + 5)
    assert outcome.closed and outcome.goaway == _CODES.get(attack, 0xB), outcome
    assert outcome.seconds < HANG_UP_GRACE - 1, outcome  # closed when the GOAWAY went out, not by the abort
    assert outcome.sent < 32 << 20, outcome
    reason = "protocol_error" if attack == "oversized" else "control_flood"
    wait_until(lambda: _cuts(server.port).get(reason, 0) == before.get(reason, 0) + 1, timeout=5)


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_a_malformed_frame_gets_goaway_with_h2s_code_and_nothing_more_is_read(server, name):
    """A frame h2 rejects, then more frames without end: GOAWAY with the error's code, and the close."""
    bad, code = MALFORMED[name]
    before = _cuts(server.port).get("protocol_error", 0)
    outcome = flood(server.tls_port, str(server.ca_pem), (_OPEN + bad, _KEEP_SENDING), seconds=HANG_UP_GRACE + 5)
    assert outcome.closed and outcome.goaway == code and outcome.seconds < HANG_UP_GRACE - 1, outcome
    wait_until(lambda: _cuts(server.port).get("protocol_error", 0) == before + 1, timeout=5)


def test_back_to_back_attacks_leave_memory_where_it_was_and_other_clients_served(server):
    """Three seconds of each memory attack, connection after connection, grow the daemon by under 50 MB
    (the code before grew by 550 MB in five seconds of one); streams open meanwhile get every event."""
    h2_reader = H2Client(server.tls_port, str(server.ca_pem))
    stream_id = h2_reader.request("GET", "/events/calm")
    h2_reader.run_until(lambda: h2_reader.streams[stream_id].status == 200)
    pid = server.daemon.process.pid
    before = _rss_mib(pid)
    connections = 0
    for attack in ("oversized", "continuation", "ping"):
        deadline = 3.0
        while deadline > 0:
            outcome = flood(server.tls_port, str(server.ca_pem), attack, seconds=deadline)
            deadline -= max(outcome.seconds, 0.01)
            connections += 1
            h2_reader.pump(0)
    grown = _rss_mib(pid) - before
    assert grown < 50, f"{grown:.0f} MB more after {connections} attacking connections"
    ids = [server.publish("calm", b"event %d" % n) for n in range(3)]
    h2_reader.run_until(lambda: len(h2_reader.streams[stream_id].events()) == 3, timeout=10)
    assert [e.last_event_id for e in h2_reader.streams[stream_id].events()] == ids
    assert h2_reader.goaway is None and not h2_reader.streams[stream_id].reset
    h2_reader.close()


def test_cuts_are_logged_in_one_line_each_within_the_budget_and_never_with_a_traceback(server):
    """Every cut so far is in the log as one line or in a summary's count; no traceback anywhere."""
    flood(server.tls_port, str(server.ca_pem), "oversized", seconds=3)
    wait_until(lambda: "HTTP/2 connections cut in the last second" in server.daemon.log()
               or server.daemon.log().count("cutting an HTTP/2 client") == sum(_cuts(server.port).values()),
               timeout=5)  # fmt: skip
    wait_until(lambda: _logged_cuts(server.daemon.log()) == sum(_cuts(server.port).values()), timeout=5)
    log = server.daemon.log()
    assert "Traceback" not in log and "Unhandled" not in log
    for line in log.splitlines():
        if "cutting an HTTP/2 client" in line:
            assert line.endswith(("(protocol_error)", "(control_flood)")), line


def _logged_cuts(log: str) -> int:
    summed = sum(int(n) for n in re.findall(r"\.\.\. and (\d+) more HTTP/2 connections cut", log))
    return log.count("cutting an HTTP/2 client") + summed


def _budget_used_per_connection(log: str) -> list[tuple[int, int, int]]:
    """(streams, control frames, the most of the budget in use at once) of each HTTP/2 connection that closed,
    from the daemon's debug lines."""
    pattern = r"HTTP/2 connection from \S+ closed: (\d+) streams, (\d+) control frames, at most (\d+) of 200"
    return [(int(a), int(b), int(c)) for a, b, c in re.findall(pattern, log)]


def test_httpx_and_curl_over_twenty_streams_stay_far_below_the_budget(tmp_path):
    """Real clients doing real work (20 streams each, events, publishes) are never cut, and never have more
    than a tenth of the budget (200 control frames) in use at once."""
    server = Listeners(tmp_path, "--metrics", "--heartbeat", "0.2", "--log-level", "debug")
    try:

        async def with_httpx() -> None:
            async with httpx.AsyncClient(http2=True, verify=server.tls_context(), timeout=20) as client:
                url = server.url("tls", "/events/real")

                async def read() -> None:
                    async with client.stream("GET", url) as response:
                        assert response.http_version == "HTTP/2"
                        async for chunk in response.aiter_raw():
                            if b"done" in chunk:
                                return

                readers = [asyncio.create_task(read()) for _ in range(20)]
                while health(server.port)["streams"] < 20:
                    await asyncio.sleep(0.05)
                for n in range(50):
                    response = await client.post(url, content=b"x" * 2000 + b"%d" % n, headers=TOKEN)
                    assert response.status_code == 200
                await client.post(url, content=b"done", headers=TOKEN)
                await asyncio.gather(*readers)

        asyncio.run(with_httpx())
        argv = ["curl", "-sN", "--http2", "--parallel", "--parallel-max", "20", "--max-time", "60",
                "--cacert", str(server.ca_pem)]  # fmt: skip
        outs = [tmp_path / f"curl{n}.out" for n in range(20)]
        for out in outs:
            argv += ["-o", str(out), server.url("tls", "/events/real")]
        curl = subprocess.Popen(argv)
        try:
            wait_until(lambda: health(server.port)["streams"] == 20, timeout=20)
            for n in range(20):
                server.publish("real", b"y" * 5000 + b"%d" % n)
            wait_until(lambda: all(out.exists() and b"y" * 5000 + b"19" in out.read_bytes() for out in outs),
                       timeout=20)  # fmt: skip
        finally:
            curl.terminate()  # its streams would last for ever: it leaves, and the daemon logs the connection
            curl.wait(timeout=10)
        wait_until(lambda: len(_budget_used_per_connection(server.daemon.log())) >= 2, timeout=10)
        connections = _budget_used_per_connection(server.daemon.log())
        assert min(streams for streams, _, _ in connections) >= 20, connections
        assert max(used for _, _, used in connections) <= 20, connections
        assert _cuts(server.port) == {}
    finally:
        server.stop()


def test_requests_reset_in_the_same_read_leave_the_connection_serving(server):
    """A request and its reset sent together (a client cancelling at once, a dozen times) raise nothing:
    the connection's open stream still gets its events and a later request its answer."""
    before = len(server.daemon.log())
    client = H2Client(server.tls_port, str(server.ca_pem))
    listening = client.request("GET", "/events/together")
    client.run_until(lambda: client.streams[listening].status == 200)
    pairs = [("/healthz", "/healthz"), ("/events/together", "/events/other")] * 6
    for cancelled, kept in pairs:
        first = client.conn.get_next_available_stream_id()
        client.conn.send_headers(first, [(":method", "GET"), (":path", cancelled), (":scheme", "https"),
                                         (":authority", "localhost")], end_stream=True)  # fmt: skip
        client.conn.reset_stream(first)
        client.streams[first] = type(client.streams[listening])()
        second = client.request("GET", kept)  # sent with the two frames before it: one write
        client.run_until(lambda second=second: client.streams[second].status == 200)
    event_id = server.publish("together", b"still here")
    client.run_until(lambda: any(e.last_event_id == event_id for e in client.streams[listening].events()))
    assert client.goaway is None and not client.closed
    client.close()
    log = server.daemon.log()[before:]
    assert "Traceback" not in log and "Unhandled" not in log and "cutting an HTTP/2 client" not in log
