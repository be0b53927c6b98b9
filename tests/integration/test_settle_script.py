"""SETTLE_SCRIPT on a real redis-server: which missing events it records as cuts, and the raised last id."""

from twisted_sse.core import parse_id
from twisted_sse.redis._scripts import PUBLISH_SCRIPT, SETTLE_SCRIPT, history_bounds, keys, publish_args, settle_keys


def _scripts(redis_db):
    client = redis_db.client()
    publish_script, settle_script = client.register_script(PUBLISH_SCRIPT), client.register_script(SETTLE_SCRIPT)

    def publish(channel, history=1000):
        args = publish_args(b"sse:", channel, b"x", None, history_bounds(history, 0))
        return publish_script(keys=keys(b"sse:", channel.encode()), args=args).decode()

    def settle(highest, newest):
        args = [highest.encode(), *(part.encode() for pair in newest.items() for part in pair)]
        return settle_script(keys=settle_keys(b"sse:", [name.encode() for name in newest]), args=args)

    return client, publish, settle


def test_only_a_newest_event_that_is_neither_held_nor_trimmed_gets_a_cut(redis_db):
    client, publish, settle = _scripts(redis_db)
    held = publish("held")
    publish("trimmed", history=1)
    trimmed_cut = publish("trimmed", history=1)  # the first is trimmed: the cut is at it
    trimmed = client.hget("sse:#cuts", "trimmed").decode()
    assert parse_id(trimmed) < parse_id(trimmed_cut)
    ms, seq = map(int, trimmed_cut.split("-"))
    lost = f"{ms}-{seq + 5}"  # an id the daemon received that this Redis never stored
    before_origin = "1-0"
    assert settle(lost, {"held": held, "trimmed": trimmed, "lost": lost, "old": before_origin}) == 1
    assert {k.decode(): v.decode() for k, v in client.hgetall("sse:#cuts").items()} == {"trimmed": trimmed,
                                                                                       "lost": lost}  # fmt: skip
    assert client.get("sse:#last-id").decode() == lost  # raised: the next id follows it
    assert parse_id(publish("lost")) > parse_id(lost)


def test_settling_never_lowers_the_last_id_or_a_cut(redis_db):
    client, publish, settle = _scripts(redis_db)
    first = publish("a")
    last = publish("a")
    assert settle(first, {"a": first}) == 0
    assert client.get("sse:#last-id").decode() == last
    assert client.hget("sse:#cuts", "a") is None
