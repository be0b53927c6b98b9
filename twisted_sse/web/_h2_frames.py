"""What an HTTP/2 client may send before it is cut: frame sizes, header blocks, and a budget of control frames.

h2 (the protocol library under Twisted's HTTP/2) keeps every byte of a frame until the
frame is whole, and checks the frame's size only then: a client that declares a 16 MiB
frame and sends zeros is buffered to the end, and so is a header block of endless
CONTINUATION frames, which h2 never bounds. And it answers every PING and SETTINGS,
however many arrive: a client that sends nothing else can keep a core busy. The
`FrameGuard` reads only the 9-byte frame headers as the bytes arrive (payloads are
skipped, never kept) and says when the connection must be cut, before h2 sees the bytes:

- a frame longer than the size the server allows (16 KiB, h2's default): FRAME_SIZE_ERROR;
- a header block (HEADERS and its CONTINUATIONs) past `max_header_block` bytes, or
  interrupted by another frame: ENHANCE_YOUR_CALM, PROTOCOL_ERROR;
- a control frame past the `ControlBudget`, or SETTINGS entries past `max_settings` in
  all (h2 keeps every one, known or not, and walks them all at each SETTINGS):
  ENHANCE_YOUR_CALM.

It also says where each frame ends (`ends`), so that h2 can be handed one frame at a
time: given a whole read, h2 parses every frame in it before Twisted acts on the first,
and Twisted then writes to streams that h2 has already closed (a request and its reset
in one read raised out of Twisted, and could stop a connection's sending for good).

Plain Python, no I/O: bytes and times in, a `Cut` or None out.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

__all__ = ["ControlBudget", "Cut", "FrameGuard", "PROTOCOL_ERROR", "CONTROL_FLOOD"]

PROTOCOL_ERROR = "protocol_error"
CONTROL_FLOOD = "control_flood"

# RFC 9113 frame types, flags and error codes.
_DATA, _HEADERS, _RST_STREAM, _SETTINGS, _CONTINUATION = 0x0, 0x1, 0x3, 0x4, 0x9
_NAMES = {0x0: "DATA", 0x1: "HEADERS", 0x2: "PRIORITY", 0x3: "RST_STREAM", 0x4: "SETTINGS", 0x5: "PUSH_PROMISE",
          0x6: "PING", 0x7: "GOAWAY", 0x8: "WINDOW_UPDATE", 0x9: "CONTINUATION"}  # fmt: skip
_END_HEADERS = 0x4
_CODE_PROTOCOL_ERROR, _CODE_FRAME_SIZE_ERROR, _CODE_ENHANCE_YOUR_CALM = 0x1, 0x6, 0xB

_PREFACE_LENGTH = 24  # b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n": h2 checks its bytes
_HEAD = struct.Struct(">BHBBI")  # length (24 bits, as 8 + 16), type, flags, R + stream id
_HEAD_SIZE = _HEAD.size


@dataclass(frozen=True, slots=True)
class Cut:
    """Why a connection is cut: `reason` for the metrics, `code` for the GOAWAY, `message` for the log."""

    reason: str
    code: int
    message: str


class ControlBudget:
    """Frames that carry no request and little or no request body, as a token bucket.

    It starts full (`burst`), refills `per_second` and `per_stream` for each stream the
    client opens, never past `burst`; each control frame spends one (a SETTINGS frame one
    per entry; a RST_STREAM also takes back what opening streams earned: streams opened
    and reset at once, rapid reset, lose a token a pair). WINDOW_UPDATEs
    are paid for by what the server sends: a client acknowledges received data with them,
    so every `bytes_per_token` bytes of response data earn one. Small and well-formed, a
    PING costs a server more than it costs the client; past the budget, the client is an
    attacker.
    """

    __slots__ = ("burst", "per_second", "per_stream", "bytes_per_token", "tokens", "_at", "_sent", "spent", "lowest",
                 "_earned")  # fmt: skip

    def __init__(
        self, now: float, burst: int = 200, per_second: float = 20.0, per_stream: int = 10, bytes_per_token: int = 4096
    ) -> None:
        self.burst = burst
        self.per_second = per_second
        self.per_stream = per_stream
        self.bytes_per_token = bytes_per_token
        self.tokens = float(burst)
        self.spent = 0
        """Control frames received so far."""
        self.lowest = float(burst)
        """The fewest tokens left at any time: `burst - lowest` is the most of the budget this client ever used."""
        self._at = now
        self._sent = 0
        self._earned = 0.0
        """Tokens that opening streams added and no reset has taken back yet."""

    def refill(self, now: float) -> None:
        elapsed = now - self._at
        self._at = now
        if elapsed > 0:  # a wall clock may step back: never drain for it
            self.tokens = min(self.burst, self.tokens + elapsed * self.per_second)

    def spend(self, cost: int = 1) -> bool:
        """One control frame of `cost` tokens: False when there was not enough left to spend."""
        self.spent += 1
        if self.tokens < cost:
            return False
        self.tokens -= cost
        if self.tokens < self.lowest:
            self.lowest = self.tokens
        return True

    def stream_opened(self) -> None:
        earned = min(self.per_stream, self.burst - self.tokens)
        self.tokens += earned
        self._earned += earned

    def stream_reset(self) -> bool:
        """A RST_STREAM: back what opening streams earned (up to `per_stream`), then one token."""
        back = min(self.per_stream, self._earned, self.tokens)
        self.tokens -= back
        self._earned -= back
        return self.spend()

    def data_sent(self, size: int) -> None:
        """`size` bytes of response data went out (the client will acknowledge them)."""
        self._sent += size
        if self._sent >= self.bytes_per_token:
            earned, self._sent = divmod(self._sent, self.bytes_per_token)
            self.tokens = min(self.burst, self.tokens + earned)


_SMALL_DATA = 1024
"""DATA frames shorter than this (empty, padding only, a byte at a time) cost like control frames."""


class FrameGuard:
    """Reads a client's frame headers as its bytes arrive; `feed` says when to cut the connection."""

    def __init__(self, budget: ControlBudget, max_frame_size: int = 16384, max_header_block: int = 65536,
                 max_settings: int = 128) -> None:  # fmt: skip
        self.budget = budget
        self.max_frame_size = max_frame_size
        self.max_header_block = max_header_block
        self.max_settings = max_settings
        self.ends: list[int] = []
        """Where frames (and the preface) ended in the last read: offsets into it."""
        self._skip = _PREFACE_LENGTH
        """Bytes to pass before the next frame header: the preface, then each frame's payload."""
        self._in_frame = True
        """The bytes being skipped are a frame's (or the preface): its end goes into `ends`."""
        self._settings = 0
        self._partial = b""
        """The start of a frame header that the last read split (under 9 bytes)."""
        self._block_stream: int | None = None
        """The stream whose header block is open (HEADERS without END_HEADERS), awaiting CONTINUATIONs."""
        self._block_bytes = 0
        self._highest_stream = 0
        self.streams_opened = 0

    def feed(self, data: bytes, now: float) -> Cut | None:
        """The client sent `data` at `now`: None while it may go on (`ends` says where its frames end),
        else why it is cut."""
        self.budget.refill(now)
        self.ends = ends = []
        offset, size = 0, len(data)
        if self._partial:
            need = _HEAD_SIZE - len(self._partial)
            if size < need:
                self._partial += data
                return None
            head, self._partial = self._partial + data[:need], b""
            cut = self._frame(*_HEAD.unpack(head))
            if cut is not None:
                return cut
            offset, self._in_frame = need, True
        while True:
            if self._skip:
                step = min(self._skip, size - offset)
                offset += step
                self._skip -= step
                if self._skip:
                    return None
            if self._in_frame:
                ends.append(offset)
                self._in_frame = False
            if size - offset < _HEAD_SIZE:
                self._partial = data[offset:]
                return None
            cut = self._frame(*_HEAD.unpack_from(data, offset))
            if cut is not None:
                return cut
            offset += _HEAD_SIZE
            self._in_frame = True

    def _frame(self, high: int, low: int, kind: int, flags: int, stream: int) -> Cut | None:
        length = high << 16 | low
        stream &= 0x7FFFFFFF
        if length > self.max_frame_size:
            return Cut(PROTOCOL_ERROR, _CODE_FRAME_SIZE_ERROR,
                       f"a {_name(kind)} frame of {length} bytes, more than {self.max_frame_size}")  # fmt: skip
        self._skip = length
        if self._block_stream is not None:
            if kind != _CONTINUATION or stream != self._block_stream:
                return Cut(PROTOCOL_ERROR, _CODE_PROTOCOL_ERROR, f"a {_name(kind)} frame inside a header block")
            self._block_bytes += length
            if self._block_bytes > self.max_header_block:
                return Cut(CONTROL_FLOOD, _CODE_ENHANCE_YOUR_CALM,
                           f"a header block of more than {self.max_header_block} bytes")  # fmt: skip
            if flags & _END_HEADERS:
                self._block_stream = None
            return self._spend(kind)
        if kind == _HEADERS:
            if not flags & _END_HEADERS:
                self._block_stream, self._block_bytes = stream, length
            if stream & 1 and stream > self._highest_stream:  # a new stream: it earns control frames
                self._highest_stream = stream
                self.streams_opened += 1
                self.budget.stream_opened()
                return None
            return self._spend(kind)  # trailers, or a stream h2 will refuse
        if kind == _DATA and length >= _SMALL_DATA:
            return None  # flow-controlled: bounded by the window the server grants
        if kind == _SETTINGS:
            entries = length // 6
            self._settings += entries
            if self._settings > self.max_settings:
                return Cut(CONTROL_FLOOD, _CODE_ENHANCE_YOUR_CALM,
                           f"more than {self.max_settings} SETTINGS entries in all")  # fmt: skip
            return self._spend(kind, max(1, entries))
        if kind == _RST_STREAM:
            return None if self.budget.stream_reset() else self._over_budget(kind)
        return self._spend(kind)

    def _spend(self, kind: int, cost: int = 1) -> Cut | None:
        return None if self.budget.spend(cost) else self._over_budget(kind)

    def _over_budget(self, kind: int) -> Cut:
        return Cut(CONTROL_FLOOD, _CODE_ENHANCE_YOUR_CALM,
                   f"{self.budget.spent} control frames (this one {_name(kind)}), past the budget")  # fmt: skip


def _name(kind: int) -> str:
    return _NAMES.get(kind, f"unknown (type {kind:#x})")
