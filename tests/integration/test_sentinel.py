"""Redis under Sentinel on real processes: a master, one or two replicas, three sentinels; the master is SIGKILLed."""

import json
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest

from testbed import Daemon, free_port, get, wait_until
from testbed.redis_server import redis_server_binary
from tests.live import LiveStream
from twisted_sse.core import format_id, parse_id

SENTINEL = shutil.which("redis-sentinel") or shutil.which("redis-sentinel", path="/usr/bin")
pytestmark = pytest.mark.skipif(SENTINEL is None and not os.environ.get("CI"), reason="apt-get install redis-sentinel")
TOKEN = {"Authorization": "Bearer s3cret"}


class Cluster:
    """A master and `replicas` replicas (redis-server), watched by three sentinels that fail over within seconds."""

    def __init__(self, workdir, replicas=2):
        import redis

        self.redis = redis
        self.processes = {}
        self.master_port = free_port()
        ports = [self.master_port, *(free_port() for _ in range(replicas))]
        for n, port in enumerate(ports):
            argv = [redis_server_binary(), "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly",
                    "no", "--dir", str(workdir)]  # fmt: skip
            if n:
                argv += ["--replicaof", "127.0.0.1", str(self.master_port)]
            self.processes[port] = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.sentinel_ports = [free_port() for _ in range(3)]
        for port in self.sentinel_ports:
            conf = workdir / f"sentinel-{port}.conf"
            conf.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {workdir}\nlogfile {workdir}/sentinel-{port}.log\n"
                f"sentinel monitor mymaster 127.0.0.1 {self.master_port} 2\n"
                "sentinel down-after-milliseconds mymaster 1000\nsentinel failover-timeout mymaster 5000\n"
                "sentinel parallel-syncs mymaster 1\n"
            )
            self.processes[port] = subprocess.Popen([SENTINEL, str(conf)], stdout=subprocess.DEVNULL,
                                                    stderr=subprocess.DEVNULL)  # fmt: skip
        wait_until(lambda: all(self._replicas_in_sync(p) for p in ports[1:]), timeout=15)
        wait_until(lambda: self.master() == ("127.0.0.1", self.master_port), timeout=15)
        # A sentinel learns the replicas from the master's INFO (every 10 s) and the other sentinels from
        # hello messages: until every one knows them all, a failover aborts with no good replica.
        wait_until(lambda: all(self._knows_all(port, replicas) for port in self.sentinel_ports), timeout=30)
        self.workdir = workdir
        self.url = "redis+sentinel://" + ",".join(f"127.0.0.1:{p}" for p in self.sentinel_ports) + "/mymaster/0"

    def _knows_all(self, port, replicas):
        try:
            sentinel = self.redis.Redis(port=port, decode_responses=True)
            known = sentinel.execute_command("SENTINEL", "REPLICAS", "mymaster")
            others = sentinel.execute_command("SENTINEL", "SENTINELS", "mymaster")
        except self.redis.RedisError:
            return False
        fields = [r if isinstance(r, dict) else dict(zip(r[::2], r[1::2], strict=True)) for r in known]
        usable = [f for f in fields if "disconnected" not in str(f.get("flags", ""))]
        return len(usable) == replicas and len(others) == len(self.sentinel_ports) - 1

    def _replicas_in_sync(self, port):
        try:
            return self.redis.Redis(port=port).info("replication").get("master_link_status") == "up"
        except self.redis.ConnectionError:
            return False

    def master(self):
        for port in self.sentinel_ports:
            try:
                host, master_port = self.redis.Redis(port=port, decode_responses=True).execute_command(
                    "SENTINEL", "get-master-addr-by-name", "mymaster"
                )
                return host, int(master_port)
            except (self.redis.ConnectionError, TypeError):
                continue
        return None

    def kill_master(self):
        """SIGKILL the master; returns once the sentinels name another. A sentinel whose timer was late
        (a loaded machine) enters TILT mode and does nothing for 30 s: hence the long wait."""
        old_master = self.master()
        process = self.processes.pop(self.master_port)
        process.send_signal(signal.SIGKILL)
        process.wait()
        try:
            wait_until(lambda: self.master() not in (None, old_master), timeout=90, interval=0.2)
        except TimeoutError:
            logs = [path.read_text()[-1500:] for path in sorted(self.workdir.glob("sentinel-*.log"))]
            raise AssertionError("no promotion within 90 s; the sentinels said:\n" + "\n".join(logs)) from None

    def stop(self):
        for process in self.processes.values():
            process.kill()
            process.wait()


def test_streams_stay_open_through_a_failover_and_publishing_goes_on_through_the_new_master(tmp_path):
    """SIGKILL the master: the sentinels promote a replica, the daemon follows them (its stream is not cut), and
    events published after the failover, through the daemon or the Python Publisher, reach the stream."""
    cluster = Cluster(tmp_path)
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--redis-timeout", "2", redis_url=cluster.url)
    try:
        stream = LiveStream(daemon.port, "/events/news", timeout=30)
        wait_until(lambda: get(daemon.port, "/healthz")[0] == 200, timeout=10)
        status, _, body = get(daemon.port, "/events/news", "POST", b"before", TOKEN)
        assert status == 200, body
        assert stream.read(1)[0].data == "before"
        cluster.kill_master()

        def published_after():
            status, _, body = get(daemon.port, "/events/news", "POST", b"after the failover", TOKEN)
            return json.loads(body)["id"] if status == 200 else None

        event_id = wait_until(published_after, timeout=30, interval=0.5)
        # The same connection: the stream was not cut. If the daemon could not read from the new master
        # what the outage may have cost (its recovery read timed out, or the replica lacked it), the
        # stream is told with sse-lost first: never a silent gap.
        # An attempt answered 503 may still have been published (Redis ran it, its answer came too late):
        # its event arrives too, before the one answered 200.
        events = stream.read(2)
        while events[-1].last_event_id != event_id:
            assert events[-1].type == "sse-lost" or events[-1].data == "after the failover", events
            events = stream.read(len(events) + 1)
        from twisted_sse.publish import Publisher

        by_python = Publisher(cluster.url).publish("news", "from the Publisher")  # finds the new master too
        assert stream.read(len(events) + 1)[-1].last_event_id == by_python
        stream.close()
    finally:
        daemon.stop()
        cluster.stop()


