"""HTTP/2 on TLS listeners, with real HTTP/2 clients: httpx, curl --parallel, and the h2 library.

Many streams share one connection; every guarantee of HTTP/1.1 holds per stream: events
byte-exact, heartbeats, resume, the EventSource-safe refusal past --max-connections
(which counts streams), the slow-client bound through HTTP/2 flow control (only the
stalled stream is cut), the header deadline and body limit, and a drain that ends every
stream with its retry: hint before GOAWAY.
"""

from __future__ import annotations

import asyncio
import json
import re
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from testbed import health, wait_until
from tests.h2_client import H2Client
from tests.listeners import PAYLOADS, TOKEN, Listeners, expected_bytes, without_heartbeats


@contextmanager
def _h2(tmp_path, *args: str) -> Iterator[tuple[Listeners, H2Client]]:
    """A daemon with these options and an h2 client connected to its TLS listener."""
    server = Listeners(tmp_path, *args)
    client = H2Client(server.tls_port, str(server.ca_pem))
    try:
        yield server, client
    finally:
        client.close()
        server.stop()


@pytest.fixture
def server(tmp_path):
    listeners = Listeners(tmp_path, "--heartbeat", "0.2")
    yield listeners
    listeners.stop()


def test_twenty_streams_on_one_connection_get_every_event_byte_exact(server):
    """httpx multiplexes 20 streams and a publish on ONE HTTP/2 connection; each stream gets every byte."""

    async def scenario():
        async with httpx.AsyncClient(http2=True, verify=server.tls_context(), timeout=20) as client:
            url = server.url("tls", "/events/t")
            bodies: list[bytearray] = [bytearray() for _ in range(20)]
            peers: set = set()
            published: list[str] = []
            expected: list[bytes] = []

            async def read(index: int) -> None:
                async with client.stream("GET", url) as response:
                    assert (response.status_code, response.http_version) == (200, "HTTP/2")
                    peers.add(response.extensions["network_stream"].get_extra_info("client_addr"))
                    async for chunk in response.aiter_raw():
                        bodies[index] += chunk
                        if expected and len(without_heartbeats(bytes(bodies[index]))) >= len(expected[0]):
                            return

            readers = [asyncio.create_task(read(i)) for i in range(20)]
            for _ in range(200):
                if health(server.port)["streams"] == 20:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)  # heartbeats go out first
            for data in PAYLOADS:
                response = await client.post(url, content=data, headers=TOKEN)
                assert (response.status_code, response.http_version) == (200, "HTTP/2")
                published.append(response.json()["id"])
            expected.append(b"retry: 3000\n" + expected_bytes(published, PAYLOADS))
            # A stream that already had everything before `expected` was known returns on its next heartbeat.
            await asyncio.wait_for(asyncio.gather(*readers), 10)
            return bodies, peers, expected[0]

    bodies, peers, expected = asyncio.run(scenario())
    assert len(peers) == 1  # one connection
    for body in bodies:
        assert b":\n" in body
        assert without_heartbeats(bytes(body)) == expected


def test_curl_parallel_streams_share_one_connection(server, tmp_path):
    """curl --http2 --parallel reads 20 streams over one connection, each byte-exact."""
    outs = [tmp_path / f"s{i}.out" for i in range(20)]
    argv = ["curl", "-sN", "--http2", "--parallel", "--parallel-max", "20", "--max-time", "6",
            "--cacert", str(server.ca_pem), "-w", "%{http_version} %{num_connects}\\n"]  # fmt: skip
    for out in outs:
        argv += ["-o", str(out), server.url("tls", "/events/c")]
    curl = subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: health(server.port)["streams"] == 20, timeout=10)
        ids = [server.publish("c", data) for data in PAYLOADS]
        expected = b"retry: 3000\n" + expected_bytes(ids, PAYLOADS)
        wait_until(lambda: all(len(without_heartbeats(o.read_bytes())) >= len(expected) for o in outs), timeout=10)
    finally:
        report, _ = curl.communicate(timeout=20)  # each transfer ends at --max-time and reports
    assert all(without_heartbeats(out.read_bytes()) == expected for out in outs)
    lines = report.split()
    assert set(lines[0::2]) == {"2"}, report  # every transfer was HTTP/2
    assert sum(int(n) for n in lines[1::2]) == 1, report  # and one connection was made for all of them


