"""twisted-sse benchmarks: idle capacity, fan-out, churn, publish throughput, and a baseline.

    make bench                                  # everything, medians of 3 runs
    .venv/bin/python benchmarks/bench.py fanout --subscribers 1000 --rate 100 --runs 3

It starts its own redis-server and servers (twisted-sse, and the one-pubsub-per-client
baseline), drives them with `sseload` (benchmarks/sseload.c, compiled here with cc) and
reports medians. Nothing here is a test; `--smoke` runs every scenario tiny.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from tests.live import Daemon, free_port, get, wait_until  # noqa: E402
from tests.redis_server import RedisServer  # noqa: E402
from twisted_sse.publish import Publisher  # noqa: E402

TOKEN = "bench-token"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def build_sseload(workdir: Path) -> str:
    binary = workdir / "sseload"
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        raise SystemExit("the benchmark needs a C compiler (cc) to build its load generator")
    subprocess.run([cc, "-O2", "-o", str(binary), str(HERE / "sseload.c")], check=True)
    return str(binary)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def payload(seq: int, size: int) -> bytes:
    head = f"{time.time_ns()} {seq} ".encode()
    return head + b"x" * max(0, size - len(head))


class Server:
    """A server under test: twisted-sse (`twistd sse`) or the redis-py baseline."""

    def __init__(self, kind: str, workdir: Path, redis: RedisServer, extra: tuple[str, ...] = ()):
        self.kind = kind
        if kind == "twisted-sse":
            self.daemon = Daemon(workdir, "--publish-token", TOKEN, "--heartbeat", "15", *extra, redis_url=redis.url)
            self.port, self.pid = self.daemon.port, self.daemon.process.pid
            self.process = self.daemon.process
        else:
            self.port = free_port()
            env = {**os.environ, "PYTHONPATH": str(REPO)}
            self.process = subprocess.Popen(
                [sys.executable, str(HERE / "baseline_server.py"), str(self.port), redis.url],
                env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )  # fmt: skip
            self.pid = self.process.pid
            wait_until(self._up, timeout=15)

    def _up(self) -> bool:
        try:
            return get(self.port, "/healthz")[0] == 200
        except OSError:
            return False

    def stop(self) -> None:
        if self.kind == "twisted-sse":
            self.daemon.stop()
        else:
            self.process.kill()
            self.process.wait()


def run_sseload(binary: str, mode: str, port: int, path: str, n: int, seconds: float) -> subprocess.Popen[str]:
    argv = [binary, mode, "127.0.0.1", str(port), path, str(n), str(seconds), TOKEN]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> dict:
    out, _ = process.communicate(timeout=600)
    return json.loads(out)


def wait_streams(server: Server, redis: RedisServer, n: int, channel: str, timeout: float) -> None:
    if server.kind == "twisted-sse":
        wait_until(lambda: json.loads(get(server.port, "/healthz")[2])["streams"] >= n, timeout=timeout)
    else:
        key = f"sse:{channel}".encode()
        wait_until(lambda: redis.client().pubsub_numsub(key)[0][1] >= n, timeout=timeout, interval=0.2)


def fanout(binary, kind, workdir, redis, subscribers, rate, seconds, size=100, extra=()):
    """`subscribers` streams on one channel, `rate` publishes/s for `seconds`."""
    server = Server(kind, workdir, redis, extra)
    try:
        load = run_sseload(binary, "stream", server.port, "/events/bench", subscribers, seconds + 30)
        wait_streams(server, redis, subscribers, "bench", timeout=120)
        time.sleep(1)
        publisher = Publisher(redis.url)
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        published = 0
        while time.monotonic() - t0 < seconds:
            publisher.publish("bench", payload(published, size))
            published += 1
            time.sleep(max(0.0, t0 + published / rate - time.monotonic()))
        time.sleep(2)  # let the last deliveries arrive
        cpu = cpu_seconds(server.pid) - cpu0
        load.terminate()
        result = finish(load)
        expected = published * subscribers
        return {
            "server": kind,
            "subscribers": subscribers,
            "rate": rate,
            "published": published,
            "deliveries": result["deliveries"],
            "delivered_ratio": round(result["deliveries"] / expected, 4) if expected else None,
            "deliveries_per_s": round(result["deliveries"] / seconds),
            "lost_seq_gaps": result["lost"],
            "p50_ms": result["p50_ms"],
            "p99_ms": result["p99_ms"],
            "server_cpu_us_per_delivery": round(cpu * 1e6 / max(result["deliveries"], 1), 2),
            "server_cpu_percent": round(100 * cpu / (seconds + 2), 1),
            "loadgen_cpu_s": result["loadgen_cpu_s"],
            "server_rss_mib": round(rss_kib(server.pid) / 1024, 1),
        }
    finally:
        server.stop()
