"""Settings and RedisAddress: plain values; an address is described without its password."""

import dataclasses

import pytest

from twisted_sse.core import RedisAddress, Settings


def test_settings_are_immutable_and_changed_by_replace():
    """A service's settings can't change under it; `replace` makes new ones."""
    settings = Settings()
    with pytest.raises(dataclasses.FrozenInstanceError):
        settings.heartbeat = 1  # type: ignore[misc]
    assert dataclasses.replace(settings, heartbeat=1).heartbeat == 1 and settings.heartbeat == 15.0


@pytest.mark.parametrize(
    ("address", "described"),
    [
        (RedisAddress(host="::1", port=6380, db=2, password="secret"), "redis://[::1]:6380/2"),
        (RedisAddress(host="cache", tls=True, username="app", password="secret"), "rediss://app@cache:6379/0"),
        (RedisAddress(unix_path="/run/redis.sock", db=1, password="secret"), "unix:///run/redis.sock?db=1"),
    ],
)
def test_an_address_is_described_for_logs_without_its_password(address, described):
    """What goes to the log names the server, never the password."""
    assert address.describe() == described
