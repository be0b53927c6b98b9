"""--auth-url on a real daemon, asking a real HTTP application (a stand-in for a Django view)."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from testbed import Daemon, free_port, get, health, wait_until
from tests.live import LiveStream


class _App(ThreadingHTTPServer):
    """Allows session=alice on user.alice, bob on user.bob; redirects the anonymous; slow and boom misbehave."""

    daemon_threads = True

    def __init__(self) -> None:
        self.asked: Counter[tuple[str, str]] = Counter()
        self.forwarded: list[str] = []
        self.delay = 0.0
        super().__init__(("127.0.0.1", free_port()), _Handler)


class _Handler(BaseHTTPRequestHandler):
    server: _App

    def log_message(self, *args) -> None:
        pass

    def do_GET(self) -> None:
        cookie = self.headers.get("Cookie", "")
        self.server.asked[(cookie, self.headers["X-SSE-Channels"])] += 1
        self.server.forwarded.append(self.headers["X-Forwarded-For"])
        time.sleep(self.server.delay)
        user = cookie.split(";")[0].removeprefix("session=")
        if user == "slow":
            time.sleep(5)
        if user == "boom":
            return self._send(500, b"oops")
        if user in ("alice", "bob"):
            return self._send(200, json.dumps({"channels": [f"user.{user}"]}).encode())
        self.send_response(302)
        self.send_header("Location", "/login")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _send(self, code: int, body: bytes) -> None:
        self.send_response(code)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def app():
    server = _App()
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def daemon(tmp_path, app):
    process = Daemon(tmp_path, "--publish-token", "static", "--auth-url", f"http://127.0.0.1:{app.server_port}/auth",
                     "--auth-timeout", "1", "--public", "news", "--max-streams-per-ip", "0",
                     "--max-pending", "100000")  # fmt: skip
    yield process
    process.stop()
    assert "Unhandled" not in process.log() and "Traceback" not in process.log()


def _cookie(user: str) -> dict[str, str]:
    return {"Cookie": f"session={user}"}


def test_the_application_decides_who_reads_what(daemon, app):
    """alice reads user.alice and not user.bob; the anonymous are refused (the app's login redirect: 401)."""
    alice = LiveStream(daemon.port, "/events/user.alice", _cookie("alice"))
    assert alice.response.status == 200
    get(daemon.port, "/events/user.alice", "POST", b"hi alice", {"Authorization": "Bearer static"})
    assert [e.data for e in alice.read(1)] == ["hi alice"]
    assert get(daemon.port, "/events/user.bob", headers=_cookie("alice"))[0] == 403
    assert get(daemon.port, "/events/user.bob")[0] == 401
    assert get(daemon.port, "/events/news", "HEAD")[0] == 200  # public: the app is not asked
    assert not any(channels == "news" for _, channels in app.asked)
    alice.close()


def test_a_client_x_forwarded_for_is_not_passed_on(daemon, app):
    """The app sees the address twisted-sse resolved, not what the client claims."""
    get(daemon.port, "/events/user.alice", "HEAD", headers={**_cookie("alice"), "X-Forwarded-For": "6.6.6.6"})
    assert app.forwarded == ["127.0.0.1"]


@pytest.mark.parametrize("user", ["slow", "boom"])
def test_a_failing_application_is_a_passing_failure(daemon, user):
    """A hanging (past --auth-timeout) or failing app gets the stream 200 + retry:, never a denial."""
    started = time.monotonic()
    status, headers, body = get(daemon.port, "/events/user.x", headers=_cookie(user))
    assert status == 200 and headers["Content-Type"].startswith("text/event-stream")
    assert body.startswith(b"retry: ") and b"authorization callback failed" in body
    assert time.monotonic() - started < 3
    assert health(daemon.port)["counters"]["auth_unavailable"] == 1


def test_a_reconnect_storm_asks_the_application_once(daemon, app):
    """1,000 streams with the same cookie and channel at once, the app answering slowly: one request."""
    app.delay = 0.5
    request = b"GET /events/user.alice HTTP/1.1\r\nHost: x\r\nCookie: session=alice\r\n\r\n"
    clients = []
    try:
        for _ in range(1000):
            sock = socket.create_connection(("127.0.0.1", daemon.port))
            sock.sendall(request)
            clients.append(sock)
        wait_until(lambda: health(daemon.port)["streams"] == 1000, timeout=30)
        assert app.asked[("session=alice", "user.alice")] == 1
        for sock in clients[:5]:
            assert sock.recv(64).startswith(b"HTTP/1.1 200 ")
    finally:
        for sock in clients:
            sock.close()


def test_a_client_that_leaves_while_the_app_thinks_holds_nothing(daemon):
    """A stream request whose client goes before the answer opens nothing and leaves nothing behind."""
    sock = socket.create_connection(("127.0.0.1", daemon.port))
    sock.sendall(b"GET /events/user.slow HTTP/1.1\r\nHost: x\r\nCookie: session=slow\r\n\r\n")
    time.sleep(0.2)
    sock.close()
    time.sleep(1.5)  # past --auth-timeout
    report = health(daemon.port)
    assert (report["streams"], report["channels"]) == (0, 0)


def test_many_different_credentials_in_a_row_all_get_answers(daemon, app):
    """Different credentials one after another each get a call of their own and an answer."""
    for n in range(40):
        assert get(daemon.port, "/events/user.alice", "HEAD", headers={"Cookie": f"session=alice; n={n}"})[0] == 200
    assert app.asked[("session=alice; n=39", "user.alice")] == 1
    assert "auth_unavailable" not in health(daemon.port)["counters"]
