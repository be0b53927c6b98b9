"""Publisher and sse-publish: the publish script with the daemon's keys and bounds, checked before Redis."""

import pytest

from twisted_sse.publish import PUBLISH_MANY_CHUNK, Publisher, _client_for, main
from twisted_sse.redis import PUBLISH_MANY_SCRIPT, PUBLISH_SCRIPT


class _FakeRedis:
    """A redis-py client that records the script calls (no server); the batch script answers one id an event."""

    def __init__(self, answer=b"1700000000000-0"):
        self.calls, self.answer, self.registered = [], answer, []

    def register_script(self, source):
        self.registered.append(source)
        if source == PUBLISH_MANY_SCRIPT:
            return self._many
        return lambda keys, args: self.calls.append((keys, args)) or self.answer

    def _many(self, keys, args):
        self.calls.append((keys, args))
        events = (len(args) - 3 - 2 * int(args[2])) // 3
        return [b"1700000000000-%d" % n for n in range(events)]


def test_a_publish_runs_the_daemons_script_with_its_keys_and_bounds_and_returns_the_id():
    """Same script, same keys and argument order as the daemon, so ids are one sequence."""
    client = _FakeRedis()
    publisher = Publisher(prefix="app:", history=10, history_ttl=1.5, client=client)
    assert publisher.publish("news", "héllo", event="headline") == "1700000000000-0"
    assert client.registered[0] == PUBLISH_SCRIPT
    [(keys, args)] = client.calls
    assert keys == [b"app:#history:news", b"app:#last-id", b"app:#cuts", b"app:#origin"]
    assert args == [b"app:#events:news", b"news", "héllo".encode(), b"headline", b"10", b"1500"]


@pytest.mark.parametrize(("channel", "event"), [("bad name", None), ("news", "two\nlines"), ("#events:x", None)])
def test_a_bad_channel_or_event_type_is_refused_before_redis(channel, event):
    """ValueError, and nothing sent."""
    client = _FakeRedis()
    with pytest.raises(ValueError):
        Publisher(client=client).publish(channel, b"x", event)
    assert client.calls == []


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://:pw@127.0.0.1:6380/2", {"host": "127.0.0.1", "port": 6380, "db": 2, "password": "pw"}),
        ("unix:///run/redis.sock?db=1", {"path": "/run/redis.sock", "db": 1}),
    ],
)
def test_the_client_is_made_from_the_same_urls_as_the_daemons(url, expected):
    """redis:// and unix:// URLs mean the same to the publisher as to `--redis` (nothing connects yet)."""
    kwargs = _client_for(url).connection_pool.connection_kwargs
    assert {key: kwargs.get(key) for key in expected} == expected


def test_the_command_line_refuses_a_bad_channel_as_a_usage_error(capsys):
    """sse-publish exits 2 naming the channel rule (no Redis needed to find out)."""
    with pytest.raises(SystemExit) as exited:
        main(["--redis", "redis://127.0.0.1:1/0", "bad name", "x"])
    assert exited.value.code == 2 and "invalid channel name" in capsys.readouterr().err


def test_publish_many_checks_every_event_first_then_sends_them_in_order_in_chunks(monkeypatch):
    client = _FakeRedis()
    publisher = Publisher(client=client)
    with pytest.raises(ValueError, match="event 1: invalid channel name"):
        publisher.publish_many([("news", "a"), ("bad name", "b")])
    assert client.calls == []
    ids = publisher.publish_many([("news", "a"), ("chat.1", b"b", "message")])
    assert ids == ["1700000000000-0", "1700000000000-1"] and ids[0].replicated is None
    [(keys, args)] = client.calls
    assert keys[3:] == [b"sse:#history:news", b"sse:#history:chat.1"]
    assert args[-6:] == [b"1", b"a", b"", b"2", b"b", b"message"]
    client.calls.clear()
    assert len(publisher.publish_many([("n", "x")] * (PUBLISH_MANY_CHUNK + 1))) == PUBLISH_MANY_CHUNK + 1
    assert [(len(args) - 5) // 3 for _, args in client.calls] == [PUBLISH_MANY_CHUNK, 1]


def test_the_command_line_publishes_a_batch_and_refuses_a_bad_line_before_redis(tmp_path, capsys):
    bad = tmp_path / "bad.ndjson"
    bad.write_text('{"channel": "news", "data": "a"}\n{"channel": "news"}\n')
    with pytest.raises(SystemExit) as exited:
        main(["--redis", "redis://127.0.0.1:1/0", "--batch", str(bad)])
    assert exited.value.code == 2 and "line 2" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        main(["--redis", "redis://127.0.0.1:1/0", "--batch", str(bad), "news"])
    assert exited.value.code == 2 and "or --batch" in capsys.readouterr().err
