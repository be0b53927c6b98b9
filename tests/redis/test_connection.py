"""txredisapi at arm's length: endpoints by address, factories set up as the broker needs them."""

import hashlib

from twisted.internet import endpoints
from twisted.internet.testing import MemoryReactorClock

from twisted_sse.core import RedisAddress
from twisted_sse.redis._connection import Script, _command, command_factory, redis_endpoint, subscriber_factory


def test_a_unix_address_connects_to_its_socket_path():
    """unix:// addresses get a UNIX client endpoint."""
    endpoint = redis_endpoint(MemoryReactorClock(), RedisAddress(unix_path="/run/redis.sock"))
    assert isinstance(endpoint, endpoints.UNIXClientEndpoint)


def test_a_host_address_connects_by_name_and_tls_wraps_it():
    """redis:// gets a HostnameEndpoint; rediss:// the same inside a TLS wrapper."""
    reactor = MemoryReactorClock()
    assert isinstance(redis_endpoint(reactor, RedisAddress(host="localhost")), endpoints.HostnameEndpoint)
    tls = redis_endpoint(reactor, RedisAddress(host="localhost", tls=True))
    plain = endpoints.HostnameEndpoint(reactor, "localhost", 6379)
    assert type(tls) is type(endpoints.wrapClientTLS(object(), plain)) and not isinstance(tls, type(plain))


def test_the_command_connection_keeps_bytes_and_numbers_as_sent_and_selects_its_database():
    """charset None and convertNumbers off: "007" stays b"007"; the database is the URL's."""
    factory = command_factory(RedisAddress(host="h", db=3, password="pw"), timeout=2.0)
    assert (factory.charset, factory.convertNumbers, factory.dbid, factory.password) == (None, False, 3, "pw")
    assert factory.replyTimeout == 2.0


def test_the_subscriber_never_selects_a_database_and_keeps_trying_after_a_refused_login():
    """No dbid on the subscriber (SELECT after SUBSCRIBE ends reconnection); stopTrying is ignored."""
    factory = subscriber_factory(RedisAddress(host="h", db=3, password="pw"), owner=object())
    assert getattr(factory, "dbid", None) is None
    assert (factory.charset, factory.convertNumbers, factory.password) == (None, False, "pw")
    factory.continueTrying = True
    factory.stopTrying()
    assert factory.continueTrying


def test_commands_are_written_in_resp_byte_for_byte():
    """Binary-safe: lengths in bytes, payloads as given."""
    assert _command(b"SUBSCRIBE", b"sse:n\xc3\xa9") == b"*2\r\n$9\r\nSUBSCRIBE\r\n$7\r\nsse:n\xc3\xa9\r\n"


def test_a_script_is_known_by_the_sha1_redis_gives_it():
    """EVALSHA uses the same hash Redis computes for the source."""
    script = Script.of("return 1")
    assert script.sha == hashlib.sha1(b"return 1").hexdigest().encode()
