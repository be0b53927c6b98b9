"""twisted-sse benchmarks: idle capacity, fan-out, churn, publish throughput, and a baseline.

    make bench                                        # everything, medians of 3 runs
    .venv/bin/python benchmarks/bench.py fanout --runs 5   # one scenario

It starts its own redis-server and servers (twisted-sse, and the one-pubsub-per-client
baseline), drives them with `sseload` (benchmarks/sseload.c, compiled here with cc) and
reports medians. Nothing here is a test; `--smoke` runs every scenario tiny.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
sys.path.insert(0, str(REPO))

from testbed import (  # noqa: E402
    Daemon,
    RedisServer,  # noqa: E402
    free_port,
    get,
    server_certificate,
    wait_until,
)
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


def children(pid: int) -> list[int]:
    """The live child processes of `pid` (the workers of a --workers parent)."""
    try:
        return [int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """CPU time of `pid` and its live children (a --workers parent and its workers)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    own = (int(fields[11]) + int(fields[12])) / CLK_TCK
    return own + sum(cpu_seconds(child) for child in children(pid))


def rss_kib(pid: int) -> int:
    """Resident memory of `pid` and its live children."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) + sum(rss_kib(child) for child in children(pid))
    raise RuntimeError("no VmRSS")


def payload(seq: int, size: int) -> bytes:
    head = f"{time.time_ns()} {seq} ".encode()
    return head + b"x" * max(0, size - len(head))


class Server:
    """A server under test: twisted-sse (`twistd sse`) or the redis-py baseline."""

    def __init__(self, kind: str, workdir: Path, redis: RedisServer, extra: tuple[str, ...] = (),
                 lag_file: Path | None = None):  # fmt: skip
        """`lag_file`: the daemon measures how long its reactor blocks (benchmarks/lagprobe) into this file."""
        self.kind = kind
        if kind == "twisted-sse":
            # Every load-generator connection comes from 127.0.0.1: no per-address limits here.
            unlimited = ("--max-streams-per-ip", "0", "--max-channels-per-ip", "0", "--max-pending", "1000000")
            env = None
            if lag_file is not None:
                lag_file.write_text("")
                env = {
                    "PYTHONPATH": os.pathsep.join([str(REPO), str(HERE / "lagprobe")]),
                    "SSE_LAG_PROBE": str(lag_file),
                }
            self.daemon = Daemon(workdir, "--publish-token", TOKEN, "--heartbeat", "15", *unlimited, *extra,
                                 redis_url=redis.url, env=env)  # fmt: skip
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


def run_sseload(binary: str, mode: str, port: int, path: str, n: int, seconds: float,
                *extra: str) -> subprocess.Popen[str]:  # fmt: skip
    argv = [binary, mode, "127.0.0.1", str(port), path, str(n), str(seconds), TOKEN, *extra]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def finish(process: subprocess.Popen[str]) -> dict:
    out, _ = process.communicate(timeout=600)
    return json.loads(out)


def streams_open(server: Server) -> int:
    """Streams open in the server; with --workers, summed over the workers that /healthz answers for."""
    per_worker: dict[object, int] = {}
    for _ in range(8 if children(server.pid) else 1):
        health = json.loads(get(server.port, "/healthz")[2])
        per_worker[health.get("worker")] = health["streams"]
    return sum(per_worker.values())


def wait_streams(server: Server, redis: RedisServer, n: int, channel: str, timeout: float) -> None:
    if server.kind == "twisted-sse":
        wait_until(lambda: streams_open(server) >= n, timeout=timeout, interval=0.2)
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
        scraping = "--metrics" in extra
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        published, scraped = 0, t0
        while time.monotonic() - t0 < seconds:
            publisher.publish("bench", payload(published, size))
            published += 1
            if scraping and time.monotonic() - scraped >= 1.0:  # as Prometheus would, every second here
                assert get(server.port, "/metrics")[0] == 200
                scraped = time.monotonic()
            time.sleep(max(0.0, t0 + published / rate - time.monotonic()))
        time.sleep(2)  # let the last deliveries arrive
        cpu = cpu_seconds(server.pid) - cpu0
        load.terminate()
        result = finish(load)
        expected = published * subscribers
        return {
            "server": kind,
            "metrics": scraping,
            "workers": int(extra[extra.index("--workers") + 1]) if "--workers" in extra else 1,
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


def _tls_listener(workdir: Path) -> tuple[str, int]:
    """An `ssl:` listener description with a fresh self-signed certificate, and its port."""
    pem = workdir / "bench-server.pem"
    if not pem.exists():
        server_certificate(workdir, "bench-server")
    port = free_port()
    return f"ssl:{port}:interface=127.0.0.1:privateKey={pem}:certKey={pem}", port


H2LOAD_SHAPES = {
    # name: (h2load arguments, what it stands for)
    "h1-tls": (["--h1", "-m", "1"], "HTTP/1.1 over TLS, one stream per connection"),
    "h2-tls-1": (["-m", "1"], "HTTP/2, one stream per connection (one tab per browser)"),
    "h2-tls-100": (["-m", "100"], "HTTP/2, 100 streams per connection (tabs of one browser)"),
}


def fanout_over(binary, shape, workdir, redis, subscribers, rate, seconds, size=100):
    """Fan-out to `subscribers` streams read by h2load over TLS (or sseload on plain TCP for `h1-tcp`)."""
    if shape == "h1-tcp":
        return {"shape": shape, **fanout(binary, "twisted-sse", workdir, redis, subscribers, rate, seconds, size)}
    h2load = shutil.which("h2load")
    if h2load is None:
        raise RuntimeError("h2load is missing (Debian: apt-get install nghttp2-client)")
    listen, tls_port = _tls_listener(workdir)
    server = Server("twisted-sse", workdir, redis, ("--listen", listen))
    arguments, _ = H2LOAD_SHAPES[shape]
    per_connection = min(subscribers, int(arguments[arguments.index("-m") + 1]))
    arguments = [*arguments[: arguments.index("-m")], "-m", str(per_connection)]
    connections = subscribers // per_connection
    # h2load prints its traffic figures only when its run ends by itself: give it time to
    # open every stream, then the publishing, then a margin.
    margin = 5 + subscribers // 100
    argv = [h2load, *arguments, "-c", str(connections), "-n", str(subscribers), "-D", str(seconds + margin),
            f"https://127.0.0.1:{tls_port}/events/bench"]  # fmt: skip
    try:
        load = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        wait_streams(server, redis, subscribers, "bench", timeout=120)
        time.sleep(1)
        publisher = Publisher(redis.url)
        cpu0, t0 = cpu_seconds(server.pid), time.monotonic()
        published, event_bytes = 0, 0
        while time.monotonic() - t0 < seconds:
            data = payload(published, size)
            event_id = publisher.publish("bench", data)
            event_bytes += len(b"id: %s\ndata: %s\n\n" % (event_id.encode(), data))
            published += 1
            time.sleep(max(0.0, t0 + published / rate - time.monotonic()))
        time.sleep(2)
        cpu = cpu_seconds(server.pid) - cpu0
        out, _ = load.communicate(timeout=120)
        traffic = re.search(r"traffic: .*?, .*?\((\d+)\) data", out)
        if traffic is None:
            raise RuntimeError(f"h2load gave no traffic figure:\n{out[-2000:]}")
        received = int(traffic.group(1)) - subscribers * len(b"retry: 3000\n")
        delivered_ratio = received / (event_bytes * subscribers) if published else 0.0
        deliveries = round(published * subscribers * min(delivered_ratio, 1.0))
        return {
            "shape": shape,
            "connections": connections,
            "subscribers": subscribers,
            "rate": rate,
            "published": published,
            "deliveries": deliveries,
            "delivered_ratio": round(delivered_ratio, 4),
            "server_cpu_us_per_delivery": round(cpu * 1e6 / max(deliveries, 1), 2),
            "server_cpu_percent": round(100 * cpu / (seconds + 2), 1),
            "server_rss_mib": round(rss_kib(server.pid) / 1024, 1),
        }
    finally:
        server.stop()


class _AuthApp(ThreadingHTTPServer):
    """An application whose /sse-auth answers 200 at once, counting what it was asked."""

    daemon_threads = True
    request_queue_size = 1024

    def __init__(self):
        self.asked = 0
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(handler):  # noqa: N805
                with lock:
                    self.asked += 1
                handler.send_response(200)
                handler.send_header("Content-Length", "0")
                handler.end_headers()

        super().__init__(("127.0.0.1", free_port()), Handler)


async def _open_streams(port, seconds, concurrency, cookie_for):
    """Open streams (read the status line and retry:, then drop) as fast as `concurrency` clients can."""
    opened, deadline = 0, time.monotonic() + seconds

    async def client(worker):
        nonlocal opened
        mine = 0
        while time.monotonic() < deadline:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            cookie = cookie_for(worker, mine)
            mine += 1
            writer.write(b"GET /events/user.1 HTTP/1.1\r\nHost: x\r\nCookie: %s\r\n\r\n" % cookie)
            head = await reader.readuntil(b"retry: ")
            if not head.startswith(b"HTTP/1.1 200 "):
                raise RuntimeError(head[:100])
            opened += 1
            writer.transport.abort()

    await asyncio.gather(*(client(i) for i in range(concurrency)))
    return opened


def auth_cost(binary, workdir, redis, seconds, concurrency=32):
    """Streams opened per second without auth, and with --auth-url with the cache warm and cold."""
    app = _AuthApp()
    threading.Thread(target=app.serve_forever, daemon=True).start()
    results = {}
    try:
        for mode in ("public", "callback-warm", "callback-cold"):
            extra = () if mode == "public" else ("--auth-url", f"http://127.0.0.1:{app.server_port}/sse-auth")
            server = Server("twisted-sse", workdir, redis, extra)
            try:
                asked0, cpu0 = app.asked, cpu_seconds(server.pid)
                if mode == "callback-cold":
                    cookie_for = lambda worker, n: b"session=%d-%d" % (worker, n)  # noqa: E731
                else:
                    cookie_for = lambda worker, n: b"session=same"  # noqa: E731
                answered = asyncio.run(_open_streams(server.port, seconds, concurrency, cookie_for))
                cpu = cpu_seconds(server.pid) - cpu0
                counters = json.loads(get(server.port, "/healthz")[2])["counters"]
                refused = counters.get("streams_refused", 0)  # 200 + retry: the callback failed, or full
                opened = answered - refused
                results[mode] = {
                    "streams_opened": opened,
                    "refused_retry_later": refused,
                    "streams_opened_per_s": round(opened / seconds),
                    "app_requests": app.asked - asked0,
                    "server_cpu_us_per_stream": round(cpu * 1e6 / max(opened, 1), 1),
                }
            finally:
                server.stop()
    finally:
        app.shutdown()
        app.server_close()
    return results


def _probe_lag(port, stop, samples):
    """Time /healthz round trips every 10 ms until `stop` is set: the reactor's stalls show as slow answers."""
    while not stop.is_set():
        started = time.monotonic()
        get(port, "/healthz")
        samples.append(time.monotonic() - started)
        time.sleep(0.01)


