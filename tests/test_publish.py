"""Publisher and sse-publish: the publish script with the daemon's keys and bounds, checked before Redis."""

import pytest

from twisted_sse.publish import Publisher, _client_for, main
from twisted_sse.redis import PUBLISH_SCRIPT


class _FakeRedis:
    """A redis-py client that records the script calls (no server)."""

    def __init__(self, answer=b"1700000000000-0"):
        self.calls, self.answer, self.registered = [], answer, None

    def register_script(self, source):
        self.registered = source
        return lambda keys, args: self.calls.append((keys, args)) or self.answer


def test_a_publish_runs_the_daemons_script_with_its_keys_and_bounds_and_returns_the_id():
    """Same script, same keys and argument order as the daemon, so ids are one sequence."""
    client = _FakeRedis()
    publisher = Publisher(prefix="app:", history=10, history_ttl=1.5, client=client)
    assert publisher.publish("news", "héllo", event="headline") == "1700000000000-0"
    assert client.registered == PUBLISH_SCRIPT
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
