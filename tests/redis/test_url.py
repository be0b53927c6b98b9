"""--redis URLs: what parses, and plain reasons for what doesn't."""

import pytest

from twisted_sse.core._settings import RedisAddress
from twisted_sse.redis._url import parse_redis_url


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("redis://localhost", RedisAddress(host="localhost")),
        ("redis://127.0.0.1:6380/3", RedisAddress(host="127.0.0.1", port=6380, db=3)),
        ("redis://:p%40ss@h:1/0", RedisAddress(host="h", port=1, password="p@ss")),
        ("redis://user:pw@h", RedisAddress(host="h", username="user", password="pw")),
        ("rediss://cache.example:6380", RedisAddress(host="cache.example", port=6380, tls=True)),
        ("redis://[::1]:6379/2", RedisAddress(host="::1", db=2)),
        ("unix:///run/redis.sock", RedisAddress(unix_path="/run/redis.sock")),
        ("unix://:pw@/run/redis.sock?db=4", RedisAddress(unix_path="/run/redis.sock", db=4, password="pw")),
    ],
)
def test_valid_urls(url, address):
    """Each documented URL form parses to its address."""
    assert parse_redis_url(url) == address


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("localhost:6379", "use redis://"),
        ("http://h", "use redis://"),
        ("redis://", "no host"),
        ("redis://h:port", "not a valid URL"),
        ("redis://h:99999", "not a valid URL"),
        ("redis://h/zero", "not a number"),
        ("unix://", "socket path"),
    ],
)
def test_invalid_urls_say_why(url, words):
    """A bad URL raises ValueError with a plain reason."""
    with pytest.raises(ValueError, match=words):
        parse_redis_url(url)


def test_description_hides_the_password():
    """Logs show the address without its password."""
    text = parse_redis_url("redis://u:topsecret@h:1/2").describe()
    assert "topsecret" not in text and text == "redis://u@h:1/2"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+sentinel://s1:26379,s2:26380/mymaster/2",
         RedisAddress(sentinels=(("s1", 26379), ("s2", 26380)), service="mymaster", db=2)),
        ("redis+sentinel://:pw@s1/mymaster",
         RedisAddress(sentinels=(("s1", 26379),), service="mymaster", password="pw")),
        ("redis+sentinel://app:p%40ss@[::1]:26379,10.0.0.2/cache",
         RedisAddress(sentinels=(("::1", 26379), ("10.0.0.2", 26379)), service="cache", username="app",
                      password="p@ss")),
    ],
)  # fmt: skip
def test_sentinel_urls_name_the_sentinels_the_service_and_the_masters_login(url, expected):
    """Several sentinels, default port 26379, IPv6 in brackets; the password is the master's."""
    assert parse_redis_url(url) == expected


@pytest.mark.parametrize(
    ("url", "reason"),
    [("redis+sentinel:///mymaster", "at least one sentinel"), ("redis+sentinel://s1:26379", "service name"),
     ("redis+sentinel://s1:x/m", "not a number"), ("redis+sentinel://s1:0/m", "no such port"),
     ("redis+sentinel://s1/m/x", "not a number")],
)  # fmt: skip
def test_bad_sentinel_urls_say_why(url, reason):
    """A plain reason for each mistake."""
    with pytest.raises(ValueError, match=reason):
        parse_redis_url(url)


def test_a_sentinel_address_is_described_without_its_password():
    """Logs name the sentinels and the service, never the password."""
    address = parse_redis_url("redis+sentinel://app:secret@s1:26379,[::1]:26380/mymaster/1")
    assert address.describe() == "redis+sentinel://app@s1:26379,[::1]:26380/mymaster/1"
