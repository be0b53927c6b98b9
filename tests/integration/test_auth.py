"""Private channels on a real `twistd sse --jwt-key`, with real clients."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from testbed import REPO, Daemon, get, health, source_env, wait_until
from tests.live import LiveStream

SECRET = "integration-secret-of-32-bytes!!"


def _mint(*args: str) -> str:
    command = [sys.executable, "-c", "from twisted_sse.tokens import main; raise SystemExit(main())"]
    out = subprocess.run([*command, "--key", SECRET, *args], capture_output=True, text=True, env=source_env(),
                         cwd=REPO, check=True)  # fmt: skip
    return out.stdout.strip()


@pytest.fixture
def daemon(tmp_path):
    process = Daemon(tmp_path, "--publish-token", "static", "--jwt-key", SECRET, "--public", "news",
                     "--jwt-query", "--access-log")  # fmt: skip
    yield process
    process.stop()


def test_each_user_reads_only_their_own_channel(daemon):
    """Two users with cookies from sse-token each get their own events; anonymous and forged clients get 401."""
    alice = LiveStream(daemon.port, "/events/user.1", {"Cookie": f"sse_token={_mint('--subscribe', 'user.1')}"})
    bob = LiveStream(daemon.port, "/events/user.2", {"Cookie": f"sse_token={_mint('--subscribe', 'user.2')}"})
    assert (alice.response.status, bob.response.status) == (200, 200)
    for who in ("user.1", "user.2"):
        get(daemon.port, f"/events/{who}", "POST", f"for {who}".encode(), {"Authorization": "Bearer static"})
    assert [e.data for e in alice.read(1)] == ["for user.1"]
    assert [e.data for e in bob.read(1)] == ["for user.2"]
    assert get(daemon.port, "/events/user.1")[0] == 401
    assert get(daemon.port, "/events/user.1", headers={"Cookie": "sse_token=eyJforged.x.y"})[0] == 401
    stolen = get(daemon.port, "/events/user.1", headers={"Cookie": f"sse_token={_mint('--subscribe', 'user.2')}"})
    assert stolen[0] == 403
    counters = health(daemon.port)["counters"]
    assert (counters["refused_unauthenticated"], counters["refused_forbidden"]) == (2, 1)
    alice.close()
    bob.close()


def test_publish_token_from_the_header_only(daemon):
    """A JWT with a publish grant publishes from Authorization; the same token as a cookie is refused."""
    token = _mint("--publish", "news")
    listener = LiveStream(daemon.port, "/events/news")  # public: no token needed
    status, _, body = get(daemon.port, "/events/news", "POST", b"by token", {"Authorization": f"Bearer {token}"})
    assert status == 200 and json.loads(body)["channel"] == "news"
    assert get(daemon.port, "/events/news", "POST", b"x", {"Cookie": f"sse_token={token}"})[0] == 401
    assert [e.data for e in listener.read(1)] == ["by token"]
    listener.close()


def test_query_token_works_and_is_never_logged(daemon):
    """With --jwt-query, ?token= opens the stream, and not even the access log writes the token."""
    token = _mint("--subscribe", "user.9")
    stream = LiveStream(daemon.port, f"/events/user.9?token={token}")
    assert stream.response.status == 200
    wait_until(lambda: "stream opened: user.9" in daemon.log(), timeout=5)
    get(daemon.port, f"/events/user.9?token={token}", "HEAD")
    wait_until(lambda: '"HEAD /events/user.9?token=- HTTP/1.1"' in daemon.log(), timeout=5)
    assert token not in daemon.log() and token.split(".")[2] not in daemon.log()
    stream.close()