def reactor_lag(binary, workdir, redis, streams, channels_per_stream):
    """While `streams` streams of `channels_per_stream` channels open, then all leave: the longest the daemon's
    reactor was blocked (measured inside it, benchmarks/lagprobe), and the longest /healthz answer (which waits
    for several reactor turns: accepting, reading, answering)."""
    lag_file = workdir / "reactor-lag"
    server = Server("twisted-sse", workdir, redis, lag_file=lag_file)
    try:
        request = (b"GET /events?" + b"&".join(b"channel=c%d" % i for i in range(channels_per_stream))
                   + b" HTTP/1.1\r\nHost: x\r\n\r\n")  # fmt: skip
        result = {"streams": streams, "channels_per_stream": channels_per_stream}
        for phase in ("open", "release"):
            stop, samples = threading.Event(), []
            probe = threading.Thread(target=_probe_lag, args=(server.port, stop, samples))
            probe.start()
            time.sleep(0.2)
            lag_file.write_text("")
            started = time.monotonic()
            if phase == "open":
                # Connected first, then every request sent at once: the daemon finds them all ready together.
                socks = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(streams)]
                time.sleep(0.5)
                lag_file.write_text("")
                started = time.monotonic()
                for sock in socks:
                    sock.sendall(request)
                wait_until(lambda: json.loads(get(server.port, "/healthz")[2])["streams"] >= streams, timeout=120)
            else:
                for sock in socks:
                    sock.close()
                wait_until(lambda: json.loads(get(server.port, "/healthz")[2])["streams"] == 0, timeout=120)
            took = time.monotonic() - started
            time.sleep(0.2)
            stop.set()
            probe.join()
            blocked = [float(line) for line in lag_file.read_text().split()]
            result[phase] = {"seconds": round(took, 2), "max_reactor_block_ms": max(blocked, default=0.0),
                             "max_healthz_ms": round(1000 * max(samples), 1),
                             "p50_healthz_ms": round(1000 * statistics.median(samples), 1)}  # fmt: skip
        return result
    finally:
        server.stop()


