"""`twistd sse --workers N`: the parent binds the listeners once and keeps N workers serving them.

Each worker is a whole `twistd sse` (its own hub and its own single Redis subscriber) that
adopts the parent's listening sockets (`twisted_sse._inherited`), so the kernel spreads
connections over the workers. The parent accepts nothing itself. It restarts a worker that
dies (backing off while they keep dying), passes SIGTERM on so that every worker drains as
a single process does, and on SIGHUP restarts the workers one at a time, each once the one
before is serving again: the others keep accepting, so no connection is refused.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

from twisted.application import strports
from twisted.application.service import MultiService
from twisted.internet import endpoints
from twisted.internet.defer import Deferred, DeferredList, succeed
from twisted.internet.interfaces import IListeningPort
from twisted.internet.protocol import ProcessProtocol, ServerFactory
from twisted.python.failure import Failure
from twisted.web.server import Site

from twisted_sse._workers_admin import admin_root
from twisted_sse.core import Logger

__all__ = ["Workers", "worker_argv"]

_log = Logger()

FIRST_FD = 3
"""Where a worker finds the listening sockets, in the order of --listen; its ready pipe follows them."""
MAX_BACKOFF = 30.0
STEADY = 60.0
"""A worker that ran this many seconds before it died is restarted at once again."""


def worker_argv(
    argv: Sequence[str], index: int, listeners: int, logfile: str | None, admin_socket: str | None = None
) -> list[str]:
    """The command line of worker `index`: the parent's `sse` options without --workers and --admin-listen,
    in the foreground, on the inherited sockets (and its own admin socket, for the parent to ask)."""
    args = list(argv)
    at = args.index("sse")
    options, skip = [], False
    for arg in args[at + 1 :]:
        if skip:
            skip = False
            continue
        if arg in ("--workers", "--admin-listen"):
            skip = True
            continue
        if arg.startswith(("--workers=", "--admin-listen=")):
            continue
        options.append(arg)
    twistd = ["-n", "--pidfile="] + (["--logfile", logfile] if logfile else [])
    inherit = [part for n in range(listeners) for part in ("--inherit", str(FIRST_FD + n))]
    ready = ["--ready-fd", str(FIRST_FD + listeners)]
    if admin_socket is not None:
        ready += ["--admin-listen", f"unix:{admin_socket}"]
    return [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", *twistd, "sse", *options,
            "--worker", str(index), *inherit, *ready]  # fmt: skip


class _Worker(ProcessProtocol):
    def __init__(self, index: int, ready_fd: int) -> None:
        self.index = index
        self._ready_fd = ready_fd
        self.ready: Deferred[None] = Deferred()
        self.ended: Deferred[None] = Deferred()
        self.started_at = 0.0

    def childDataReceived(self, childFD: int, data: bytes) -> None:
        if childFD == self._ready_fd and b"ready" in data and not self.ready.called:
            self.ready.callback(None)

    def processEnded(self, reason: Failure) -> None:
        if not self.ready.called:
            self.ready.errback(reason)
            self.ready.addErrback(lambda _: None)
        self.ended.callback(None)

    def signal(self, name: str) -> None:
        if self.transport is not None and self.transport.pid is not None:
            self.transport.signalProcess(name)


class Workers(MultiService):
    """The parent of `count` workers that serve `listen`, started with the parent's command line `argv`."""

    def __init__(self, reactor: Any, count: int, listen: Sequence[str], argv: Sequence[str], logfile: str | None,
                 drain_timeout: float, admin_listen: str | None = None) -> None:  # fmt: skip
        super().__init__()
        self._admin_sockets: list[str] | None = None
        if admin_listen is not None:
            folder = tempfile.mkdtemp(prefix="twisted-sse-")
            self._admin_sockets = [os.path.join(folder, f"worker-{n}.sock") for n in range(count)]
            site = Site(admin_root(reactor, self._admin_sockets), reactor=reactor)
            site.displayTracebacks = False
            strports.service(admin_listen, site, reactor=reactor).setServiceParent(self)
        self._reactor = reactor
        self._count = count
        self._listen = tuple(listen)
        self._argv = list(argv)
        self._logfile = logfile
        self._drain_timeout = drain_timeout
        self._ports: list[IListeningPort] = []
        self._workers: dict[int, _Worker] = {}
        self._retiring: set[_Worker] = set()
        """Workers a rolling restart has asked to stop: a shutdown still waits for them."""
        self._failures: dict[int, int] = {}
        self._stopping = False
        self._rolling: Deferred[None] | None = None

    # Service

    def privilegedStartService(self) -> None:
        """Bind every listener (before twistd gives up privileges); accept nothing here."""
        super().privilegedStartService()
        for description in self._listen:
            bound: list[IListeningPort] = []
            endpoints.serverFromString(self._reactor, description).listen(ServerFactory()).addCallback(bound.append)
            if not bound:
                raise RuntimeError(f"could not listen on {description}")
            bound[0].stopReading()  # type: ignore[attr-defined]  # the workers accept, the parent never does
            self._ports.append(bound[0])

    def startService(self) -> None:
        super().startService()
        _log.info("starting {count} workers on {listen}", count=self._count, listen=", ".join(self._listen))
        for index in range(self._count):
            self._start(index)
        signal.signal(signal.SIGHUP, lambda *_: self._reactor.callFromThread(self.roll))

    def stopService(self) -> Deferred[Any]:
        """SIGTERM to every worker (each drains its streams), then wait for them; SIGKILL stragglers."""
        admin_stopped = super().stopService()
        self._stopping = True
        workers = [*self._workers.values(), *self._retiring]
        for worker in workers:
            worker.signal("TERM")

        def kill() -> None:
            for worker in workers:
                worker.signal("KILL")

        killer = self._reactor.callLater(self._drain_timeout + 10, kill)
        ended = DeferredList([worker.ended for worker in workers])

        def done(result: object) -> object:
            if killer.active():
                killer.cancel()
            for port in self._ports:
                port.stopListening()
            if self._admin_sockets:
                shutil.rmtree(os.path.dirname(self._admin_sockets[0]), ignore_errors=True)
            return admin_stopped

        return ended.addBoth(done)

    # Workers

    def _start(self, index: int) -> _Worker:
        worker = _Worker(index, FIRST_FD + len(self._ports))
        fds: dict[int, int | str] = {0: 0, 1: 1, 2: 2}
        for n, port in enumerate(self._ports):
            fds[FIRST_FD + n] = port.fileno()  # type: ignore[attr-defined]
        fds[FIRST_FD + len(self._ports)] = "r"
        admin = self._admin_sockets[index] if self._admin_sockets is not None else None
        if admin is not None and os.path.exists(admin):
            os.unlink(admin)  # left by the worker this one replaces
        argv = worker_argv(self._argv, index, len(self._ports), self._logfile, admin)
        worker.started_at = self._reactor.seconds()
        self._reactor.spawnProcess(worker, argv[0], argv, env=dict(os.environ), childFDs=fds)
        self._workers[index] = worker
        worker.ended.addCallback(lambda _: self._ended(worker))
        return worker

    def _ended(self, worker: _Worker) -> None:
        if self._workers.get(worker.index) is not worker or self._stopping:
            return
        lived = self._reactor.seconds() - worker.started_at
        failures = 0 if lived >= STEADY else self._failures.get(worker.index, 0) + 1
        self._failures[worker.index] = failures
        delay = min(MAX_BACKOFF, 0.5 * 2 ** (failures - 1)) if failures else 0.0
        _log.warn("worker {index} ended after {lived:.1f}s; restarting it in {delay:.1f}s",
                  index=worker.index, lived=lived, delay=delay)  # fmt: skip
        self._reactor.callLater(delay, self._restart, worker.index, worker)

    def _restart(self, index: int, old: _Worker) -> None:
        if not self._stopping and self._workers.get(index) is old:
            self._start(index)

    def roll(self) -> Deferred[None]:
        """SIGHUP: restart the workers one at a time, each once the one before is ready again."""
        if self._rolling is not None or self._stopping:
            return self._rolling or succeed(None)
        _log.info("rolling restart of {count} workers", count=self._count)
        rolling: Deferred[None] = Deferred()
        self._rolling = rolling

        def next_one(index: int) -> None:
            if index >= self._count or self._stopping:
                self._rolling = None
                _log.info("rolling restart done")
                rolling.callback(None)
                return
            old = self._workers[index]
            replacement: list[_Worker] = []

            def old_gone(_: object) -> Deferred[None]:
                replacement.append(self._start(index))
                return replacement[0].ready

            self._workers.pop(index)  # its end is expected: not a crash to restart
            self._retiring.add(old)
            old.ended.addBoth(lambda _: self._retiring.discard(old))
            old.ended.addCallback(old_gone).addBoth(lambda _: next_one(index + 1))
            old.signal("TERM")

        next_one(0)
        return rolling
