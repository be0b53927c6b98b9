"""ResponseWriter: the socket shortcut only where public facts allow it, Request.write everywhere else."""

from __future__ import annotations

import socket

import pytest
import trustme
from twisted.internet import ssl, unix
from twisted.internet.testing import MemoryReactor
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.web.http import HTTPChannel, Request
from twisted.web.server import Site

from tests.fakes import fake_tcp_server
from tests.http_harness import Harness, SocketClient
from twisted_sse.core._framing import Event
from twisted_sse.web._writer import ResponseWriter, chunk, takes_shortcut, transport_is_idle


def _started_request(channel: HTTPChannel, version: bytes = b"HTTP/1.1") -> Request:
    """A GET on `channel` whose response has started, as a stream's has."""
    request = Request(channel)
    request.method, request.uri, request.path, request.clientproto = b"GET", b"/events/a", b"/events/a", version
    request.write(b"retry: 3000\n")
    return request


def _plain_channel() -> HTTPChannel:
    channel = HTTPChannel()
    channel.makeConnection(fake_tcp_server(channel))
    return channel


def test_plain_tcp_http11_chunked_takes_the_shortcut():
    """An HTTP/1.1 chunked response on a plain tcp.Server may write straight to the socket."""
    request = _started_request(_plain_channel())
    assert request.chunked
    assert takes_shortcut(request)
    assert ResponseWriter(request).direct


def test_tls_never_takes_the_shortcut():
    """Behind Twisted's TLS wrapper the socket is never written directly, though the wrapper passes `socket` through."""
    ca = trustme.CA()
    cert = ssl.PrivateCertificate.loadPEM(ca.issue_cert("localhost").private_key_and_cert_chain_pem.bytes())
    factory = TLSMemoryBIOFactory(cert.options(), False, Site(None))
    tls = factory.buildProtocol(None)
    channel = HTTPChannel()
    tls.wrappedProtocol = channel
    tls.makeConnection(fake_tcp_server(tls))
    # The trap the old check fell into: the wrapper answers for the raw TCP transport.
    assert channel.transport is tls and tls.TLS is False and hasattr(tls, "socket")
    request = _started_request(channel)
    assert request.isSecure()
    assert not takes_shortcut(request)
    assert not ResponseWriter(request).direct


def test_unix_socket_takes_request_write():
    """A UNIX-socket connection writes through Twisted (the shortcut is for exactly tcp.Server)."""
    left, right = socket.socketpair()
    channel = HTTPChannel()
    try:
        channel.makeConnection(unix.Server(left, channel, "", None, 1, MemoryReactor()))
        assert not takes_shortcut(_started_request(channel))
    finally:
        left.close()
        right.close()


def test_http10_takes_request_write():
    """An HTTP/1.0 response is not chunked, so it is never framed for the socket."""
    request = _started_request(_plain_channel(), b"HTTP/1.0")
    assert not request.chunked
    assert not takes_shortcut(request)


def test_request_marked_secure_takes_request_write():
    """A request marked secure (setHost(..., ssl=True), as behind a TLS-terminating wrapper) is never shortcut."""
    channel = _plain_channel()
    request = Request(channel)
    request.setHost(b"example.com", 443, ssl=True)
    request.method, request.clientproto = b"GET", b"HTTP/1.1"
    request.write(b"x")
    assert not takes_shortcut(request)


def test_transport_is_idle_follows_twisted_buffer():
    """The one reader of Twisted's private buffer attributes sees every state they encode (fails if they change)."""
    transport = fake_tcp_server(HTTPChannel(), room=4)
    for name in ("_tempDataLen", "dataBuffer", "offset", "connected", "disconnecting", "_writeDisconnected"):
        assert hasattr(transport, name), name
    assert transport_is_idle(transport)
    transport.write(b"abcdef")  # waits in the temporary buffer
    assert not transport_is_idle(transport)
    transport.doWrite()  # 4 bytes fit: two wait in dataBuffer past offset
    assert (transport.dataBuffer, transport.offset) == (b"abcdef", 4)
    assert not transport_is_idle(transport)
    transport.socket.read()
    transport.doWrite()
    assert transport_is_idle(transport)
    transport.loseConnection()
    assert not transport_is_idle(transport)


def test_a_block_is_framed_once_for_every_direct_stream():
    """Streams that get the same block write the very same chunk object."""
    harness = Harness()
    clients = [harness.stream("/events/news", client=SocketClient(harness.site)) for _ in range(3)]
    for client in clients:
        client.flush()
    harness.service.hub.deliver([("news", Event(b"x"))])
    sent = [client.socket.sent[-1] for client in clients]
    assert sent[0] is sent[1] is sent[2]
    assert sent[0] == chunk(b"data: x\n\n")


def test_events_go_straight_to_an_idle_socket():
    """On plain TCP an event is on the socket as soon as it is published: no reactor turn in between."""
    harness = Harness()
    client = harness.stream("/events/news", client=SocketClient(harness.site))
    client.flush()  # the headers and retry: went through Twisted
    harness.publish("news", b"hello")
    assert not client.buffered()
    assert [e.data for e in client.response().events()] == ["hello"]


@pytest.mark.parametrize("room", [64, 1000, 9000])
def test_short_sends_keep_order_across_the_shortcut_and_the_buffer(room):
    """With a tiny send buffer and a slow reader, every event arrives once, whole and in order."""
    harness = Harness(max_queue=1 << 24)
    client = harness.stream("/events/news", client=SocketClient(harness.site, room=room))

    def drain(rounds: int) -> None:
        for _ in range(rounds):  # ends on a read: the socket has room while Twisted may still hold bytes
            client.flush()
            client.socket.read()

    drain(100)
    sizes = [1, 5000, 3, 200, 1, 70000, 9, 1000, 12, 300] * 3
    expected = []
    direct = buffered = 0
    for n, size in enumerate(sizes):
        data = (b"%d:" % n) + b"x" * size
        expected.append(data.decode())
        sends = len(client.socket.sent)
        harness.publish("news", data)
        direct += len(client.socket.sent) > sends  # only the shortcut sends before a reactor turn
        buffered += client.buffered()
        drain(n % 4 * 20)  # the client reads now and then, sometimes enough to catch up
    while client.buffered() or client.socket.in_flight:
        drain(1)
    assert [e.data for e in client.response().events()] == expected
    assert (direct > 0, buffered > 0) == (True, True), (direct, buffered)  # both paths were taken


def test_no_bytes_write_nothing_not_the_last_chunk():
    """A chunk of no bytes is HTTP/1.1's last chunk: a client would take the stream as ended. (A resume that
    missed nothing has an empty page; on the socket shortcut it ended the stream, and live events that
    followed went nowhere.)"""
    harness = Harness()
    client = harness.stream("/events/news", client=SocketClient(harness.site))
    client.flush()
    [stream] = harness.service.hub.listeners()
    sent = len(client.socket.sent)
    stream._writer.write(b"")
    assert len(client.socket.sent) == sent
