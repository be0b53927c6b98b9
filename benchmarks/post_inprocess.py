"""Python CPU per publish POST through the site, no sockets: whole POSTs and Twisted's request machinery.

    .venv/bin/python benchmarks/post_inprocess.py [--requests 20000] [--rounds 5]

The site of a `twistd sse` (in-process broker, nobody listening) on a `StringTransport`;
one keep-alive connection sends the same POST again and again, each in one read. Prints
the median microseconds per POST both ways and their ratio. Nothing here is a test.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from twisted.internet.address import IPv4Address  # noqa: E402
from twisted.internet.testing import MemoryReactorClock, StringTransport  # noqa: E402

from twisted_sse import Settings, SSEService  # noqa: E402

REQUEST = (
    b"POST /events/pub HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer tok\r\nContent-Length: 24\r\n\r\n"
    + b"x" * 24
)


def per_post(whole: bool, requests: int, rounds: int) -> float:
    service = SSEService(Settings(listen=(), publish_token="tok"), reactor=MemoryReactorClock())
    if not whole:
        service.site.whole_post = None
    address = IPv4Address("TCP", "127.0.0.1", 5555)
    transport = StringTransport(peerAddress=address, hostAddress=IPv4Address("TCP", "127.0.0.1", 80))
    connection = service.site.buildProtocol(address)
    connection.makeConnection(transport)
    connection.dataReceived(REQUEST)
    assert transport.value().startswith(b"HTTP/1.1 200 "), transport.value()[:200]
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        for _ in range(requests):
            connection.dataReceived(REQUEST)
            transport.clear()
        timings.append((time.perf_counter() - started) / requests * 1e6)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    twisted = per_post(False, args.requests, args.rounds)
    whole = per_post(True, args.requests, args.rounds)
    print(f"Twisted's request machinery: {twisted:.1f} us per POST")
    print(f"whole POSTs:                 {whole:.1f} us per POST ({whole / twisted:.2f}x)")


if __name__ == "__main__":
    main()
