"""Every transport a user can configure, with real clients on real connections.

One `twistd sse` listens on plain TCP, TLS (a certificate made here) and a UNIX socket;
curl (HTTP/1.1 and HTTP/1.0) and httpx-sse read streams on each, and every event must
arrive byte-exact and in order. Slow readers with tiny receive buffers push the writer
from its socket shortcut to Twisted's buffer and back.
"""

from __future__ import annotations

import http.client
import re
import socket
import ssl
import threading
import time

import pytest
from httpx_sse import connect_sse

from testbed import health, wait_until
from tests.listeners import PAYLOADS, Listeners, expected_bytes, without_heartbeats
from tests.sse_parser import SSEParser


@pytest.fixture
def listeners(tmp_path):
    server = Listeners(tmp_path, "--heartbeat", "0.2")
    yield server
    server.stop()


def _read_with_httpx_sse(server: Listeners, transport: str, count: int, got: list, errors: list) -> None:
    try:
        with server.httpx_client(transport) as client:
            with connect_sse(client, "GET", server.url(transport, "/events/t")) as source:
                assert source.response.headers["content-type"].startswith("text/event-stream")
                for event in source.iter_sse():
                    got.append(event)
                    if len(got) == count:
                        return
    except Exception as error:  # reported by the test thread
        errors.append(error)


@pytest.mark.parametrize("transport", ["tcp", "tls", "unix", "http1.0"])
def test_every_event_arrives_byte_exact_on_every_transport(listeners, tmp_path, transport):
    """curl reads, on each transport, exactly `retry:` and every published event's bytes, in order."""
    out = tmp_path / f"{transport}.out"
    curl = listeners.curl(transport, "/events/t", out)
    try:
        wait_until(lambda: health(listeners.port)["streams"] == 1, timeout=10)
        time.sleep(0.5)  # a couple of heartbeats go out before the events
        ids = [listeners.publish("t", data) for data in PAYLOADS]
        expected = b"retry: 3000\n" + expected_bytes(ids, PAYLOADS)
        wait_until(lambda: out.exists() and len(without_heartbeats(out.read_bytes())) >= len(expected), timeout=10)
    finally:
        curl.terminate()
        curl.wait()
    body = out.read_bytes()
    assert b":\n" in body  # heartbeats reached this transport too
    assert without_heartbeats(body) == expected
    events = SSEParser().feed(body)
    assert [e.data.encode() for e in events] == [re.sub(rb"\r\n|\r", b"\n", p) for p in PAYLOADS]
    assert [e.last_event_id for e in events] == ids


@pytest.mark.parametrize("transport", ["tcp", "tls", "unix"])
def test_httpx_sse_sees_only_the_published_events(listeners, transport):
    """httpx-sse (which reports an event for every blank line) yields exactly the published events, none empty."""
    got: list = []
    errors: list = []
    reader = threading.Thread(target=_read_with_httpx_sse, args=(listeners, transport, len(PAYLOADS), got, errors))
    reader.start()
    wait_until(lambda: health(listeners.port)["streams"] == 1, timeout=10)
    time.sleep(0.7)  # heartbeats go out before, between and after the events
    ids = []
    for data in PAYLOADS:
        ids.append(listeners.publish("t", data))
        time.sleep(0.05)
    reader.join(10)
    assert not errors, errors
    assert not reader.is_alive()
    assert [(e.event, e.data, e.id) for e in got] == [
        ("message", re.sub(rb"\r\n|\r", b"\n", data).decode(), event_id)
        for data, event_id in zip(PAYLOADS, ids, strict=True)
    ]
    assert got[0].retry is None or got[0].retry == 3000


