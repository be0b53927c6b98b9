"""Drive a twisted-sse `Site` over in-memory transports: real HTTP parsing, no sockets."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from twisted.internet.address import IPv4Address
from twisted.internet.error import ConnectionDone
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.web.server import Site

from tests.fakes import FakeSocket, fake_tcp_server
from tests.sse_parser import Dispatched, SSEParser
from twisted_sse._service import SSEService
from twisted_sse.core._interfaces import Broker
from twisted_sse.core._settings import Settings

_ports = itertools.count(40000)


@dataclass
class Response:
    status: int
    headers: dict[str, str]
    body: bytes
    complete: bool

    def events(self) -> list[Dispatched]:
        return SSEParser().feed(self.body)


def _dechunk(data: bytes) -> tuple[bytes, bool]:
    body = b""
    while data:
        size_line, sep, rest = data.partition(b"\r\n")
        if not sep:
            break
        size = int(size_line, 16)
        if size == 0:
            return body, True
        if len(rest) < size + 2:
            break
        body += rest[:size]
        data = rest[size + 2 :]
    return body, False


class Client:
    """One HTTP connection to the site."""

    def __init__(self, site: Site) -> None:
        self.transport = StringTransport(peerAddress=IPv4Address("TCP", "127.0.0.1", next(_ports)))
        self.protocol = site.buildProtocol(self.transport.getPeer())
        self.protocol.makeConnection(self.transport)

    def send(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> None:
        lines = [f"{method} {path} HTTP/1.1", "Host: test"]
        lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
        if body or method in ("POST", "PUT"):
            lines.append(f"Content-Length: {len(body)}")
        self.protocol.dataReceived("\r\n".join(lines).encode("utf-8") + b"\r\n\r\n" + body)

    def response(self) -> Response:
        return _parse(self.transport.value())

    def drop(self) -> None:
        """The client goes away."""
        self.protocol.connectionLost(Failure(ConnectionDone("client left")))


def _parse(raw: bytes) -> Response:
    """An HTTP/1.1 response as a client sees it: status, headers, and the body (dechunked)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding") == "chunked":
        body, complete = _dechunk(rest)
    else:
        length = int(headers.get("content-length", len(rest)))
        body, complete = rest[:length], len(rest) >= length
    return Response(int(status_line.split()[1]), headers, body, complete)


class SocketClient(Client):
    """One HTTP connection over a real `tcp.Server` transport whose socket is a `FakeSocket`.

    What a response writes through Twisted waits in the transport's buffer until `flush`;
    what goes straight to the socket is in `socket` at once.
    """

    def __init__(self, site: Site, room: int = 1 << 20) -> None:
        port = next(_ports)
        self.protocol = site.buildProtocol(IPv4Address("TCP", "127.0.0.1", port))
        self.transport = fake_tcp_server(self.protocol, room, port)
        self.socket: FakeSocket = self.transport.socket
        self.protocol.makeConnection(self.transport)

    def buffered(self) -> bool:
        """Whether the transport holds bytes it has not sent."""
        return bool(self.transport.dataBuffer[self.transport.offset :] or self.transport._tempDataBuffer)

    def flush(self) -> None:
        """Let the transport send what it buffered, as far as the socket takes it."""
        if self.buffered():
            self.transport.doWrite()

    def response(self) -> Response:
        return _parse(bytes(self.socket.received) + self.socket.read())


class Harness:
    """An `SSEService` on a `Clock`, served through an in-memory `Site`."""

    def __init__(self, broker: Broker | None = None, clock: Clock | None = None, **settings: object) -> None:
        settings.setdefault("publish_token", "secret")
        settings.setdefault("coalesce", 0.0)  # deliver at once; coalescing has tests of its own
        settings.setdefault("resume_window", 0.0)  # read history at once; shared reads have tests of their own
        self.clock = clock if clock is not None else Clock()
        self.service = SSEService(Settings(listen=(), **settings), reactor=self.clock, broker=broker)
        self.service.startService()
        self.site = self.service.site

    def request(self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b"") -> Response:
        client = Client(self.site)
        client.send(method, path, headers, body)
        return client.response()

    def stream(self, path: str, headers: dict[str, str] | None = None, client: Client | None = None) -> Client:
        """Open a stream; on `client` (a `SocketClient`, say) when given."""
        client = client if client is not None else Client(self.site)
        client.send("GET", path, headers)
        return client

    def publish(self, channel: str, body: bytes, query: str = "") -> Response:
        return self.request("POST", f"/events/{channel}{query}", {"Authorization": "Bearer secret"}, body)
