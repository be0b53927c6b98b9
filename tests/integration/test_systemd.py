"""Under systemd: the unit files, socket activation, restarts on a held socket, and the notifications."""

import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from testbed import REPO, TWISTD, RedisServer, free_port, get, source_env, wait_until
from tests.live import LiveStream

SYSTEMD = REPO / "contrib" / "systemd"
TOKEN = {"Authorization": "Bearer s3cret"}
# scripts/test-tools installs Debian's systemd for its tools; on CI missing tools fail, not skip.
pytestmark = pytest.mark.skipif(
    shutil.which("systemd-socket-activate") is None and not os.environ.get("CI"), reason="apt-get install systemd"
)


def test_the_unit_files_pass_systemd_analyze_verify(tmp_path):
    """Both units as shipped (the twistd path pointed at this checkout's) are valid to systemd."""
    twistd = Path(sys.executable).parent / "twistd"
    for unit in ("twisted-sse.socket", "twisted-sse.service"):
        text = (SYSTEMD / unit).read_text()
        if unit.endswith(".service"):
            assert text.count("/opt/twisted-sse/bin/twistd") == 1
            text = text.replace("/opt/twisted-sse/bin/twistd", str(twistd))
        (tmp_path / unit).write_text(text)
    verified = subprocess.run(["systemd-analyze", "verify", str(tmp_path / "twisted-sse.socket"),
                               str(tmp_path / "twisted-sse.service")], capture_output=True, text=True)  # fmt: skip
    assert verified.returncode == 0 and verified.stderr.strip() == "", verified.stderr


