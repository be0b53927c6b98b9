"""Who a request comes from: the socket's peer, or what trusted proxies say (`X-Forwarded-For`).

One rule for logs, the auth callback and per-client limits. A client's own
`X-Forwarded-For` is believed only when the peer is a trusted proxy (`--trusted-proxy
CIDR`); a peer on a UNIX socket counts as one (nginx in front on `unix:` has no IP). Then
the header is read from the right, skipping trusted proxies, and the first address that
is not one is the client: every proxy appends the address it saw, so what a client wrote
at the left can't be mistaken for it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

from twisted.web.server import Request

__all__ = ["TrustedProxies", "check_cidrs", "client_address", "client_key", "describe_client"]

_Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_MAX_FORWARDED = 4096
"""Bytes of X-Forwarded-For read at most (Twisted bounds a header line at 16 KiB anyway)."""


def _parse(text: str) -> _Address | None:
    try:
        address = ipaddress.ip_address(text.strip().removeprefix("[").removesuffix("]"))
    except ValueError:
        return None
    mapped = getattr(address, "ipv4_mapped", None)
    return mapped if mapped is not None else address


class TrustedProxies:
    """The networks whose `X-Forwarded-For` is believed."""

    __slots__ = ("_networks",)

    def __init__(self, cidrs: Iterable[str] = ()) -> None:
        """ValueError for anything that is not an address or a network (`10.0.0.0/8`, `::1`)."""
        self._networks = tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs)

    def __bool__(self) -> bool:
        return bool(self._networks)

    def trusts(self, address: _Address) -> bool:
        return any(address in network for network in self._networks)


def _forwarded_chain(request: Request) -> list[str]:
    """Every X-Forwarded-For entry, in order (several headers are one list)."""
    values = request.requestHeaders.getRawHeaders(b"x-forwarded-for") or []
    joined = b",".join(values)[-_MAX_FORWARDED:]
    return [entry for entry in joined.decode("latin-1").split(",") if entry.strip()]


def client_address(request: Request, proxies: TrustedProxies) -> str:
    """The client's address as text: an IP address, or `unix` for an untrusted-header UNIX peer."""
    peer = request.getClientAddress()
    host = getattr(peer, "host", None)
    peer_address = _parse(host) if isinstance(host, str) else None
    trusted = peer_address is None or proxies.trusts(peer_address)  # no IP: a UNIX socket peer
    if trusted:
        last_trusted = peer_address
        for entry in reversed(_forwarded_chain(request)):
            address = _parse(entry)
            if address is None:
                break  # garbage left of the proxies' entries: the last hop they vouch for is the client
            if not proxies.trusts(address):
                return str(address)
            last_trusted = address
        if last_trusted is not None:
            return str(last_trusted)
    return str(peer_address) if peer_address is not None else "unix"


def client_key(address: str) -> str:
    """What per-client limits count by: the address, or for IPv6 its /64 (one subscriber's usual share)."""
    parsed = _parse(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.ip_network(f"{parsed}/64", strict=False))
    return address


def describe_client(request: Request, proxies: TrustedProxies | None = None) -> str:
    """The client for logs: its address, with the port when it came straight from the socket."""
    address = client_address(request, proxies or TrustedProxies())
    peer = request.getClientAddress()
    if address == getattr(peer, "host", None) and getattr(peer, "port", None) is not None:
        return f"[{address}]:{peer.port}" if ":" in address else f"{address}:{peer.port}"
    return address


def check_cidrs(cidrs: Sequence[str]) -> TrustedProxies:
    """`TrustedProxies` for `cidrs`; ValueError naming the first one that is not a network."""
    for cidr in cidrs:
        try:
            ipaddress.ip_network(cidr.strip(), strict=False)
        except ValueError:
            raise ValueError(f"{cidr!r} is not an address or network (10.0.0.0/8, 127.0.0.1, ::1)") from None
    return TrustedProxies(cidrs)
