"""redis+sentinel://: before every connection, ask the sentinels where the master is, then connect there.

txredisapi's own Sentinel support runs on the global reactor and keeps its pool's
connections to an old master; here the sentinels are asked each time a connection is made
(`SENTINEL get-master-addr-by-name`), one after another until one answers. When the master
fails, the connections to it drop, the factories reconnect (with their backoff), and the
next connection goes to whichever replica the sentinels promoted; the broker then
subscribes again and reads what it missed, as after any outage.
"""

from __future__ import annotations

from typing import Any

import hiredis
from twisted.internet import endpoints
from twisted.internet.defer import Deferred, fail
from twisted.internet.error import ConnectError
from twisted.internet.interfaces import IStreamClientEndpoint
from twisted.internet.protocol import Factory, Protocol
from twisted.python.failure import Failure
from zope.interface import implementer

from twisted_sse.core import Logger, RedisAddress

__all__ = ["SentinelEndpoint"]

_log = Logger()


def _command(*parts: bytes) -> bytes:
    return b"".join([b"*%d\r\n" % len(parts), *(b"$%d\r\n%s\r\n" % (len(part), part) for part in parts)])


class _Ask(Protocol):
    """One question to one sentinel: (AUTH and) SENTINEL get-master-addr-by-name; answers (host, port) or None."""

    def __init__(self, service: str, password: str | None) -> None:
        self._reader = hiredis.Reader()
        self._expected = 2 if password is not None else 1
        self._replies: list[Any] = []
        self._password = password
        self._service = service
        self.answer: Deferred[tuple[str, int] | None] = Deferred()

    def connectionMade(self) -> None:
        question = _command(b"SENTINEL", b"get-master-addr-by-name", self._service.encode())
        if self._password is not None:
            question = _command(b"AUTH", self._password.encode()) + question
        self.transport.write(question)  # type: ignore[union-attr]

    def dataReceived(self, data: bytes) -> None:
        self._reader.feed(data)
        while (reply := self._reader.gets()) is not False:
            self._replies.append(reply)
        if len(self._replies) >= self._expected and not self.answer.called:
            reply = self._replies[-1]
            if isinstance(reply, list) and len(reply) == 2:
                self.answer.callback((reply[0].decode(), int(reply[1])))
            else:
                self.answer.callback(None)
            self.transport.loseConnection()  # type: ignore[union-attr]

    def connectionLost(self, reason: Failure = Failure(ConnectError())) -> None:  # noqa: B008
        if not self.answer.called:
            self.answer.callback(None)


@implementer(IStreamClientEndpoint)
class SentinelEndpoint:
    """Connects to the master of `address.service` that the sentinels of `address` name right now."""

    def __init__(self, reactor: Any, address: RedisAddress) -> None:
        self._reactor = reactor
        self._address = address

    def connect(self, protocolFactory: Any) -> Deferred[Any]:
        return self.master().addCallback(self._connect, protocolFactory)

    def master(self) -> Deferred[tuple[str, int]]:
        """Ask the sentinels in turn; the first that names a master wins."""
        sentinels = list(self._address.sentinels)

        def ask_next(_: object = None) -> Deferred[tuple[str, int]]:
            if not sentinels:
                return fail(ConnectError(string=f"no sentinel named a master for {self._address.service}"))
            host, port = sentinels.pop(0)
            asking = _Ask(self._address.service or "", self._address.sentinel_password)
            endpoint = endpoints.HostnameEndpoint(self._reactor, host, port, timeout=2)
            connected = endpoints.connectProtocol(endpoint, asking)
            connected.addTimeout(2, self._reactor)
            connected.addCallback(lambda _: asking.answer.addTimeout(2, self._reactor))
            return connected.addCallbacks(lambda found: found or ask_next(), lambda _: ask_next())

        return ask_next()

    def _connect(self, master: tuple[str, int], protocolFactory: Factory) -> Deferred[Any]:
        host, port = master
        _log.debug("the sentinels name {host}:{port} the master of {service}", host=host, port=port,
                   service=self._address.service)  # fmt: skip
        return endpoints.HostnameEndpoint(self._reactor, host, port, timeout=5).connect(protocolFactory)