def test_a_stalled_stream_is_cut_while_the_others_go_on(tmp_path):
    """A stream whose flow-control window the client never reopens is cut past --max-queue; its neighbours get all."""
    with _h2(tmp_path, "--max-queue", str(256 * 1024), "--heartbeat", "0") as (server, client):
        live = [client.request("GET", "/events/big") for _ in range(2)]
        stalled = client.request("GET", "/events/big")
        client.stalled.add(stalled)
        client.run_until(lambda: health(server.port)["streams"] == 3)
        payloads = [(b"%02d:" % n) + b"z" * 16000 for n in range(60)]  # ~960 KB: past the window and --max-queue
        ids: list[str] = []
        publisher = threading.Thread(target=lambda: ids.extend(server.publish("big", data) for data in payloads))
        publisher.start()  # while this thread reads, as a browser would
        client.run_until(lambda: not publisher.is_alive(), timeout=30)
        client.run_until(lambda: all(len(client.streams[s].events()) == len(payloads) for s in live), timeout=20)
        client.run_until(lambda: client.streams[stalled].reset, timeout=10)
        for stream_id in live:
            events = client.streams[stream_id].events()
            assert [e.last_event_id for e in events] == ids
            assert [e.data.encode() for e in events] == payloads
            assert not client.streams[stream_id].reset
        assert len(client.streams[stalled].events()) < len(payloads)
        counters = health(server.port)["counters"]
        assert counters["slow_clients_cut"] == 1
        assert health(server.port)["streams"] == 2
        # The connection is still good: a new stream on it works.
        again = client.request("GET", "/healthz")
        client.run_until(lambda: client.streams[again].ended)
        assert client.streams[again].status == 200


def test_resume_over_http2(server):
    """Last-Event-ID on an HTTP/2 stream replays exactly what came after it, then live events."""
    ids = [server.publish("r", b"%d" % n) for n in range(5)]
    client = H2Client(server.tls_port, str(server.ca_pem))
    try:
        stream = client.request("GET", "/events/r", {"last-event-id": ids[1]})
        client.run_until(lambda: len(client.streams[stream].events()) == 3)
        later = server.publish("r", b"live")
        client.run_until(lambda: len(client.streams[stream].events()) == 4)
        events = client.streams[stream].events()
        assert [(e.data, e.last_event_id) for e in events] == [("2", ids[2]), ("3", ids[3]), ("4", ids[4]),
                                                                ("live", later)]  # fmt: skip
    finally:
        client.close()


def test_max_connections_counts_http2_streams(tmp_path):
    """--max-connections 3: of 5 streams on one HTTP/2 connection, 2 get the EventSource-safe refusal."""
    with _h2(tmp_path, "--max-connections", "3", "--heartbeat", "0") as (server, client):
        streams = []
        for _ in range(5):
            streams.append(client.request("GET", "/events/m"))
            client.run_until(lambda s=streams[-1]: client.streams[s].status is not None)
        client.run_until(lambda: sum(client.streams[s].ended for s in streams) == 2)
        refused = [client.streams[s] for s in streams if client.streams[s].ended]
        assert all(r.status == 200 and re.match(rb"retry: \d+\n:", bytes(r.body)) for r in refused)
        assert health(server.port)["streams"] == 3


