"""What publishing needs of a request, and a lean request for POSTs that arrive whole.

Twisted's HTTP/1.1 channel and `Request` cost more than half of a publish's CPU
(BENCHMARKS.md, "Publishing"): a parser called line by line, a `Headers` object each way,
timers, Deferreds and resource traversal, for a request whose every byte is in one read.
A publisher on a keep-alive connection sends exactly that: `read_whole_post` recognizes
the plain kind of POST (HTTP/1.1, every header well formed and none that changes how the
body is read, a `Content-Length` body all there) and `WholePost` carries it through the
same publishing code, answering in one write. Anything else is not a whole POST: the
connection goes to Twisted's channel with its bytes untouched, so Twisted still reads
(and refuses) every other request exactly as before.
"""

from __future__ import annotations

import io
import re
import time
from functools import lru_cache
from typing import Any, Protocol

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.http import RESPONSES, datetimeToString
from twisted.web.server import version as _SERVER

__all__ = ["MAX_HEAD", "PostRequest", "WholePost", "read_whole_post"]

MAX_HEAD = 8192
"""Request line and headers of a whole POST, at most (Twisted's own limits are twice that)."""
MAX_HEADERS = 64
"""Header lines of a whole POST, at most (Twisted refuses past 500)."""
_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_HEADER = re.compile(rb"(" + _TOKEN + rb"):[ \t]*([^\x00\r\n]*?)[ \t]*")
"""A header line as Twisted accepts it (a token name, a value without NUL, CR or LF), minus obsolete folding."""
_TARGET = re.compile(rb"/[\x21-\x7e]*")
_READ_BY_TWISTED = frozenset({b"transfer-encoding", b"expect", b"upgrade"})
"""Headers that change how Twisted reads a request or answers it before its body: such a request is
Twisted's to read."""


class PostRequest(Protocol):
    """What publishing uses of a request: Twisted's `Request` has it, and so has `WholePost`."""

    method: bytes
    args: dict[bytes, list[bytes]]
    content: Any

    def getHeader(self, key: bytes) -> bytes | None: ...

    def setHeader(self, name: bytes, value: bytes) -> None: ...

    def setResponseCode(self, code: int, message: bytes | None = None) -> None: ...

    def notifyFinish(self) -> Deferred[None]: ...

    def write(self, data: bytes) -> None: ...

    def finish(self) -> None: ...


class _Answers(Protocol):
    """Where a `WholePost` puts its answer: the connection it came on."""

    def answered(self, request: WholePost, answer: bytes) -> None: ...


def read_whole_post(data: bytes, max_body: int, start: int = 0) -> tuple[bytes, dict[bytes, bytes], bytes, int] | None:
    """The request at `start` in `data` as (target, headers by lower-case name, body, where it ends),
    when it is a whole POST of the plain kind; None for anything else (Twisted's to read).

    Plain: `POST target HTTP/1.1`, at most `MAX_HEADERS` header lines within `MAX_HEAD` bytes,
    each a token, a colon and a value without NUL, CR or LF, no name twice, a `Content-Length`
    of digits, no header that changes how the body is read or the connection is kept
    (Transfer-Encoding, Expect, Upgrade, a Connection other than keep-alive), and a body of at
    most `max_body` bytes that is all in `data`.
    """
    end = data.find(b"\r\n\r\n", start, start + MAX_HEAD)
    if end < 0:
        return None
    lines = data[start:end].split(b"\r\n")
    if len(lines) > MAX_HEADERS + 1:
        return None
    parts = lines[0].split(b" ")
    if len(parts) != 3 or parts[0] != b"POST" or parts[2] != b"HTTP/1.1" or not _TARGET.fullmatch(parts[1]):
        return None
    headers: dict[bytes, bytes] = {}
    for line in lines[1:]:
        header = _HEADER.fullmatch(line)
        if header is None:
            return None
        name = header[1].lower()
        if name in headers or name in _READ_BY_TWISTED:
            return None
        headers[name] = header[2]
    length = headers.get(b"content-length")
    if length is None or not length.isdigit() or len(length) > 12 or int(length) > max_body:
        return None
    connection = headers.get(b"connection")
    if connection is not None and connection.lower() != b"keep-alive":
        return None
    body = end + 4
    stop = body + int(length)
    if len(data) < stop:
        return None
    return parts[1], headers, data[body:stop], stop


@lru_cache(maxsize=64)
def _header_name(name: bytes) -> bytes:
    """A response header name as Twisted writes it (names come from our code, never from a client)."""
    if name == b"www-authenticate":
        return b"WWW-Authenticate"
    return b"-".join(part.capitalize() for part in name.split(b"-"))


_date: tuple[int, bytes] = (0, b"")


def _http_date() -> bytes:
    """The Date header's value, made once a second."""
    global _date
    now = int(time.time())
    if _date[0] != now:
        _date = (now, datetimeToString(now))
    return _date[1]


class WholePost:
    """A POST read whole: what publishing uses of a request, answered with its length in one write.

    Its answer has the headers Twisted's would (Server, Date, then those set, in order), and
    `notifyFinish` fires as Twisted's does: once answered, or failed once the client went
    (`connection_lost`).
    """

    method = b"POST"

    def __init__(self, connection: _Answers, target: bytes, headers: dict[bytes, bytes], body: bytes) -> None:
        self.uri = target
        self.args: dict[bytes, list[bytes]] = {}
        self.content = io.BytesIO(body)
        self.code = 200
        self.finished = False
        self._connection = connection
        self._headers = headers
        self._response: dict[bytes, bytes] = {}
        self._body: list[bytes] = []
        self._notifications: list[Deferred[None]] = []
        self._gone: Failure | None = None

    def getHeader(self, key: bytes) -> bytes | None:
        return self._headers.get(key.lower())

    def setHeader(self, name: bytes, value: bytes) -> None:
        self._response[name.lower()] = value

    def setResponseCode(self, code: int, message: bytes | None = None) -> None:
        self.code = code

    def notifyFinish(self) -> Deferred[None]:
        notification: Deferred[None] = Deferred()
        if self._gone is not None:
            notification.errback(self._gone)
        else:
            self._notifications.append(notification)
        return notification

    def write(self, data: bytes) -> None:
        self._body.append(data)

    def finish(self) -> None:
        """Write the answer (once; nothing once the client went)."""
        if self.finished or self._gone is not None:
            return
        self.finished = True
        body = b"".join(self._body)
        self._response[b"content-length"] = b"%d" % len(body)
        head = [b"HTTP/1.1 %d %s\r\nServer: %s\r\nDate: %s\r\n" % (
            self.code, RESPONSES.get(self.code, b"Unknown Status"), _SERVER, _http_date())]  # fmt: skip
        head += [_header_name(name) + b": " + value + b"\r\n" for name, value in self._response.items()]
        head.append(b"\r\n")
        self._connection.answered(self, b"".join(head) + body)
        notifications, self._notifications = self._notifications, []
        for notification in notifications:
            notification.callback(None)

    def connection_lost(self, reason: Failure) -> None:
        """The client went before the answer: whoever waits for it is told, and nothing will be written."""
        if self.finished or self._gone is not None:
            return
        self._gone = reason
        notifications, self._notifications = self._notifications, []
        for notification in notifications:
            notification.errback(reason)
