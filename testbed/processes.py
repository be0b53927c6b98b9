"""Real processes on loopback: `twistd sse` from this checkout, and plain HTTP requests to it."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
"""The checkout: child processes run its code and its twistd plugin."""
TWISTD = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def source_env(**extra: str) -> dict[str, str]:
    """The environment for a child process that runs this checkout's code and plugin."""
    # Every SSE_* variable is a twistd sse option: only the test suite's own (SSE_TEST_*) pass.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SSE_") or k.startswith("SSE_TEST_")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    env.update(extra)
    return env


def wait_until(condition, timeout: float, interval: float = 0.02):
    """Poll `condition` until it returns a true value; return it, or raise after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"not true within {timeout}s: {condition}")
        time.sleep(interval)


def get(port: int, path: str, method: str = "GET", body: bytes | None = None, headers=None):
    """One plain HTTP request: (status, headers, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def health(port: int) -> dict:
    return json.loads(get(port, "/healthz")[2])


class Daemon:
    """A real `twistd -n sse` (or `-ny FILE.tac`) process on a free loopback port."""

    def __init__(
        self,
        workdir: Path,
        *args: str,
        tac: Path | None = None,
        redis_url: str | None = None,
        env: dict[str, str] | None = None,
        port: int | None = None,
        ready_path: str | None = None,
    ):
        self.port = port if port is not None else free_port()
        self.log_path = workdir / f"twistd-{self.port}.log"
        self.health_path = "/sse/healthz" if tac is not None else "/healthz"
        self._ready_path = ready_path or self.health_path
        if tac is not None:
            argv = [*TWISTD, "-n", "--pidfile=", "-y", str(tac)]
            env = {"SSE_EXAMPLE_PORT": str(self.port), **(env or {})}
            if redis_url is not None:
                env["SSE_REDIS_URL"] = redis_url
        else:
            listen = f"tcp:{self.port}:interface=127.0.0.1:backlog=1024"
            argv = [*TWISTD, "-n", "--pidfile=", "sse", "--listen", listen, *args]
            if redis_url is not None:
                env = {"SSE_REDIS_URL": redis_url, **(env or {})}
        self._log = open(self.log_path, "wb")
        self.process = subprocess.Popen(argv, cwd=workdir, env=source_env(**(env or {})), stdout=self._log,
                                        stderr=subprocess.STDOUT)  # fmt: skip
        try:
            wait_until(self._ready, timeout=15, interval=0.05)
        except TimeoutError:
            self.stop()
            raise RuntimeError(f"twistd did not start:\n{self.log()}") from None

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"twistd exited with {self.process.returncode}:\n{self.log()}")
        try:
            status = get(self.port, self._ready_path)[0]
        except OSError:
            return False
        return status == 200 if self._ready_path == self.health_path else True

    def healthy(self) -> int:
        """The /healthz status right now."""
        return get(self.port, self.health_path)[0]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