@pytest.mark.parametrize("declared", [True, False])
def test_body_limit_ends_only_that_stream(tmp_path, declared):
    """A POST over the body limit (declared, or found while it arrives) gets 413 on its stream; the others go on."""
    with _h2(tmp_path, "--max-message-size", "1000", "--heartbeat", "0") as (server, client):
        listening = client.request("GET", "/events/b")
        client.run_until(lambda: health(server.port)["streams"] == 1)
        too_big = client.request("POST", "/events/b", {"authorization": TOKEN["Authorization"]}, b"x" * 5000, declared)
        client.run_until(lambda: client.streams[too_big].ended or client.streams[too_big].reset)
        assert client.streams[too_big].status == 413
        fine = client.request("POST", "/events/b", {"authorization": TOKEN["Authorization"]}, b"small")
        client.run_until(lambda: client.streams[fine].ended)
        assert client.streams[fine].status == 200
        client.run_until(lambda: len(client.streams[listening].events()) == 1)
        assert client.streams[listening].events()[0].data == "small"


def test_header_deadline_cuts_an_http2_connection_that_opens_no_stream(tmp_path):
    """A client that negotiates HTTP/2 and never completes a request is cut at --header-timeout."""
    with _h2(tmp_path, "--header-timeout", "1") as (server, client):
        started = time.monotonic()
        client.run_until(lambda: client.closed, timeout=5)
        assert 0.9 < time.monotonic() - started < 3


def test_an_open_stream_keeps_its_connection_past_the_header_deadline(tmp_path):
    """With a stream open, an HTTP/2 connection outlives --header-timeout."""
    with _h2(tmp_path, "--header-timeout", "1", "--heartbeat", "0") as (server, client):
        stream = client.request("GET", "/events/k")
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            client.pump()
        assert not client.closed and health(server.port)["streams"] == 1
        event_id = server.publish("k", b"still here")
        client.run_until(lambda: len(client.streams[stream].events()) == 1)
        assert client.streams[stream].events()[0].last_event_id == event_id


def test_drain_ends_every_stream_with_retry_then_goaway(tmp_path):
    """On SIGTERM every HTTP/2 stream gets its events and a retry: line and ends cleanly; then GOAWAY."""
    with _h2(tmp_path, "--heartbeat", "0") as (server, client):
        streams = [client.request("GET", "/events/d") for _ in range(5)]
        client.run_until(lambda: health(server.port)["streams"] == 5)
        ids = [server.publish("d", b"%d" % n) for n in range(3)]
        client.run_until(lambda: all(len(client.streams[s].events()) == 3 for s in streams))
        server.daemon.process.send_signal(signal.SIGTERM)
        client.run_until(lambda: client.goaway is not None, timeout=10)
        for stream_id in streams:
            stream = client.streams[stream_id]
            assert stream.ended and not stream.reset
            assert [e.last_event_id for e in stream.events()] == ids
            assert re.search(rb"\nretry: \d+\n$", bytes(stream.body)), bytes(stream.body)[-40:]
        assert client.goaway.error_code == 0  # NO_ERROR
        server.daemon.process.wait(10)


def test_http11_clients_still_work_on_the_tls_listener(server):
    """A client that offers only HTTP/1.1 by ALPN gets HTTP/1.1 on the same listener."""
    with httpx.Client(verify=server.tls_context(), http2=False, timeout=5) as client:
        response = client.get(server.url("tls", "/healthz"))
    assert (response.status_code, response.http_version) == (200, "HTTP/1.1")
    assert json.loads(response.text)["status"] == "ok"


def test_a_publish_without_a_token_is_refused_on_its_stream_before_its_body(tmp_path):
    """Over HTTP/2 a POST whose headers fail gets 401 on its stream (which is reset); the connection goes on."""
    with _h2(tmp_path, "--heartbeat", "0") as (server, client):
        refused = client.request("POST", "/events/z", body=b"x" * 10000)
        client.run_until(lambda: client.streams[refused].status is not None)
        assert client.streams[refused].status == 401
        fine = client.request("POST", "/events/z", {"authorization": TOKEN["Authorization"]}, b"ok")
        client.run_until(lambda: client.streams[fine].ended)
        assert client.streams[fine].status == 200