def _slow_connection(server: Listeners, transport: str) -> http.client.HTTPConnection:
    """An HTTP connection whose socket has a 4 KiB receive buffer, reading nothing until told."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    port = server.tls_port if transport == "tls" else server.port
    sock.connect(("127.0.0.1", port))
    conn = http.client.HTTPConnection("localhost", port, timeout=20)
    if transport == "tls":
        context = ssl.create_default_context(cafile=str(server.ca_pem))
        conn.sock = context.wrap_socket(sock, server_hostname="localhost")
    else:
        conn.sock = sock
    return conn


@pytest.mark.parametrize("transport", ["tcp", "tls"])
def test_a_slow_reader_gets_everything_in_order(tmp_path, transport):
    """A reader with a tiny receive buffer that stalls, then reads, gets every event whole and in order."""
    server = Listeners(tmp_path, "--max-queue", str(64 << 20), "--heartbeat", "0")
    try:
        slow = _slow_connection(server, transport)
        slow.request("GET", "/events/big")
        response = slow.getresponse()
        assert response.status == 200
        payloads = [(b"%03d:" % n) + bytes([65 + n % 26]) * (n * 997 % 40000) for n in range(120)]
        ids = [server.publish("big", data) for data in payloads]
        time.sleep(0.3)  # everything is published while the client reads nothing
        parser, events = SSEParser(), []
        deadline = time.monotonic() + 30
        while len(events) < len(payloads) and time.monotonic() < deadline:
            chunk = response.read1(8192)
            assert chunk, f"stream ended after {len(events)} events"
            events += parser.feed(chunk)
            time.sleep(0.0005)
        assert [e.last_event_id for e in events] == ids
        assert [e.data.encode() for e in events] == payloads
        assert health(server.port)["counters"].get("slow_clients_cut", 0) == 0
        slow.close()
    finally:
        server.stop()


@pytest.mark.parametrize("transport", ["tcp", "tls", "unix", "http1.0", "http2"])
def test_publishing_one_event_and_a_batch_is_answered_whole_on_every_transport(listeners, transport):
    """A publish answer is one unchunked write with its length: curl gets the JSON whole over every
    transport, HTTP/1.0 and HTTP/2 included, and the events reach a stream."""
    import json
    import subprocess

    stream = http.client.HTTPConnection("127.0.0.1", listeners.port, timeout=10)
    stream.request("GET", "/events/pubs")
    response = stream.getresponse()
    wait_until(lambda: health(listeners.port)["channels"] == 1, timeout=5)

    def curl(path, body, *headers):
        argv = listeners.curl_argv(transport, path, "-s", "-X", "POST", "--data-binary", body,
                                   "-w", "\n%{http_code} %{http_version}",
                                   headers=("Authorization: Bearer s3cret", *headers))  # fmt: skip
        done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=True)
        body, _, status = done.stdout.rpartition("\n")
        return status, json.loads(body)

    versions = {"http1.0": ("1", "1.0"), "http2": ("2",)}.get(transport, ("1.1",))  # curl's %{http_version}
    status, one = curl("/events/pubs", "single")
    assert status in {f"200 {v}" for v in versions} and one["channel"] == "pubs"
    status, batch = curl("/events", '{"channel": "pubs", "data": "a"}\n{"channel": "pubs", "data": "b"}',
                         "Content-Type: application/x-ndjson")  # fmt: skip
    assert status in {f"200 {v}" for v in versions} and len(batch["ids"]) == 2
    parser, events = SSEParser(), []
    while len(events) < 3:
        events += [e for e in parser.feed(response.read1(65536)) if e.data]
    assert [(e.data, e.last_event_id) for e in events] == [("single", one["id"]), ("a", batch["ids"][0]),
                                                           ("b", batch["ids"][1])]  # fmt: skip
    stream.close()


@pytest.mark.parametrize("transport", ["tcp", "tls", "unix", "http1.0", "http2"])
def test_resumes_of_several_channels_get_their_page_then_live_events_on_every_transport(listeners, tmp_path, transport):
    """Three curls resume a two-channel stream: two from the same id (the second gets the whole page the
    first one's reads made) and one from the newest id (an empty page, which must not end its stream);
    each then gets a live event. On every transport, with the socket shortcut where it applies."""
    x, y = f"x{transport.replace('.', '')}", f"y{transport.replace('.', '')}"
    ids = [listeners.publish(channel, data) for channel, data in ((x, b"a0"), (y, b"b1"), (x, b"a2"))]
    path = f"/events?channel={x}&channel={y}"
    resumes = [(ids[0], "twice-1"), (ids[0], "twice-2"), (ids[2], "nothing-missed")]
    outs = {name: tmp_path / f"{name}.out" for _, name in resumes}
    curls = []
    try:
        for count, (after, name) in enumerate(resumes, 1):
            curls.append(listeners.curl(transport, path, outs[name], f"Last-Event-ID: {after}"))
            wait_until(lambda count=count: health(listeners.port)["streams"] == count, timeout=10)
        live = listeners.publish(y, b"live")

        def events(name):
            return [(e.data, e.last_event_id) for e in SSEParser().feed(outs[name].read_bytes()) if e.data]

        wait_until(lambda: all(out.exists() and b"live" in out.read_bytes() for out in outs.values()), timeout=10)
    finally:
        for process in curls:
            process.terminate()
            process.wait()
    missed = [("b1", ids[1]), ("a2", ids[2]), ("live", live)]
    assert events("twice-1") == events("twice-2") == missed
    assert events("nothing-missed") == [("live", live)]


def _raw_socket(server: Listeners, transport: str) -> socket.socket:
    if transport == "unix":
        sock = socket.socket(socket.AF_UNIX)
        sock.connect(str(server.unix_path))
    else:
        sock = socket.create_connection(("127.0.0.1", server.tls_port if transport == "tls" else server.port))
    sock.settimeout(10)
    if transport == "tls":
        return server.tls_context().wrap_socket(sock, server_hostname="localhost")
    return sock


class _Answers:
    """HTTP/1.1 answers read off a socket one by one, by their Content-Length."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._buffer = b""

    def next(self) -> tuple[int, bytes]:
        while b"\r\n\r\n" not in self._buffer:
            self._buffer += self._recv()
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        length = int(re.search(rb"(?im)^content-length: *(\d+)", head)[1])
        while len(rest) < length:
            rest += self._recv()
        self._buffer = rest[length:]
        return int(head.split(b" ")[1]), rest[:length]

    def _recv(self) -> bytes:
        data = self._sock.recv(65536)
        assert data, "the server closed the connection"
        return data


def _publish_request(channel: str, body: bytes) -> bytes:
    return (b"POST /events/%s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret\r\nContent-Length: %d\r\n\r\n%s"
            % (channel.encode(), len(body), body))  # fmt: skip


@pytest.mark.parametrize("transport", ["tcp", "tls", "unix"])
def test_a_publishers_posts_one_by_one_pipelined_split_and_then_a_get_are_answered_in_order(listeners, transport):
    """On one connection: POSTs one by one and three pipelined in one send (read whole), one split over two
    sends (Twisted's channel reads the connection from there on), GET /healthz and a last POST: every answer
    whole and in order, every event on the stream once, in order, with the id its answer gave."""
    import json

    stream = http.client.HTTPConnection("127.0.0.1", listeners.port, timeout=10)
    stream.request("GET", "/events/kp")
    response = stream.getresponse()
    wait_until(lambda: health(listeners.port)["channels"] == 1, timeout=5)
    sock = _raw_socket(listeners, transport)
    answers = _Answers(sock)
    ids, sent = [], []

    def answered(count: int) -> None:
        for _ in range(count):
            status, body = answers.next()
            assert status == 200, body
            ids.append(json.loads(body)["id"])

    for n in range(5):
        sent.append(b"single %d" % n)
        sock.sendall(_publish_request("kp", sent[-1]))
        answered(1)
    sent += [b"pipelined %d" % n for n in range(3)]
    sock.sendall(b"".join(_publish_request("kp", body) for body in sent[-3:]))
    answered(3)
    sent.append(b"split")
    request = _publish_request("kp", sent[-1])
    sock.sendall(request[:20])
    time.sleep(0.2)
    sock.sendall(request[20:])
    answered(1)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    status, body = answers.next()
    assert status == 200 and json.loads(body)["status"] == "ok"
    sent.append(b"after the GET")
    sock.sendall(_publish_request("kp", sent[-1]))
    answered(1)
    parser, events = SSEParser(), []
    while len(events) < len(sent):
        events += [e for e in parser.feed(response.read1(65536)) if e.data]
    assert [(e.data.encode(), e.last_event_id) for e in events] == list(zip(sent, ids, strict=True))
    sock.close()
    stream.close()
