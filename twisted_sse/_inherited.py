"""A worker's listeners: sockets the --workers parent bound, adopted here (Twisted's `adoptStreamPort`).

Every worker accepts on the same sockets, so the kernel spreads connections over them and
a worker that restarts refuses nothing: the others keep accepting. A `tcp:`/`unix:`/
`systemd:` listener is adopted as it is; an `ssl:` one is adopted as TCP and wrapped in
TLS here, with the certificate options its description names.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.application.service import Service
from twisted.internet import endpoints
from twisted.internet.interfaces import IListeningPort, IProtocolFactory
from twisted.protocols.tls import TLSMemoryBIOFactory

__all__ = ["InheritedPort", "tls_options"]


def tls_options(reactor: Any, description: str) -> Any:
    """The TLS context factory an `ssl:` description makes.

    Twisted keeps it on the endpoint it parses, in `_sslContextFactory` (private; checked on
    Twisted 26.x): this is the one place that reads it, and tests/test_inherited.py fails if
    it goes.
    """
    endpoint = endpoints.serverFromString(reactor, description)
    return endpoint._sslContextFactory  # noqa: SLF001


class InheritedPort(Service):
    """Serves `factory` on the listening socket `fd` (family taken from the socket itself)."""

    def __init__(self, reactor: Any, fd: int, description: str, factory: IProtocolFactory) -> None:
        self._reactor = reactor
        self._fd = fd
        self._description = description
        self._factory = factory
        self.port: IListeningPort | None = None

    def startService(self) -> None:
        super().startService()
        borrowed = socket.socket(fileno=self._fd)  # only to read its family: detached, never closed here
        family = borrowed.family
        borrowed.detach()
        factory: IProtocolFactory = self._factory
        if self._description.startswith("ssl:"):
            factory = TLSMemoryBIOFactory(tls_options(self._reactor, self._description), False, factory)
        self.port = self._reactor.adoptStreamPort(self._fd, family, factory)

    def stopService(self) -> Any:
        super().stopService()
        if self.port is not None:
            return self.port.stopListening()
        return None