def idle(binary, kind, workdir, redis, streams, settle=2.0):
    """RSS per idle stream with `streams` open, and the Redis connections they cost."""
    server = Server(kind, workdir, redis)
    try:
        time.sleep(1)
        rss0, conns0 = rss_kib(server.pid), len(redis.client().client_list())
        load = run_sseload(binary, "stream", server.port, "/events/idle", streams, 600)
        wait_streams(server, redis, streams, "idle", timeout=180)
        time.sleep(settle)
        rss1, conns1 = rss_kib(server.pid), len(redis.client().client_list())
        load.terminate()
        finish(load)
        return {
            "server": kind,
            "streams": streams,
            "rss_mib": round(rss1 / 1024, 1),
            "kib_per_stream": round((rss1 - rss0) / streams, 2),
            "redis_connections_added": conns1 - conns0,
        }
    finally:
        server.stop()


def _held(server, redis, channel):
    if server.kind == "twisted-sse":
        report = json.loads(get(server.port, "/healthz")[2])
        return {"streams": report["streams"], "channels": report["channels"]}
    return {"subscriptions": redis.client().pubsub_numsub(f"sse:{channel}".encode())[0][1]}


def churn(binary, kind, workdir, redis, rate, seconds):
    """Streams opened and dropped by RST at `rate` per second for `seconds`."""
    server = Server(kind, workdir, redis)
    try:
        time.sleep(1)
        before = {"rss_mib": round(rss_kib(server.pid) / 1024, 1), "redis_clients": len(redis.client().client_list())}
        cpu0 = cpu_seconds(server.pid)
        result = finish(run_sseload(binary, "churn", server.port, "/events/churn", rate, seconds))
        cpu = cpu_seconds(server.pid) - cpu0
        time.sleep(3)  # time for the server to notice the last drops
        after = {
            "rss_mib": round(rss_kib(server.pid) / 1024, 1),
            "redis_clients": len(redis.client().client_list()),
            **_held(server, redis, "churn"),
        }
        return {
            "server": kind,
            "target_per_s": rate,
            "cycles_per_s": round(result["cycles"] / result["seconds"]),
            "failed": result["errors"] + result["closed_by_server"],
            "server_cpu_percent": round(100 * cpu / seconds, 1),
            "loadgen_cpu_s": result["loadgen_cpu_s"],
            "before": before,
            "after": after,
        }
    finally:
        server.stop()


