"""HTTP/2 attacks against a real daemon: what they cost in memory, and in other clients' delivery latency.

    .venv/bin/python benchmarks/h2_attacks.py memory            # 60 s of each memory attack, RSS sampled
    .venv/bin/python benchmarks/h2_attacks.py latency --runs 3  # fan-out p50/p99 with and without a PING flood
    .venv/bin/python benchmarks/h2_attacks.py --smoke           # both, tiny

memory: the oversized-frame and CONTINUATION attacks (testbed/h2_attacks.py), connection
after connection from two attacking processes, for `--seconds` each on a fresh daemon;
the daemon's RSS is sampled every half second.

latency: `--subscribers` plain-TCP streams (sseload) get `--rate` events/s for
`--seconds`; in alternate runs an attacking process floods PINGs on HTTP/2 connections
with one open stream each, reconnecting as soon as it is cut. Medians of `--runs` pairs.
Nothing here is a test.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from bench import REPO, Server, build_sseload, cpu_seconds, finish, payload, rss_kib, run_sseload, wait_streams

from testbed import RedisServer, server_certificate
from testbed.h2_attacks import flood
from testbed.processes import free_port
from twisted_sse.publish import Publisher


def attacker(attack: str, port: int, cafile: str, seconds: float) -> dict:
    """Connection after connection, each running `attack` until the server cuts it, for `seconds`."""
    end = time.monotonic() + seconds
    connections, sent, goaways, cut_after = 0, 0, {}, []
    while time.monotonic() < end:
        try:
            outcome = flood(port, cafile, attack, seconds=max(0.1, end - time.monotonic()))
        except OSError:
            continue
        connections += 1
        sent += outcome.sent
        goaways[str(outcome.goaway)] = goaways.get(str(outcome.goaway), 0) + 1
        if outcome.closed:
            cut_after.append(outcome.seconds)
    cut_after.sort()
    return {"attack": attack, "connections": connections, "sent_mb": round(sent / 1e6, 1), "goaways": goaways,
            "cut_after_ms_p50": round(1000 * cut_after[len(cut_after) // 2], 2) if cut_after else None,
            "cut_after_ms_max": round(1000 * cut_after[-1], 2) if cut_after else None}  # fmt: skip


def _spawn_attacker(attack: str, port: int, cafile: Path, seconds: float) -> subprocess.Popen[str]:
    argv = [sys.executable, __file__, "--attacker", attack, str(port), str(cafile), str(seconds)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True, cwd=REPO)


def _tls_server(workdir: Path, redis: RedisServer) -> tuple[Server, int, Path]:
    pem, ca = server_certificate(workdir, "attacked")
    tls_port = free_port()
    listen = f"ssl:{tls_port}:interface=127.0.0.1:privateKey={pem}:certKey={pem}"
    return Server("twisted-sse", workdir, redis, ("--listen", listen)), tls_port, ca


def memory(workdir: Path, redis: RedisServer, attack: str, seconds: float, attackers: int = 2) -> dict:
    server, tls_port, ca = _tls_server(workdir, redis)
    try:
        before = rss_kib(server.pid)
        peak, samples, stop = [before], [], threading.Event()

        def sample() -> None:
            while not stop.wait(0.5):
                samples.append(rss_kib(server.pid))

        sampler = threading.Thread(target=sample)
        sampler.start()
        cpu0 = cpu_seconds(server.pid)
        running = [_spawn_attacker(attack, tls_port, ca, seconds) for _ in range(attackers)]
        reports = [json.loads(p.communicate(timeout=seconds + 60)[0]) for p in running]
        cpu = cpu_seconds(server.pid) - cpu0
        stop.set()
        sampler.join()
        peak = max([before, *samples])
        return {
            "attack": attack,
            "seconds": seconds,
            "attackers": attackers,
            "connections": sum(r["connections"] for r in reports),
            "sent_mb": round(sum(r["sent_mb"] for r in reports), 1),
            "goaways": reports[0]["goaways"],
            "cut_after_ms_p50": reports[0]["cut_after_ms_p50"],
            "rss_before_mib": round(before / 1024, 1),
            "rss_peak_mib": round(peak / 1024, 1),
            "rss_growth_mib": round((peak - before) / 1024, 1),
            "rss_end_mib": round(rss_kib(server.pid) / 1024, 1),
            "server_cpu_percent": round(100 * cpu / seconds, 1),
        }
    finally:
        server.stop()


def latency(binary: str, workdir: Path, redis: RedisServer, subscribers: int, rate: int, seconds: float,
            attack: str | None) -> dict:  # fmt: skip
    server, tls_port, ca = _tls_server(workdir, redis)
    try:
        load = run_sseload(binary, "stream", server.port, "/events/bench", subscribers, seconds + 30)
        wait_streams(server, redis, subscribers, "bench", timeout=120)
        time.sleep(1)
        flooding = _spawn_attacker(attack, tls_port, ca, seconds + 1) if attack else None
        publisher = Publisher(redis.url)
        cpu0, t0, published = cpu_seconds(server.pid), time.monotonic(), 0
        while time.monotonic() - t0 < seconds:
            publisher.publish("bench", payload(published, 100))
            published += 1
            time.sleep(max(0.0, t0 + published / rate - time.monotonic()))
        cpu = cpu_seconds(server.pid) - cpu0
        report = json.loads(flooding.communicate(timeout=60)[0]) if flooding else None
        time.sleep(2)
        load.terminate()
        result = finish(load)
        return {
            "attack": attack or "none",
            "subscribers": subscribers,
            "rate": rate,
            "delivered_ratio": round(result["deliveries"] / max(published * subscribers, 1), 4),
            "p50_ms": result["p50_ms"],
            "p99_ms": result["p99_ms"],
            "server_cpu_percent": round(100 * cpu / seconds, 1),
            "attacker": report,
        }
    finally:
        server.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("scenarios", nargs="*", default=["memory", "latency"], help="memory latency (default: both)")
    parser.add_argument("--seconds", type=float, default=60.0, help="memory: seconds of each attack")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="latency: seconds of each run")
    parser.add_argument("--subscribers", type=int, default=500)
    parser.add_argument("--rate", type=int, default=100)
    parser.add_argument("--runs", type=int, default=3, help="latency: pairs of runs (without, with the flood)")
    parser.add_argument("--attack", action="append", help="memory: attacks to run (default: oversized, continuation)")
    parser.add_argument("--smoke", action="store_true", help="a few seconds of each")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--attacker", nargs=4, metavar=("ATTACK", "PORT", "CAFILE", "SECONDS"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.attacker:
        attack, port, cafile, seconds = args.attacker
        print(json.dumps(attacker(attack, int(port), cafile, float(seconds))))
        return 0
    if args.smoke:
        args.seconds, args.latency_seconds, args.subscribers, args.runs = 2.0, 2.0, 20, 1
    workdir = Path(tempfile.mkdtemp(prefix="sse-h2-attacks-"))
    redis = RedisServer(workdir)
    results: dict[str, list] = {"memory": [], "latency": []}
    try:
        if "memory" in args.scenarios:
            for attack in args.attack or ["oversized", "continuation"]:
                figure = memory(workdir, redis, attack, args.seconds)
                results["memory"].append(figure)
                print("memory", json.dumps(figure), flush=True)
        if "latency" in args.scenarios:
            binary = build_sseload(workdir)
            pairs = []
            for _ in range(args.runs):
                calm = latency(binary, workdir, redis, args.subscribers, args.rate, args.latency_seconds, None)
                attacked = latency(binary, workdir, redis, args.subscribers, args.rate, args.latency_seconds, "ping")
                print("latency", json.dumps(calm), flush=True)
                print("latency", json.dumps(attacked), flush=True)
                pairs.append((calm, attacked))
            summary = {
                "p50_ms_without": statistics.median(c["p50_ms"] for c, _ in pairs),
                "p50_ms_with_ping_flood": statistics.median(a["p50_ms"] for _, a in pairs),
                "p99_ms_without": statistics.median(c["p99_ms"] for c, _ in pairs),
                "p99_ms_with_ping_flood": statistics.median(a["p99_ms"] for _, a in pairs),
                "p50_ratio_median_of_pairs": statistics.median(a["p50_ms"] / max(c["p50_ms"], 1e-3) for c, a in pairs),
            }
            results["latency"] = [*(run for pair in pairs for run in pair), summary]
            print("latency summary", json.dumps(summary), flush=True)
    finally:
        redis.stop()
    if args.out:
        args.out.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
