"""The Lua scripts on a real redis-server: publishing many at once as publishing each, and settling
(which missing events it records as cuts, and the raised last id)."""

from twisted_sse.core import parse_id
from twisted_sse.redis._scripts import (
    PUBLISH_MANY_SCRIPT,
    PUBLISH_SCRIPT,
    READ_SCRIPT,
    SETTLE_SCRIPT,
    channels_keys,
    history_bounds,
    keys,
    publish_args,
    publish_many_call,
)


def _scripts(redis_db):
    client = redis_db.client()
    publish_script, settle_script = client.register_script(PUBLISH_SCRIPT), client.register_script(SETTLE_SCRIPT)

    def publish(channel, history=1000):
        args = publish_args(b"sse:", channel, b"x", None, history_bounds(history, 0))
        return publish_script(keys=keys(b"sse:", channel.encode()), args=args).decode()

    def settle(highest, newest):
        args = [highest.encode(), *(part.encode() for pair in newest.items() for part in pair)]
        return settle_script(keys=channels_keys(b"sse:", [name.encode() for name in newest]), args=args)

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


def test_a_batch_is_published_as_each_event_alone_would_be(redis_db):
    """Ids increase in batch order (same millisecond: the sequence counts up), every event is in its
    channel's history and goes live in order as the same envelope, and each channel is trimmed exactly,
    with its cut recorded."""
    client = redis_db.client()
    many = client.register_script(PUBLISH_MANY_SCRIPT)
    one = client.register_script(PUBLISH_SCRIPT)
    bounds = history_bounds(2, 0)
    before = one(keys=keys(b"sse:", b"a"), args=publish_args(b"sse:", "a", b"0", None, bounds)).decode()
    pubsub = client.pubsub()
    pubsub.subscribe(b"sse:#events:a", b"sse:#events:b")
    while pubsub.get_message(timeout=1) is not None:
        pass
    events = [("a", b"1", None), ("b", b"2", "t"), ("a", b"3", None), ("a", b"4", "u")]
    script_keys, args = publish_many_call(b"sse:", events, bounds)
    ids = [event_id.decode() for event_id in many(keys=script_keys, args=args)]
    keyed = [parse_id(event_id) for event_id in [before, *ids]]
    assert keyed == sorted(keyed) and len(set(keyed)) == 5
    assert client.get("sse:#last-id").decode() == ids[-1]
    assert [entry[0].decode() for entry in client.xrange("sse:#history:a")] == [ids[2], ids[3]]  # exactly 2
    assert client.hget("sse:#cuts", "a").decode() == ids[0]  # the newest trimmed
    assert client.xrange("sse:#history:b")[0][1] == {b"d": b"2", b"e": b"t"}
    live = []
    while (message := pubsub.get_message(timeout=1)) is not None:
        live.append((message["channel"], message["data"]))
    assert live == [
        (b"sse:#events:a", b'\x00sse2{"id":"%s"}\n1' % ids[0].encode()),
        (b"sse:#events:b", b'\x00sse2{"id":"%s","event":"t"}\n2' % ids[1].encode()),
        (b"sse:#events:a", b'\x00sse2{"id":"%s"}\n3' % ids[2].encode()),
        (b"sse:#events:a", b'\x00sse2{"id":"%s","event":"u"}\n4' % ids[3].encode()),
    ]
    read = client.register_script(READ_SCRIPT)
    lost, page, *_ = read(keys=keys(b"sse:", b"a"), args=[b"a", before.encode(), *bounds, b"0", b"0"])
    assert lost == 1 and [entry[0].decode() for entry in page] == [ids[2], ids[3]]
