"""`twistd sse --workers 2` on real processes: shared sockets, every event everywhere, crashes, drain, rolling."""

import http.client
import json
import signal
import subprocess
import threading
import time

import pytest

from testbed import TWISTD, RedisServer, free_port, get, server_certificate, source_env, wait_until
from tests.live import LiveStream

TOKEN = {"Authorization": "Bearer s3cret"}


class Parent:
    """`twistd -n sse --workers 2` on a free port, on Redis."""

    def __init__(self, workdir, redis, *args):
        self.redis = redis
        self.port = free_port()
        self.log_path = workdir / f"parent-{self.port}.log"
        argv = [*TWISTD, "-n", "--pidfile=", "sse", "--listen", f"tcp:{self.port}:interface=127.0.0.1",
                "--workers", "2", "--publish-token", "s3cret", "--redis", redis.url, "--max-streams-per-ip", "0",
                *args]  # fmt: skip
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(argv, cwd=workdir, env=source_env(), stdout=self._log, stderr=subprocess.STDOUT)
        wait_until(lambda: self.workers_seen() == {0, 1}, timeout=30)

    def log(self):
        return self.log_path.read_text(errors="replace")

    def health(self):
        return json.loads(get(self.port, "/healthz")[2])

    def workers_seen(self, tries=40):
        """The worker numbers that answered /healthz over `tries` new connections."""
        seen = set()
        for _ in range(tries):
            try:
                seen.add(self.health().get("worker"))
            except OSError:
                pass
        return seen

    def children(self):
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True).stdout
        return sorted(int(pid) for pid in out.split())

    def stop(self):
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                for pid in self.children():
                    subprocess.run(["kill", "-9", str(pid)])
                self.process.kill()
                self.process.wait()
        self._log.close()


@pytest.fixture
def parent(tmp_path):
    redis = RedisServer(tmp_path)
    parent = Parent(tmp_path, redis)
    yield parent
    parent.stop()
    redis.stop()


def _publish(port, data):
    status, _, body = get(port, "/events/news", "POST", data, TOKEN)
    assert status == 200, body
    return json.loads(body)["id"]


def _streams_on_both_workers(parent, at_least=12):
    """Streams until each worker holds some: the kernel spreads connections, but not evenly, so keep opening
    until Redis shows both workers' subscribers on the channel."""
    streams = []
    numsub = lambda: parent.redis.client().pubsub_numsub("sse:#events:news")[0][1]  # noqa: E731
    while len(streams) < at_least or numsub() < 2:
        assert len(streams) < 200, "every connection went to one worker"
        streams.append(LiveStream(parent.port, "/events/news"))
        if len(streams) >= at_least:
            time.sleep(0.05)
    wait_until(lambda: numsub() == 2, timeout=10)
    return streams


def test_two_workers_share_the_port_and_every_stream_gets_every_event(parent):
    """Connections land on both workers (the /healthz `worker` field says which); all streams get all events."""
    assert parent.health().get("worker") in (0, 1) and len(parent.children()) == 2
    streams = _streams_on_both_workers(parent)  # each worker subscribed the channel once: two on Redis's side
    ids = [_publish(parent.port, b"event %d" % n) for n in range(5)]
    for stream in streams:
        assert [e.last_event_id for e in stream.read(5)] == ids
        stream.close()


def test_a_killed_worker_is_restarted_and_its_clients_resume_on_the_others_without_loss(parent):
    """SIGKILL one worker mid-traffic: its streams end, they resume with Last-Event-ID (on whichever worker),
    nothing is lost, and the parent starts the worker again."""
    streams = _streams_on_both_workers(parent)
    first = _publish(parent.port, b"before")
    for stream in streams:
        assert stream.read(1)[0].last_event_id == first
    victim = parent.children()[0]
    subprocess.run(["kill", "-9", str(victim)], check=True)
    published = [first]
    for n in range(3):
        published.append(_publish(parent.port, b"during %d" % n))  # the surviving worker answers
    resumed = []
    for stream in streams:
        try:
            got = [e.last_event_id for e in stream.read(4)]
            stream.close()
        except (EOFError, OSError, http.client.HTTPException):  # its worker died: come back as EventSource would
            stream.close()
            again = LiveStream(parent.port, "/events/news", {"Last-Event-ID": first})
            got = [first] + [e.last_event_id for e in again.read(3)]
            again.close()
            resumed.append(got)
        assert got == published
    assert resumed, "some streams were on the killed worker"
    wait_until(lambda: len(parent.children()) == 2 and victim not in parent.children(), timeout=20)
    assert "worker" in parent.log() and "restarting it" in parent.log()
    wait_until(lambda: parent.workers_seen() == {0, 1}, timeout=20)