class Publishing(threading.Thread):
    """Publishes numbered events over HTTP, one every few milliseconds, until stopped; keeps every answer."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port = port
        self.answers = []  # (status, id or None, replicated or None)
        self.stopping = threading.Event()

    def run(self):
        n = 0
        while not self.stopping.is_set():
            try:
                status, _, body = get(self.port, "/events/news", "POST", b"%d" % n, TOKEN)
            except OSError:
                status, body = 0, b""
            answer = json.loads(body) if status in (200, 202) else {}
            self.answers.append((status, answer.get("id"), answer.get("replicated")))
            n += 1
            time.sleep(0.005)

    def stop(self):
        self.stopping.set()
        self.join(10)

    def acknowledged(self, status=200):
        return [event_id for code, event_id, _ in self.answers if code == status]


def _through_a_failover(cluster, daemon, until=(200,)):
    """A stream open while events are published through a failover, until ten publishes after it were
    answered with a status of `until` (200); returns the stream's events up to the last of those."""
    stream = LiveStream(daemon.port, "/events/news", timeout=60)
    wait_until(lambda: get(daemon.port, "/healthz")[0] == 200, timeout=10)
    publishing = Publishing(daemon.port)
    publishing.start()
    wait_until(lambda: len(publishing.acknowledged()) >= 20, timeout=10)
    cluster.kill_master()
    after = len(publishing.answers)
    failed_over = time.monotonic()
    try:
        wait_until(lambda: sum(1 for code, *_ in publishing.answers[after:] if code in until) >= 10,
                   timeout=60, interval=0.2)  # fmt: skip
    except TimeoutError:
        publishing.stop()
        raise AssertionError(f"answers after the failover: {[code for code, *_ in publishing.answers[after:]]}\n"
                             f"{daemon.log()[-3000:]}") from None  # fmt: skip
    publishing.stop()
    print(f"{time.monotonic() - failed_over:.1f}s from the promotion to ten answers {until}")
    last = [event_id for code, event_id, _ in publishing.answers if code in until][-1]
    events = stream.read(1)
    while events[-1].last_event_id != last:
        events = stream.read(len(events) + 1)
    stream.close()
    return events, publishing


def _ids_in_order(events):
    ids = [parse_id(e.last_event_id) for e in events if e.type == "message"]
    assert ids == sorted(ids) and len(set(ids)) == len(ids), "an id repeated or went back"
    return [format_id(key) for key in ids]


def test_with_publish_replicas_every_acknowledged_event_reaches_the_stream_exactly_once(tmp_path):
    """--publish-replicas 1 with two replicas: what was answered 200 is on a replica, so it survives the
    master's SIGKILL; the stream gets each such event once, ids never repeat."""
    cluster = Cluster(tmp_path)
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--redis-timeout", "2", "--publish-replicas", "1",
                    redis_url=cluster.url)  # fmt: skip
    try:
        events, publishing = _through_a_failover(cluster, daemon)
        received = _ids_in_order(events)
        acknowledged = publishing.acknowledged()
        assert all(replicated for code, _, replicated in publishing.answers if code == 200)
        assert set(acknowledged) <= set(received), sorted(set(acknowledged) - set(received))
        print(f"{len(acknowledged)} acknowledged, {len(received)} received, "
              f"{sum(1 for e in events if e.type == 'sse-lost')} sse-lost")  # fmt: skip
    finally:
        daemon.stop()
        cluster.stop()


def test_without_publish_replicas_what_is_lost_is_signalled_and_no_id_repeats(tmp_path):
    """Without --publish-replicas, an acknowledged event may die with the master: if any did, the stream
    was told with sse-lost (never a silent gap), and no id repeats."""
    cluster = Cluster(tmp_path)
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--redis-timeout", "2", redis_url=cluster.url)
    try:
        events, publishing = _through_a_failover(cluster, daemon)
        received = _ids_in_order(events)
        missing = set(publishing.acknowledged()) - set(received)
        lost = [e for e in events if e.type == "sse-lost"]
        assert not missing or lost, f"silent gap: {sorted(missing)}"
        print(f"{len(publishing.acknowledged())} acknowledged, {len(missing)} missing, {len(lost)} sse-lost")
    finally:
        daemon.stop()
        cluster.stop()


def test_with_one_replica_gone_a_publish_is_answered_202_not_replicated_and_still_goes_live(tmp_path):
    """One replica: once it is promoted it has none, so nothing can be confirmed: 202 with the id and
    "replicated": false (not a failure that invites a duplicate retry), and the event is live."""
    cluster = Cluster(tmp_path, replicas=1)
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--redis-timeout", "1", "--publish-replicas", "1",
                    redis_url=cluster.url)  # fmt: skip
    try:
        events, publishing = _through_a_failover(cluster, daemon, until=(202,))
        unconfirmed = [(event_id, replicated) for code, event_id, replicated in publishing.answers if code == 202]
        assert unconfirmed and all(replicated is False for _, replicated in unconfirmed)
        assert {event_id for event_id, _ in unconfirmed} <= set(_ids_in_order(events))
    finally:
        daemon.stop()
        cluster.stop()
