"""examples/django for real: Django's dev server, a real redis-server, real `twistd sse`, both auth modes."""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest

from testbed import REPO, Daemon, free_port, get, source_env, wait_until
from tests.live import LiveStream

EXAMPLE = REPO / "examples" / "django"
SECRET = "django-example-secret-of-32-bytes!"
PASSWORD = "example-password"


class Django:
    def __init__(self, workdir, redis_url: str) -> None:
        self.port = free_port()
        self.env = source_env(SSE_EXAMPLE_DB=str(workdir / "db.sqlite3"), SSE_JWT_KEY=SECRET, SSE_REDIS_URL=redis_url,
                              DJANGO_DEBUG="1")  # fmt: skip
        manage = [sys.executable, "manage.py"]
        subprocess.run([*manage, "migrate", "--verbosity", "0"], cwd=EXAMPLE, env=self.env, check=True)
        create = "from django.contrib.auth.models import User\n" + "".join(
            f"User.objects.create_user({name!r}, password={PASSWORD!r})\n" for name in ("alice", "bob")
        )
        subprocess.run([*manage, "shell", "-c", create], cwd=EXAMPLE, env=self.env, check=True)
        self.log = open(workdir / "django.log", "wb")
        self.process = subprocess.Popen([*manage, "runserver", "--noreload", f"127.0.0.1:{self.port}"], cwd=EXAMPLE,
                                        env=self.env, stdout=self.log, stderr=subprocess.STDOUT)  # fmt: skip
        wait_until(self._up, timeout=30, interval=0.1)

    def _up(self) -> bool:
        try:
            return httpx.get(f"http://127.0.0.1:{self.port}/login/").status_code == 200
        except httpx.HTTPError:
            return False

    def login(self, user: str) -> httpx.Client:
        client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)
        form = client.get("/login/").text
        csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        answer = client.post("/login/", data={"username": user, "password": PASSWORD, "csrfmiddlewaretoken": csrf})
        assert answer.status_code == 302, answer.text
        return client

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        self.log.close()


@pytest.fixture
def django(tmp_path, redis_db):
    server = Django(tmp_path, redis_db.url)
    yield server
    server.stop()


def _notify(client: httpx.Client, text: str) -> None:
    answer = client.post("/notify", data={"text": text}, headers={"X-CSRFToken": client.cookies["csrftoken"]})
    assert answer.status_code == 200, answer.text


def test_cookie_token_mode(tmp_path, redis_db, django):
    """Logged-in users get a token cookie from Django and each reads only their own channel."""
    daemon = Daemon(tmp_path, "--jwt-key", SECRET, "--public", "news", redis_url=redis_db.url)
    try:
        streams = {}
        for user in ("alice", "bob"):
            client = django.login(user)
            channel = client.get("/sse-cookie").json()["channel"]
            token = client.cookies["sse_token"]
            stream = LiveStream(daemon.port, f"/events/{channel}", {"Cookie": f"sse_token={token}"})
            assert stream.response.status == 200
            streams[user] = (client, stream, channel, token)
        for user, (client, _, _, _) in streams.items():
            _notify(client, f"for {user}")
        for user, (_, stream, _, _) in streams.items():
            assert [e.data for e in stream.read(1)] == [f'{{"text": "for {user}"}}']
        alice_token, bob_channel = streams["alice"][3], streams["bob"][2]
        assert (
            get(daemon.port, f"/events/{bob_channel}", "HEAD", headers={"Cookie": f"sse_token={alice_token}"})[0] == 403
        )
        assert get(daemon.port, f"/events/{bob_channel}", "HEAD")[0] == 401
        assert get(daemon.port, f"/events/{bob_channel}", "HEAD", headers={"Cookie": "sse_token=forged"})[0] == 401
        assert django.login("bob").get("/sse-cookie").status_code == 200
        assert httpx.get(f"http://127.0.0.1:{django.port}/sse-cookie").status_code == 302  # login first
        for _, stream, _, _ in streams.values():
            stream.close()
    finally:
        daemon.stop()


def test_callback_mode(tmp_path, redis_db, django):
    """With --auth-url, Django's own session cookie decides, through the /sse-auth view."""
    daemon = Daemon(tmp_path, "--auth-url", f"http://127.0.0.1:{django.port}/sse-auth", redis_url=redis_db.url)
    try:
        alice, bob = django.login("alice"), django.login("bob")
        alice_channel = alice.get("/sse-cookie").json()["channel"]
        bob_channel = bob.get("/sse-cookie").json()["channel"]
        session = {"Cookie": f"sessionid={alice.cookies['sessionid']}"}
        stream = LiveStream(daemon.port, f"/events/{alice_channel}", session)
        assert stream.response.status == 200
        _notify(alice, "hello alice")
        _notify(bob, "hello bob")
        assert [e.data for e in stream.read(1)] == ['{"text": "hello alice"}']
        assert get(daemon.port, f"/events/{bob_channel}", "HEAD", headers=session)[0] == 403
        assert get(daemon.port, f"/events/{alice_channel}", "HEAD")[0] == 401
        assert get(daemon.port, f"/events/{alice_channel}", "HEAD", headers={"Cookie": "sessionid=forged"})[0] == 401
        stream.close()
    finally:
        daemon.stop()