def test_sigterm_drains_every_worker_and_the_parent_exits(parent):
    """Streams on both workers get their retry: hint and a close; the parent exits once the workers have."""
    streams = _streams_on_both_workers(parent)
    _publish(parent.port, b"x")
    for stream in streams:
        stream.read(1)
    children = parent.children()
    parent.process.send_signal(signal.SIGTERM)
    assert parent.process.wait(30) == -signal.SIGTERM  # twistd ends with the signal it was stopped by
    assert parent.log().count("draining 6 streams") + parent.log().count("draining") >= 2
    for stream in streams:
        assert stream.response.read() is not None  # ended, not hung
    assert all(subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0 for pid in children)


def test_sighup_rolls_the_workers_one_at_a_time_without_refusing_a_connection(parent):
    """Every worker is replaced (new pids) while a client keeps connecting: not one connection fails."""
    before = parent.children()
    failures, successes = [], []
    stop = threading.Event()

    def knock():
        while not stop.is_set():
            try:
                get(parent.port, "/healthz")
                successes.append(time.monotonic())
            except OSError as error:
                failures.append(repr(error))
            time.sleep(0.01)

    knocker = threading.Thread(target=knock)
    knocker.start()
    try:
        parent.process.send_signal(signal.SIGHUP)
        wait_until(lambda: "rolling restart done" in parent.log(), timeout=60)
        after = parent.children()
        assert len(after) == 2 and not set(after) & set(before)
    finally:
        stop.set()
        knocker.join()
    assert failures == [] and len(successes) > 20


def test_workers_serve_tls_and_unix_listeners_they_inherited(tmp_path):
    """An ssl: listener is adopted as TCP and wrapped in TLS by each worker; a unix: one is adopted as it is."""
    import socket
    import ssl

    pem, ca_pem = server_certificate(tmp_path)
    tls_port, sock_path = free_port(), tmp_path / "sse.sock"
    redis = RedisServer(tmp_path)
    parent = Parent(tmp_path, redis, "--listen", f"ssl:{tls_port}:interface=127.0.0.1:privateKey={pem}:certKey={pem}",
                    "--listen", f"unix:{sock_path}")  # fmt: skip
    try:
        context = ssl.create_default_context(cafile=str(ca_pem))
        seen = set()
        for _ in range(20):
            conn = http.client.HTTPSConnection("127.0.0.1", tls_port, context=context, timeout=5)
            conn.request("GET", "/healthz")
            seen.add(json.loads(conn.getresponse().read())["worker"])
            conn.close()
        assert seen <= {0, 1} and seen
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(sock_path))
            client.sendall(b"GET /healthz HTTP/1.0\r\n\r\n")
            answer = b""
            while chunk := client.recv(4096):
                answer += chunk
        assert answer.startswith(b"HTTP/1.0 200") and b'"worker"' in answer
    finally:
        parent.stop()
        redis.stop()


def test_the_parents_admin_listener_shows_every_worker_and_is_healthy_only_while_all_are(tmp_path):
    """--admin-listen on the parent: one scrape has each worker's series (label `worker`); /healthz is 200 with
    both workers up, 503 while one is down, 200 again once the parent has restarted it."""
    from prometheus_client.parser import text_string_to_metric_families

    admin = free_port()
    redis = RedisServer(tmp_path)
    parent = Parent(tmp_path, redis, "--admin-listen", f"tcp:{admin}:interface=127.0.0.1")
    try:
        streams = [LiveStream(parent.port, "/events/news") for _ in range(6)]
        wait_until(lambda: get(admin, "/healthz")[0] == 200, timeout=10)
        families = {f.name: f for f in text_string_to_metric_families(get(admin, "/metrics")[2].decode())}
        open_now = {s.labels["worker"]: s.value for s in families["sse_streams"].samples}
        assert set(open_now) == {"0", "1"} and sum(open_now.values()) == 6
        health = json.loads(get(admin, "/healthz")[2])
        assert health["status"] == "ok" and set(health["workers"]) == {"0", "1"}
        subprocess.run(["kill", "-9", str(parent.children()[0])], check=True)
        wait_until(lambda: get(admin, "/healthz")[0] == 503, timeout=10)
        wait_until(lambda: get(admin, "/healthz")[0] == 200, timeout=20)
        for stream in streams:
            stream.close()
    finally:
        parent.stop()
        redis.stop()