def publish_http(binary, workdir, redis, concurrency, seconds, batch=1):
    """Durable publishes per second over HTTP POST from `concurrency` keep-alive connections: one event a
    POST (`batch` 1), or ndjson batches of `batch` events to POST /events. CPU per event is the daemon's
    (and its Redis's, shown apart: the script runs there)."""
    server = Server("twisted-sse", workdir, redis)
    redis.client().delete("sse:#history:pub")
    try:
        cpu0, redis_cpu0 = cpu_seconds(server.pid), cpu_seconds(redis.process.pid)
        if batch == 1:
            load = run_sseload(binary, "post", server.port, "/events/pub", concurrency, seconds)
        else:
            load = run_sseload(binary, "postbatch", server.port, "/events", concurrency, seconds, str(batch))
        result = finish(load)
        cpu = cpu_seconds(server.pid) - cpu0
        redis_cpu = cpu_seconds(redis.process.pid) - redis_cpu0
        events = result["responses"] * batch
        last = redis.client().xrevrange("sse:#history:pub", count=1)
        return {
            "concurrency": concurrency,
            "batch": batch,
            "requests_per_s": round(result["responses"] / result["seconds"]),
            "publishes_per_s": round(events / result["seconds"]),
            "server_cpu_us_per_publish": round(1e6 * cpu / events, 1) if events else None,
            "redis_cpu_us_per_publish": round(1e6 * redis_cpu / events, 1) if events else None,
            "server_cpu_percent": round(100 * cpu / seconds, 1),
            "loadgen_cpu_s": result["loadgen_cpu_s"],
            "errors": result["errors"] + result["closed_by_server"],
            "in_history": redis.client().xlen("sse:#history:pub"),
            "last_in_history": last[0][1][b"d"].decode() if last else None,
        }
    finally:
        server.stop()


def publish_python(redis, seconds):
    """Durable publishes per second through the synchronous Python `Publisher` (one connection)."""
    publisher = Publisher(redis.url)
    count, started = 0, time.monotonic()
    while time.monotonic() - started < seconds:
        publisher.publish("pub", b"x" * 100)
        count += 1
    return {"publishes_per_s": round(count / (time.monotonic() - started))}