def test_a_socket_activated_daemon_serves_streams_on_the_socket_it_was_given(tmp_path):
    """systemd-socket-activate holds the socket and starts `twistd sse --listen systemd:...` on the first
    connection; that very connection gets its stream and the events published."""
    port = free_port()
    env = source_env()
    argv = ["systemd-socket-activate", "-l", f"127.0.0.1:{port}", "--fdname=sse",
            *(f"--setenv={name}={env[name]}" for name in ("PYTHONPATH", "PATH", "HOME") if name in env),
            *TWISTD, "-n", "--pidfile=", "sse", "--listen", "systemd:domain=INET:name=sse",
            "--publish-token", "s3cret"]  # fmt: skip
    log = open(tmp_path / "activate.log", "wb")
    activator = subprocess.Popen(argv, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_until(lambda: _listening(port), timeout=10)
        stream = LiveStream(port, "/events/news", timeout=20)  # the daemon starts now
        assert stream.response.status == 200
        assert get(port, "/events/news", "POST", b"activated", TOKEN)[0] == 200
        assert stream.read(1)[0].data == "activated"
        stream.close()
    finally:
        activator.send_signal(signal.SIGTERM)
        activator.wait(15)
        log.close()


def _listening(port):
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


class _HeldSocket:
    """What systemd does for a socket unit: one listening socket, passed to each daemon started on it."""

    def __init__(self, workdir):
        self.started = []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(1024)
        self.port = self.sock.getsockname()[1]
        self.workdir = workdir

    def start(self, *args, notify=None, **env):
        """A daemon on the socket: fd 3, LISTEN_FDS=1, LISTEN_FDNAMES=sse, LISTEN_PID its own pid."""
        extra = {"LISTEN_FDS": "1", "LISTEN_FDNAMES": "sse", **env}
        if notify is not None:
            extra["NOTIFY_SOCKET"] = notify
        fd = self.sock.fileno()
        command = " ".join(f"'{part}'" for part in [*TWISTD, "-n", "--pidfile=", "sse", "--listen",
                                                    "systemd:domain=INET:name=sse", "--publish-token", "s3cret",
                                                    *args])  # fmt: skip
        log = open(self.workdir / f"daemon-{time.monotonic_ns()}.log", "wb")
        process = subprocess.Popen(["sh", "-c", f"LISTEN_PID=$$ exec {command}"], cwd=self.workdir,
                                   env=source_env(**extra), stdout=log, stderr=subprocess.STDOUT,
                                   pass_fds=(3,), preexec_fn=lambda: _as_fd_3(fd))  # fmt: skip
        process.log_path = log.name
        self.started.append(process)
        return process

    def kill_all(self):
        """Whatever a failed test left running."""
        for process in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()
        self.sock.close()


def _as_fd_3(fd):
    """In the child, before the other descriptors are closed: the socket becomes fd 3 (SD_LISTEN_FDS_START)."""
    if fd != 3:
        os.dup2(fd, 3)
    os.set_inheritable(3, True)


def test_restarting_on_a_held_socket_refuses_no_connection_and_streams_resume(tmp_path):
    """Two daemons in a row on one held socket while clients keep connecting: not one connection refused or
    reset, and a stream cut by the first daemon's drain resumes on the second with every event (on Redis)."""
    redis = RedisServer(tmp_path)
    held = _HeldSocket(tmp_path)
    outcomes = {"ok": [], "failed": []}
    stop = threading.Event()

    def knock():
        while not stop.is_set():
            started = time.monotonic()
            try:
                if get(held.port, "/healthz")[0] in (200, 503):
                    outcomes["ok"].append(started)
            except OSError as error:
                outcomes["failed"].append(repr(error))
            time.sleep(0.01)

    first = held.start(SSE_REDIS_URL=redis.url)
    knocker = threading.Thread(target=knock)
    try:
        wait_until(lambda: _healthy(held.port), timeout=15)
        knocker.start()
        stream = LiveStream(held.port, "/events/news", timeout=20)
        wait_until(lambda: _healthy(held.port), timeout=10)
        first_id = _publish(held.port, b"before")
        assert stream.read(1)[0].data == "before"
        first.send_signal(signal.SIGTERM)  # drains: the stream gets retry: and a close
        first.wait(20)
        gone = time.monotonic()
        _publish_straight_to_redis(redis, "during")  # nobody serves while no daemon runs
        second = held.start(SSE_REDIS_URL=redis.url)
        # Until the new daemon reaches Redis a stream gets retry: and a close (EventSource then comes back):
        # come back once it is healthy, as the browser would after its retry delay.
        wait_until(lambda: _healthy(held.port), timeout=15)
        back = time.monotonic()
        resumed = LiveStream(held.port, "/events/news", {"Last-Event-ID": first_id}, timeout=20)
        _publish(held.port, b"after")
        assert [e.data for e in resumed.read(2)] == ["during", "after"]
        stop.set()
        knocker.join()
        assert outcomes["failed"] == []
        assert any(gone <= started <= back for started in outcomes["ok"])  # made while no daemon ran: it waited
        second.send_signal(signal.SIGTERM)
        second.wait(20)
    finally:
        stop.set()
        held.kill_all()
        redis.stop()


def _healthy(port):
    try:
        return get(port, "/healthz")[0] == 200
    except OSError:
        return False


def _publish(port, data):
    import json

    status, _, body = get(port, "/events/news", "POST", data, TOKEN)
    assert status == 200, body
    return json.loads(body)["id"]


def _publish_straight_to_redis(redis, data):
    from twisted_sse.publish import Publisher

    Publisher(redis.url).publish("news", data)


def test_systemd_hears_ready_watchdog_and_stopping(tmp_path):
    """With NOTIFY_SOCKET: READY=1 once it listens, WATCHDOG=1 every half WatchdogSec, STOPPING=1 on SIGTERM."""
    path = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(path)
    listener.settimeout(15)
    held = _HeldSocket(tmp_path)
    daemon = held.start(notify=path, WATCHDOG_USEC="400000")
    try:
        ready = listener.recv(4096)
        assert b"READY=1" in ready and _healthy(held.port)
        pings = [listener.recv(4096) for _ in range(3)]
        assert all(ping == b"WATCHDOG=1" for ping in pings)
        daemon.send_signal(signal.SIGTERM)
        while b"STOPPING=1" not in (message := listener.recv(4096)):
            assert message == b"WATCHDOG=1"
        daemon.wait(20)
    finally:
        held.kill_all()
        listener.close()
