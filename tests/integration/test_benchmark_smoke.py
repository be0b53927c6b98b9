"""The benchmark runs end to end (tiny numbers): it is not a test of speed, only that it works."""

import json
import subprocess
import sys

from testbed import REPO


def test_benchmark_smoke_run(tmp_path):
    """`bench.py --smoke` runs every scenario and every delivery arrives."""
    out = tmp_path / "results.json"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench.py"), "--smoke", "--out", str(out)],
                         capture_output=True, text=True, timeout=600)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(out.read_text())["results"]
    assert set(results) == {"idle", "fanout", "transports", "lag", "storm", "auth", "churn", "publish_http",
                            "publish_python", "baseline_idle", "baseline_fanout", "baseline_churn"}  # fmt: skip
    assert results["lag"][0]["open"]["max_healthz_ms"] > 0 and results["lag"][0]["release"]["seconds"] >= 0
    auth = results["auth"][0]
    assert all(auth[mode]["streams_opened_per_s"] > 0 for mode in ("public", "callback-warm", "callback-cold"))
    assert results["fanout"][0]["delivered_ratio"] == 1.0 and results["fanout"][0]["lost_seq_gaps"] == 0
    assert [t["shape"] for t in results["transports"]] == ["h1-tcp", "h1-tls", "h2-tls-1", "h2-tls-100"]
    assert all(0.99 <= t["delivered_ratio"] <= 1.01 for t in results["transports"]), results["transports"]
    assert results["churn"][0]["after"]["streams"] == 0 and results["churn"][0]["after"]["channels"] == 0
    assert results["publish_http"][0]["publishes_per_s"] > 0


def test_the_in_process_post_benchmark_runs():
    """`post_inprocess.py` (tiny numbers) answers its POSTs both ways and prints both figures."""
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "post_inprocess.py"), "--requests", "20",
                          "--rounds", "1"], capture_output=True, text=True, timeout=120)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    assert "us per POST" in run.stdout and run.stdout.count("\n") == 2


def test_the_http2_attack_benchmark_runs(tmp_path):
    """`h2_attacks.py --smoke` attacks for a few seconds: every attacking connection gets its GOAWAY, and the
    streams beside them get every event."""
    out = tmp_path / "h2.json"
    run = subprocess.run([sys.executable, str(REPO / "benchmarks" / "h2_attacks.py"), "--smoke", "--out", str(out)],
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert run.returncode == 0, run.stdout + run.stderr
    results = json.loads(out.read_text())
    assert [m["attack"] for m in results["memory"]] == ["oversized", "continuation"]
    # (the last connection of a run may still be open when the run's time is up: no GOAWAY, "None")
    assert [set(m["goaways"]) - {"None"} for m in results["memory"]] == [{"6"}, {"11"}], results["memory"]
    calm, attacked, _ = results["latency"]
    assert calm["delivered_ratio"] == attacked["delivered_ratio"] == 1.0
    assert set(attacked["attacker"]["goaways"]) - {"None"} == {"11"}, attacked