def _fnv1a(ids):
    """FNV-1a 64 of the ids, each followed by LF: what sseload's resume mode hashes what it received with."""
    value = 14695981039346656037
    for byte in "".join(f"{event_id}\n" for event_id in ids).encode():
        value = ((value ^ byte) * 1099511628211) % (1 << 64)
    return f"{value:x}"


def storm(binary, workdir, redis, clients, channels, behind=100, spread=1.0):
    """`clients` resume at once (spread over `spread` s), `behind` events back on `channels` channels: time until
    all caught up, history reads Redis ran, daemon peak RSS, clients that lost or doubled an event. The clients
    are sseload's (C): each stays connected until all caught up, as browsers do."""
    import resource as _rlimit

    soft, hard = _rlimit.getrlimit(_rlimit.RLIMIT_NOFILE)
    _rlimit.setrlimit(_rlimit.RLIMIT_NOFILE, (hard, hard))
    server = Server("twisted-sse", workdir, redis)
    try:
        names = [f"s{n}" for n in range(channels)]
        publisher = Publisher(redis.url)
        start = publisher.publish(names[0], "start")
        expected = [publisher.publish(names[n % channels], payload(n, 100)) for n in range(behind)]
        path = "/events?" + "&".join(f"channel={name}" for name in names)
        stats = redis.client().info("commandstats")
        scripts0 = sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "eval"))
        load = run_sseload(binary, "resume", server.port, path, clients, 120, start, str(len(expected)), str(spread),
                           _fnv1a(expected))  # fmt: skip
        result = finish(load)
        took = result["last_caught_up_s"]
        stats = redis.client().info("commandstats")
        scripts = sum(stats.get(f"cmdstat_{c}", {}).get("calls", 0) for c in ("evalsha", "eval")) - scripts0
        wrong = result["wrong"] + clients - result["caught_up"]
        status = Path(f"/proc/{server.pid}/status").read_text()
        peak = int(re.search(r"VmHWM:\s+(\d+)", status).group(1))
        return {"clients": clients, "channels": channels, "behind": behind, "caught_up_seconds": round(took, 2),
                "history_reads": scripts, "reads_per_client": round(scripts / clients, 3),
                "clients_with_loss_or_duplicates": wrong, "daemon_peak_rss_mib": round(peak / 1024, 1),
                "loadgen_cpu_s": result["loadgen_cpu_s"]}  # fmt: skip
    finally:
        server.stop()
        _rlimit.setrlimit(_rlimit.RLIMIT_NOFILE, (soft, hard))


def median_of(runs):
    """Median of each numeric field over runs (other fields from the first run)."""
    out = dict(runs[0])
    for key, value in runs[0].items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = statistics.median(run[key] for run in runs)
        elif isinstance(value, dict):
            out[key] = median_of([run[key] for run in runs])
    if len(runs) > 1:
        out["runs"] = len(runs)
    return out


PLANS = {
    "full": {
        "idle": [1000, 5000, 10000],
        "fanout": [(1000, 100), (1000, 200), (5000, 20), (10000, 10)],
        "baseline_fanout": [(1000, 100), (5000, 20), (10000, 10)],
        "churn": [500, 1000, 1500],
        "transports": [(1000, 10)],
        "auth_seconds": 10,
        "lag": [(1000, 64)],
        "storm": [(1000, 1), (5000, 1), (1000, 10), (5000, 10)],
        "fanout_seconds": 10,
        "churn_seconds": 10,
        "publish_seconds": 10,
    },
    "smoke": {
        "idle": [50],
        "fanout": [(50, 20)],
        "baseline_fanout": [(20, 10)],
        "churn": [50],
        "transports": [(20, 10)],
        "auth_seconds": 1,
        "lag": [(20, 8)],
        "storm": [(20, 1), (20, 3)],
        "fanout_seconds": 2,
        "churn_seconds": 2,
        "publish_seconds": 2,
    },
}


