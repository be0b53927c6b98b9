"""client_address: the socket's peer, or X-Forwarded-For read from the right, believed only from trusted proxies."""

from __future__ import annotations

import pytest
from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress
from twisted.web.test.requesthelper import DummyRequest

from twisted_sse.web._client_address import TrustedProxies, check_cidrs, client_address, client_key, describe_client


def _request(peer, *forwarded: str) -> DummyRequest:
    request = DummyRequest([b""])
    request.client = peer
    if forwarded:
        request.requestHeaders.setRawHeaders(b"x-forwarded-for", [f.encode() for f in forwarded])
    return request


TCP = IPv4Address("TCP", "203.0.113.9", 40000)
PROXY = IPv4Address("TCP", "10.0.0.2", 40000)
PROXIES = TrustedProxies(["10.0.0.0/8", "::1"])


def test_without_trusted_proxies_the_socket_peer_is_the_client():
    """A client's own X-Forwarded-For is ignored when its peer is not a trusted proxy."""
    assert client_address(_request(TCP, "1.2.3.4"), TrustedProxies()) == "203.0.113.9"
    assert client_address(_request(TCP, "1.2.3.4"), PROXIES) == "203.0.113.9"


def test_behind_a_trusted_proxy_the_rightmost_untrusted_entry_is_the_client():
    """What the client wrote at the left is never taken: the proxy's appended entry is."""
    assert client_address(_request(PROXY, "6.6.6.6, 198.51.100.7"), PROXIES) == "198.51.100.7"
    assert client_address(_request(PROXY, "6.6.6.6", "198.51.100.7, 10.1.1.1"), PROXIES) == "198.51.100.7"


def test_garbage_in_the_chain_stops_at_the_last_trusted_hop():
    """An unparseable entry ends the walk: the last address a trusted proxy vouched for is the client."""
    assert client_address(_request(PROXY, "not-an-ip, 10.9.9.9"), PROXIES) == "10.9.9.9"
    assert client_address(_request(PROXY, "not-an-ip"), PROXIES) == "10.0.0.2"


def test_trusted_peer_without_header_is_the_client():
    """A trusted proxy that forwards nothing is itself the client."""
    assert client_address(_request(PROXY), PROXIES) == "10.0.0.2"


def test_unix_socket_peer_is_trusted():
    """nginx on a UNIX socket has no IP: its X-Forwarded-For is believed."""
    unix = UNIXAddress(None)
    assert client_address(_request(unix, "198.51.100.7"), TrustedProxies()) == "198.51.100.7"
    assert client_address(_request(unix), TrustedProxies()) == "unix"


def test_ipv6_and_mapped_addresses():
    """IPv6 peers and entries work; an IPv4-mapped IPv6 address counts as its IPv4 address."""
    peer = IPv6Address("TCP", "::1", 40000)
    assert client_address(_request(peer, "2001:db8::5"), PROXIES) == "2001:db8::5"
    assert client_address(_request(peer, "[2001:db8::6]"), PROXIES) == "2001:db8::6"
    mapped = IPv6Address("TCP", "::ffff:10.0.0.3", 40000)
    assert client_address(_request(mapped, "198.51.100.8"), PROXIES) == "198.51.100.8"


def test_describe_client_adds_the_port_for_direct_peers():
    """Logs show host:port for a direct client and the forwarded address alone behind a proxy."""
    assert describe_client(_request(TCP)) == "203.0.113.9:40000"
    assert describe_client(_request(PROXY, "198.51.100.7"), PROXIES) == "198.51.100.7"
    assert describe_client(_request(IPv6Address("TCP", "2001:db8::1", 5))) == "[2001:db8::1]:5"


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "example.com", "", "10.0.0.1/8/2"])
def test_bad_networks_are_refused(bad):
    """--trusted-proxy takes addresses and networks only."""
    with pytest.raises(ValueError, match="not an address or network"):
        check_cidrs([bad])


def test_client_key_groups_ipv6_by_64():
    """Per-client limits count an IPv6 /64 as one client (one subscriber's usual share), IPv4 per address."""
    assert client_key("2001:db8:1:2:aaaa::1") == client_key("2001:db8:1:2:bbbb::9") == "2001:db8:1:2::/64"
    assert client_key("2001:db8:1:3::1") != client_key("2001:db8:1:2::1")
    assert client_key("198.51.100.7") == "198.51.100.7"
    assert client_key("unix") == "unix"
