"""contrib/nginx/twisted-sse.conf, as written (only addresses and certificates changed), in front of a real daemon."""

import json
import os
import re
import shutil
import signal
import subprocess
import time

import pytest

from testbed import REPO, Daemon, free_port, get, server_certificate, wait_until
from tests.h2_client import H2Client

NGINX = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin")
# scripts/test-tools installs it; on CI a missing nginx is a failure, not a skip.
pytestmark = pytest.mark.skipif(
    NGINX is None and not os.environ.get("CI"), reason="nginx is missing (apt-get install nginx)"
)

TOKEN = "s3cret"


class Nginx:
    """nginx running the recipe on a free port, with a certificate for 127.0.0.1, proxying to `daemon_port`."""

    def __init__(self, workdir, daemon_port):
        server_pem, self.ca_pem = server_certificate(workdir, "nginx")
        self.port = free_port()
        recipe = (REPO / "contrib" / "nginx" / "twisted-sse.conf").read_text()
        for old, new in [
            ("server 127.0.0.1:8080;", f"server 127.0.0.1:{daemon_port};"),
            ("listen 443 ssl http2;", f"listen 127.0.0.1:{self.port} ssl http2;"),
            ("/etc/ssl/sse.example.com/fullchain.pem", str(server_pem)),
            ("/etc/ssl/sse.example.com/privkey.pem", str(server_pem)),
        ]:
            assert recipe.count(old) == 1, old
            recipe = recipe.replace(old, new)
        (workdir / "twisted-sse.conf").write_text(recipe)
        (workdir / "logs").mkdir()
        (workdir / "nginx.conf").write_text(
            f"pid {workdir}/nginx.pid;\nerror_log {workdir}/logs/error.log;\nevents {{}}\n"
            f"http {{\n  access_log off;\n  client_body_temp_path {workdir}/body;\n  proxy_temp_path {workdir}/proxy;\n"
            f"  fastcgi_temp_path {workdir}/f;\n  uwsgi_temp_path {workdir}/u;\n  scgi_temp_path {workdir}/s;\n"
            f"  include {workdir}/twisted-sse.conf;\n}}\n"
        )
        self.process = subprocess.Popen([NGINX or "nginx", "-p", str(workdir), "-c", str(workdir / "nginx.conf"),
                                         "-g", "daemon off;"], stderr=subprocess.PIPE)  # fmt: skip
        wait_until(self._up, timeout=10)

    def _up(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"nginx exited: {self.process.stderr.read().decode()}")
        try:
            return H2Client(self.port, str(self.ca_pem)).close() or True
        except OSError:
            return False

    def stop(self):
        self.process.send_signal(signal.SIGTERM)  # fast shutdown: open streams are cut
        self.process.wait(10)


def _proxied(tmp_path, *args):
    daemon = Daemon(tmp_path, "--publish-token", TOKEN, "--max-streams-per-ip", "1", "--heartbeat", "15", *args)
    return daemon, Nginx(tmp_path, daemon.port)


@pytest.fixture
def proxied(tmp_path):
    """A daemon that trusts its proxy, and nginx in front of it."""
    daemon, nginx = _proxied(tmp_path, "--trusted-proxy", "127.0.0.1")
    yield daemon, nginx
    nginx.stop()
    daemon.stop()


def _publish(client, channel, data):
    stream_id = client.request("POST", f"/sse/events/{channel}", {"authorization": f"Bearer {TOKEN}"}, data)
    client.run_until(lambda: client.streams[stream_id].ended)
    return json.loads(bytes(client.streams[stream_id].body))["id"]


def test_events_arrive_through_nginx_over_http2_at_once_and_resume_with_last_event_id(proxied):
    """HTTP/2 over TLS to nginx: a publish reaches the stream within half a second (nothing buffers it), and a
    reconnect with Last-Event-ID gets what it missed."""
    daemon, nginx = proxied
    client = H2Client(nginx.port, str(nginx.ca_pem))
    stream_id = client.request("GET", "/sse/events/news", {"x-forwarded-for": "198.51.100.1"})
    client.run_until(lambda: client.streams[stream_id].status == 200)
    assert client.streams[stream_id].headers["content-type"].startswith("text/event-stream")
    published_at = time.monotonic()
    first = _publish(client, "news", b"one")
    client.run_until(lambda: len(client.streams[stream_id].events()) == 1, timeout=5)
    assert time.monotonic() - published_at < 0.5
    _publish(client, "news", b"two")
    resumed = client.request("GET", "/sse/events/news", {"last-event-id": first, "x-forwarded-for": "198.51.100.2"})
    client.run_until(lambda: [e.data for e in client.streams[resumed].events()] == ["two"], timeout=5)
    client.close()


@pytest.mark.parametrize("trusted", [True, False])
def test_the_clients_address_comes_from_x_forwarded_for_only_when_the_proxy_is_trusted(tmp_path, trusted):
    """With --trusted-proxy 127.0.0.1 two browsers behind nginx count apart for --max-streams-per-ip 1 and are
    logged by their address; without it they are all nginx (127.0.0.1): the second gets retry: and a close."""
    daemon, nginx = _proxied(tmp_path, *(["--trusted-proxy", "127.0.0.1"] if trusted else []))
    try:
        client = H2Client(nginx.port, str(nginx.ca_pem))
        first = client.request("GET", "/sse/events/a", {"x-forwarded-for": "198.51.100.7"})
        client.run_until(lambda: b"retry:" in client.streams[first].body)
        second = client.request("GET", "/sse/events/a", {"x-forwarded-for": "198.51.100.8"})
        client.run_until(lambda: b"retry:" in client.streams[second].body)
        if trusted:
            wait_until(lambda: json.loads(get(daemon.port, "/healthz")[2])["streams"] == 2, timeout=5)
            assert re.search(r"stream opened: a from 198\.51\.100\.8", daemon.log())
        else:
            client.run_until(lambda: client.streams[second].ended, timeout=5)
            assert b"has 1 streams open" in client.streams[second].body
            assert "198.51.100" not in daemon.log()
        client.close()
    finally:
        nginx.stop()
        daemon.stop()