def _streams_by_rate(text: str) -> tuple[int, int]:
    streams, _, rate = text.partition("x")
    try:
        return int(streams), int(rate)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected STREAMSxRATE, e.g. 1000x100, not {text!r}") from None


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*",
                        default=["idle", "fanout", "transports", "lag", "storm", "auth", "churn", "publish",
                                 "baseline"],
                        help="idle fanout transports lag storm auth churn publish baseline (default: all)")  # fmt: skip
    parser.add_argument("--runs", type=int, default=3, help="runs per figure; medians are reported")
    parser.add_argument("--smoke", action="store_true", help="tiny numbers: check the benchmark works")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument(
        "--workers",
        action="append",
        type=int,
        metavar="N",
        help="fanout: also run with --workers N (repeatable); CPU and RSS are summed over the workers",
    )
    parser.add_argument(
        "--metrics",
        action="store_true",
        help="fanout: also run with --metrics, scraped every second (CPU per delivery, on and off)",
    )
    parser.add_argument("--fanout", action="append", metavar="STREAMSxRATE", type=_streams_by_rate,
                        help="fan-out figures to run instead of the plan's (repeatable), e.g. 1000x100")  # fmt: skip
    args = parser.parse_args(argv)
    plan = dict(PLANS["smoke" if args.smoke else "full"])
    if args.fanout:
        plan["fanout"] = args.fanout
    runs = 1 if args.smoke else args.runs
    workdir = Path(tempfile.mkdtemp(prefix="sse-bench-"))
    binary = build_sseload(workdir)
    redis = RedisServer(workdir, "--maxclients", "30000")
    results: dict[str, list] = {}

    def record(name, fn, *fn_args):
        try:
            figure = median_of([fn(*fn_args) for _ in range(runs)])
        except (TimeoutError, RuntimeError, subprocess.SubprocessError) as error:
            figure = {"error": f"{type(error).__name__}: {error}", "args": [a for a in fn_args if isinstance(a, int)]}
        results.setdefault(name, []).append(figure)
        print(name, json.dumps(figure), flush=True)

    try:
        print("machine:", json.dumps(machine()), flush=True)
        if "idle" in args.scenarios:
            for n in plan["idle"]:
                record("idle", idle, binary, "twisted-sse", workdir, redis, n)
        if "fanout" in args.scenarios:
            for subs, rate in plan["fanout"]:
                record("fanout", fanout, binary, "twisted-sse", workdir, redis, subs, rate, plan["fanout_seconds"])
                for workers in args.workers or ():
                    record("fanout", fanout, binary, "twisted-sse", workdir, redis, subs, rate, plan["fanout_seconds"],
                           100, ("--workers", str(workers)))  # fmt: skip
                if args.metrics:
                    record("fanout", fanout, binary, "twisted-sse", workdir, redis, subs, rate, plan["fanout_seconds"],
                           100, ("--metrics",))  # fmt: skip
        if "storm" in args.scenarios:
            for clients, channels in plan["storm"]:
                record("storm", storm, binary, workdir, redis, clients, channels)
        if "transports" in args.scenarios:
            for subs, rate in plan["transports"]:
                for shape in ["h1-tcp", *H2LOAD_SHAPES]:
                    record("transports", fanout_over, binary, shape, workdir, redis, subs, rate, plan["fanout_seconds"])
        if "lag" in args.scenarios:
            for streams, channels in plan["lag"]:
                record("lag", reactor_lag, binary, workdir, redis, streams, channels)
        if "auth" in args.scenarios:
            record("auth", auth_cost, binary, workdir, redis, plan["auth_seconds"])
        if "churn" in args.scenarios:
            for rate in plan["churn"]:
                record("churn", churn, binary, "twisted-sse", workdir, redis, rate, plan["churn_seconds"])
        if "publish" in args.scenarios:
            record("publish_http", publish_http, binary, workdir, redis, 32, plan["publish_seconds"])
            record("publish_http", publish_http, binary, workdir, redis, 32, plan["publish_seconds"], 100)
            record("publish_python", publish_python, redis, plan["publish_seconds"])
        if "baseline" in args.scenarios:
            for n in plan["idle"]:
                record("baseline_idle", idle, binary, "baseline", workdir, redis, n)
            for subs, rate in plan["baseline_fanout"]:
                record("baseline_fanout", fanout, binary, "baseline", workdir, redis, subs, rate,
                       plan["fanout_seconds"])  # fmt: skip
            record("baseline_churn", churn, binary, "baseline", workdir, redis, plan["churn"][0],
                   plan["churn_seconds"])  # fmt: skip
    finally:
        redis.stop()
    if args.out:
        args.out.write_text(json.dumps({"machine": machine(), "results": results}, indent=2) + "\n")
    return 0


def machine():
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    return {"cpus": os.cpu_count(), "cpu": cpu, "python": sys.version.split()[0],
            "redis": subprocess.run([shutil.which("redis-server") or "redis-server", "--version"],
                                    capture_output=True, text=True).stdout.split()[2]}  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
