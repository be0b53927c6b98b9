"""Publishes that arrive together go to a real Redis together, and each publisher still gets its own answer."""

import http.client
import json
import threading

from testbed import Daemon, RedisServer, get, wait_until
from twisted_sse.core import parse_id

TOKEN = {"Authorization": "Bearer s3cret"}


def _publisher(port, count, answers):
    """One keep-alive connection publishing `count` events in turn; (status, id) of each into `answers`."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for n in range(count):
        try:
            connection.request("POST", "/events/c", body=b"%d" % n, headers=TOKEN)
            response = connection.getresponse()
            body = response.read()
            answers.append((response.status, json.loads(body)["id"] if response.status == 200 else None))
        except (OSError, http.client.HTTPException):
            answers.append((0, None))
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)


def test_concurrent_publishes_share_script_calls_and_each_gets_its_own_increasing_id(tmp_path, redis_db):
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", redis_url=redis_db.url)
    try:
        redis_db.client().config_resetstat()
        per_connection = [[] for _ in range(16)]
        threads = [threading.Thread(target=_publisher, args=(daemon.port, 50, answers)) for answers in per_connection]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        ids = []
        for answers in per_connection:
            assert {status for status, _ in answers} == {200}
            keys = [parse_id(event_id) for _, event_id in answers]
            assert keys == sorted(keys)  # one publisher's acknowledgements: strictly increasing ids
            ids += [event_id for _, event_id in answers]
        assert len(set(ids)) == 800
        history = [entry[0].decode() for entry in redis_db.client().xrange("sse:#history:c")]
        assert sorted(ids, key=parse_id) == history  # every acknowledged id is stored, in id order
        stats = redis_db.client().info("commandstats")
        calls = stats.get("cmdstat_evalsha", {}).get("calls", 0) + stats.get("cmdstat_eval", {}).get("calls", 0)
        assert calls < 800, calls  # fewer script calls than publishes
        print(f"800 publishes from 16 connections: {calls} script calls")
    finally:
        daemon.stop()


def test_when_redis_dies_mid_publishing_every_acknowledged_event_was_stored_and_the_rest_failed(tmp_path):
    """Redis with an fsynced append-only file (it answers a write only once it is on disk) is SIGKILLed
    while 8 connections publish: every publish answered 200 is in the history Redis restarts with; every
    other one got its own 503."""
    redis = RedisServer(tmp_path, "--appendonly", "yes", "--appendfsync", "always")
    daemon = Daemon(tmp_path, "--publish-token", "s3cret", "--redis-timeout", "2", "--history", "10000",
                    redis_url=redis.url)  # fmt: skip
    try:
        wait_until(lambda: get(daemon.port, "/healthz")[0] == 200, timeout=10)
        per_connection = [[] for _ in range(8)]
        threads = [threading.Thread(target=_publisher, args=(daemon.port, 400, answers)) for answers in per_connection]
        for thread in threads:
            thread.start()
        wait_until(lambda: sum(map(len, per_connection)) >= 300, timeout=30)
        redis.kill()
        for thread in threads:
            thread.join(120)
        answers = [answer for answers in per_connection for answer in answers]
        acknowledged = {event_id for status, event_id in answers if status == 200}
        assert {status for status, _ in answers} <= {200, 503}
        assert 300 <= len(acknowledged) < len(answers)
        redis.start()
        stored = {entry[0].decode() for entry in redis.client().xrange("sse:#history:c")}
        assert acknowledged <= stored, sorted(acknowledged - stored)[:5]
    finally:
        daemon.stop()
        redis.stop()
