"""Key names and script arguments: internal keys live where no channel name can reach."""

import pytest

from twisted_sse.core import valid_channel
from twisted_sse.redis._scripts import (
    POSITION_SCRIPT,
    PUBLISH_MANY_SCRIPT,
    PUBLISH_SCRIPT,
    READ_SCRIPT,
    SETTLE_SCRIPT,
    channels_keys,
    durable_channel,
    history_bounds,
    keys,
    publish_args,
)


def test_every_script_gets_the_channel_history_and_the_shared_id_keys():
    """KEYS: the channel's history stream, then the last id, the cuts and the origin."""
    assert keys(b"sse:", b"news") == [b"sse:#history:news", b"sse:#last-id", b"sse:#cuts", b"sse:#origin"]


@pytest.mark.parametrize("prefix", [b"sse:", b"app1:"])
def test_no_channel_name_maps_to_an_internal_key_or_the_durable_pub_sub_name(prefix):
    """`#` is not a channel character: `<prefix>#...` can't be a channel's raw pub/sub name."""
    internal = [*keys(prefix, b"news"), durable_channel(prefix, b"news")]
    for key in internal:
        assert key.startswith(prefix + b"#")
        assert not valid_channel(key[len(prefix) :].decode())


def test_publish_arguments_are_durable_name_channel_data_type_and_bounds():
    """ARGV in the order the Lua script reads it; no type is an empty string."""
    bounds = history_bounds(1000, 2.5)
    assert bounds == [b"1000", b"2500"]
    assert publish_args(b"sse:", "news", b"\x00data", None, bounds) == [
        b"sse:#events:news", b"news", b"\x00data", b"", b"1000", b"2500",
    ]  # fmt: skip
    assert publish_args(b"sse:", "news", b"d", "héad", bounds)[3] == "héad".encode()


def test_the_scripts_read_their_keys_only_through_KEYS():
    """Every key a script touches is declared (cluster- and ACL-safe): no key names built in Lua."""
    for script in (PUBLISH_SCRIPT, READ_SCRIPT, POSITION_SCRIPT, SETTLE_SCRIPT, PUBLISH_MANY_SCRIPT):
        assert "#history" not in script and "#last-id" not in script


def test_settling_gets_the_shared_keys_then_each_channels_history():
    assert channels_keys(b"sse:", [b"a", b"b"]) == [
        b"sse:#last-id", b"sse:#cuts", b"sse:#origin", b"sse:#history:a", b"sse:#history:b",
    ]  # fmt: skip
