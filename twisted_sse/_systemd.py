"""systemd's service notifications (sd_notify(3)): READY, STOPPING and WATCHDOG, sent to $NOTIFY_SOCKET.

With `Type=notify` systemd waits for READY=1 before it counts the service as started
(units ordered after it, a socket unit's queued connections), hears STOPPING=1 when a
drain begins, and, with `WatchdogSec=`, restarts a daemon whose WATCHDOG=1 pings stop:
they come from a timer in the reactor, so a stuck reactor stops them.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

from twisted.application.service import Service
from twisted.internet.interfaces import IReactorTime
from twisted.internet.task import LoopingCall

from twisted_sse.core import Logger

__all__ = ["Notifier"]

_log = Logger()


class Notifier(Service):
    """Tells systemd when the daemon is ready, when it stops, and that it is alive (every half WatchdogSec)."""

    def __init__(self, environ: Mapping[str, str], clock: IReactorTime) -> None:
        self._address = _address(environ.get("NOTIFY_SOCKET", ""))
        self._watchdog: LoopingCall | None = None
        usec = environ.get("WATCHDOG_USEC", "")
        watchdog_pid = environ.get("WATCHDOG_PID", "")
        if usec.isdigit() and int(usec) > 0 and watchdog_pid in ("", str(os.getpid())):
            self._interval = int(usec) / 2_000_000
            self._watchdog = LoopingCall(self.send, b"WATCHDOG=1")
            self._watchdog.clock = clock

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def startService(self) -> None:
        super().startService()
        self.send(b"READY=1\nSTATUS=serving\nMAINPID=%d" % os.getpid())
        if self._watchdog is not None:
            self._watchdog.start(self._interval, now=True)

    def stopService(self) -> None:
        self.send(b"STOPPING=1\nSTATUS=draining")
        if self._watchdog is not None and self._watchdog.running:
            self._watchdog.stop()
        super().stopService()

    def send(self, message: bytes) -> None:
        if self._address is None:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.sendto(message, self._address)
        except OSError as error:
            _log.warn("could not notify systemd ({message}): {error}", message=message, error=error)


def _address(value: str) -> str | bytes | None:
    """$NOTIFY_SOCKET: a path, or `@name` for the abstract namespace; None when unset or unusable."""
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    return value if value.startswith("/") else None
