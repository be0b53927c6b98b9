"""A `twistd sse` listening on plain TCP, TLS (a certificate made here) and a UNIX socket, for transport tests."""

from __future__ import annotations

import json
import re
import ssl
import subprocess
from pathlib import Path

import httpx

from testbed import Daemon, free_port, get, server_certificate

TOKEN = {"Authorization": "Bearer s3cret"}
PAYLOADS = [
    b"plain",
    b"one\ntwo\nthree",
    b"crlf\r\nand cr\ralone",
    "h\u00e9llo \u2603 \U0001d11e, a\u2028line separator and \x0b".encode(),
    b"",
    b"007",
    b'{"user": 42, "items": [1, 2, 3], "text": "quoted \\" and \\n"}',
    b"data: not a field\n\nid: 99\nevent: forged",
    b"  leading spaces and trailing  ",
]


class Listeners:
    """A daemon on TCP, TLS and a UNIX socket, and how to reach each."""

    def __init__(self, tmp_path: Path, *args: str) -> None:
        server_pem, self.ca_pem = server_certificate(tmp_path)
        self.tls_port = free_port()
        self.unix_path = tmp_path / "sse.sock"
        self.daemon = Daemon(
            tmp_path,
            "--publish-token", "s3cret",
            "--listen", f"ssl:{self.tls_port}:interface=127.0.0.1:privateKey={server_pem}:certKey={server_pem}",
            "--listen", f"unix:{self.unix_path}",
            *args,
        )  # fmt: skip
        self.port = self.daemon.port

    def url(self, transport: str, path: str) -> str:
        if transport == "tls":
            return f"https://localhost:{self.tls_port}{path}"
        if transport == "unix":
            return f"http://localhost{path}"
        return f"http://127.0.0.1:{self.port}{path}"

    def curl_argv(self, transport: str, path: str, *options: str, headers: tuple[str, ...] = ()) -> list[str]:
        """curl's command line for `path` over `transport` with `options` and `headers`; "http2" is HTTP/2
        over the TLS listener."""
        argv = ["curl", *options]
        for header in headers:
            argv += ["-H", header]
        if transport in ("tls", "http2"):
            argv += ["--cacert", str(self.ca_pem), "--http2" if transport == "http2" else "--http1.1"]
        if transport == "unix":
            argv += ["--unix-socket", str(self.unix_path)]
        if transport == "http1.0":
            argv += ["--http1.0"]
        return [*argv, self.url("tls" if transport == "http2" else transport, path)]

    def curl(self, transport: str, path: str, out: Path, *headers: str) -> subprocess.Popen[bytes]:
        """curl reading `path` into `out`."""
        return subprocess.Popen(self.curl_argv(transport, path, "-sN", "--max-time", "30", "-o", str(out),
                                               headers=headers))  # fmt: skip

    def tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_pem))

    def httpx_client(self, transport: str) -> httpx.Client:
        if transport == "tls":
            return httpx.Client(verify=ssl.create_default_context(cafile=str(self.ca_pem)), timeout=10)
        if transport == "unix":
            return httpx.Client(transport=httpx.HTTPTransport(uds=str(self.unix_path)), timeout=10)
        return httpx.Client(timeout=10)

    def publish(self, channel: str, data: bytes) -> str:
        status, _, body = get(self.port, f"/events/{channel}", "POST", data, TOKEN)
        assert status == 200, body
        return json.loads(body)["id"]

    def stop(self) -> None:
        self.daemon.stop()


def expected_bytes(ids: list[str], payloads: list[bytes]) -> bytes:
    """The stream as the SSE format carries it, written out here independently of the server's framing."""
    out = b""
    for event_id, data in zip(ids, payloads, strict=True):
        out += b"id: " + event_id.encode() + b"\n"
        out += b"".join(b"data: " + line + b"\n" for line in re.split(rb"\r\n|\r|\n", data))
        out += b"\n"
    return out


def without_heartbeats(body: bytes) -> bytes:
    return re.sub(rb"(?m)^:\n", b"", body)
