"""Loaded by a daemon the benchmark starts with this folder on PYTHONPATH: measures how long the reactor blocks.

A thread asks the reactor to run a mark every 5 ms (`callFromThread`) and records how late
each mark ran: the longest wait is the longest the reactor was busy without coming round.
It writes the worst figure (milliseconds) to $SSE_LAG_PROBE whenever it grows; the
benchmark truncates the file to start a new measurement.
"""

import os
import threading
import time

_PATH = os.environ.get("SSE_LAG_PROBE")


def _probe(path: str) -> None:
    time.sleep(1.0)  # twistd has installed its reactor by now
    from twisted.internet import reactor

    worst = [0.0]

    def mark(sent: float) -> None:
        late = time.monotonic() - sent
        try:
            if os.path.getsize(path) == 0:
                worst[0] = 0.0  # the benchmark started a new measurement
        except OSError:
            return
        if late > worst[0]:
            worst[0] = late
            with open(path, "r+") as out:
                out.write(f"{late * 1000:.1f}\n")

    while True:
        reactor.callFromThread(mark, time.monotonic())
        time.sleep(0.005)


if _PATH:
    threading.Thread(target=_probe, args=(_PATH,), daemon=True).start()
