"""One timer for the whole process that writes a keep-alive comment to every stream.

Proxies cut connections that stay silent, and a write is how a dead peer is found; one
shared `LoopingCall` costs the same whether 10 or 10,000 streams are open.
"""

from __future__ import annotations

from collections.abc import Callable

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from twisted_sse.core import encode_comment

__all__ = ["Heartbeat"]

_COMMENT = encode_comment()


class Heartbeat(Service):
    """Every `interval` seconds, a comment to every open stream; `interval` 0 turns it off."""

    def __init__(self, send: Callable[[bytes], object], interval: float, clock: IReactorTime) -> None:
        """`send` writes the comment to every stream (the hub's `heartbeat`)."""
        self._interval = interval
        self._loop = LoopingCall(send, _COMMENT)
        self._loop.clock = clock

    def startService(self) -> None:
        super().startService()
        if self._interval > 0:
            self._loop.start(self._interval, now=False)

    def stopService(self) -> None:
        if self._loop.running:
            self._loop.stop()
        return super().stopService()
