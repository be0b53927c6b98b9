"""FrameGuard and ControlBudget: what an HTTP/2 client may send, read from frame headers alone."""

from __future__ import annotations

import struct

import h2.config
import h2.connection
import h2.events
from hypothesis import given
from hypothesis import strategies as st

from testbed.h2_attacks import (
    ATTACKS,
    CONTINUATION,
    DATA,
    HEADERS,
    PING,
    PREFACE,
    RST_STREAM,
    SETTINGS,
    WINDOW_UPDATE,
    frame,
)
from twisted_sse.web._h2_frames import CONTROL_FLOOD, PROTOCOL_ERROR, ControlBudget, Cut, FrameGuard

_OPEN = PREFACE + frame(SETTINGS, 0, 0)


def _guard(**budget: float) -> FrameGuard:
    return FrameGuard(ControlBudget(0.0, **budget))  # type: ignore[arg-type]


def _feed_in_pieces(guard: FrameGuard, data: bytes, size: int, now: float = 0.0) -> Cut | None:
    for start in range(0, len(data), size):
        cut = guard.feed(data[start : start + size], now)
        if cut is not None:
            return cut
    return None


def test_an_oversized_frame_is_cut_on_its_header_before_its_payload():
    """A DATA frame declared past 16 KiB is cut with FRAME_SIZE_ERROR as soon as its 9-byte header is in."""
    cut = _guard().feed(_OPEN + frame(DATA, 0, 1, length=16385), 0.0)
    assert cut is not None and (cut.reason, cut.code) == (PROTOCOL_ERROR, 0x6)
    assert "16385" in cut.message
    assert _guard().feed(_OPEN + frame(DATA, 0, 1, bytes(16384)), 0.0) is None


def test_a_frame_header_split_across_reads_is_read_whole():
    """However the bytes are split, the header is read once it is complete (here: one byte at a time)."""
    assert _feed_in_pieces(_guard(), _OPEN + frame(DATA, 0, 1, length=1 << 20), 1) is not None


@given(st.lists(st.integers(1, 64), min_size=1, max_size=40), st.sampled_from(sorted(ATTACKS)))
def test_the_verdict_does_not_depend_on_how_the_bytes_are_split(sizes, attack):
    """Every attack gets the same cut whatever the reads' sizes."""
    opening, chunk = ATTACKS[attack]
    data = opening + chunk * 6
    whole = _guard().feed(data, 0.0)
    guard, offset, cut = _guard(), 0, None
    for size in sizes * (len(data) // sum(sizes) + 1):
        cut = guard.feed(data[offset : offset + size], 0.0)
        offset += size
        if cut is not None or offset >= len(data):
            break
    assert whole is not None and cut == whole


def test_a_header_block_past_the_bound_is_cut():
    """HEADERS then CONTINUATIONs past 64 KiB in all: ENHANCE_YOUR_CALM, counted as a control flood."""
    guard = _guard()
    assert guard.feed(_OPEN + frame(HEADERS, 0, 1, bytes(16384)), 0.0) is None
    for _ in range(3):
        assert guard.feed(frame(CONTINUATION, 0, 1, bytes(16384)), 0.0) is None
    cut = guard.feed(frame(CONTINUATION, 0, 1, bytes(1)), 0.0)
    assert cut is not None and (cut.reason, cut.code) == (CONTROL_FLOOD, 0xB)


def test_a_header_block_ends_with_end_headers_and_may_be_interrupted_by_nothing():
    """A block in three frames is fine; another frame inside a block is a protocol error."""
    guard = _guard()
    assert guard.feed(_OPEN + frame(HEADERS, 0, 1, b"a") + frame(CONTINUATION, 0, 1, b"b"), 0.0) is None
    assert guard.feed(frame(CONTINUATION, 0x4, 1, b"c") + frame(PING, 0, 0, bytes(8)), 0.0) is None
    cut = _guard().feed(_OPEN + frame(HEADERS, 0, 1, b"a") + frame(PING, 0, 0, bytes(8)), 0.0)
    assert cut is not None and (cut.reason, cut.code) == (PROTOCOL_ERROR, 0x1)
    cut = _guard().feed(_OPEN + frame(HEADERS, 0, 1, b"a") + frame(CONTINUATION, 0x4, 3, b"b"), 0.0)
    assert cut is not None and cut.reason == PROTOCOL_ERROR


def test_control_frames_past_the_burst_are_cut():
    """The budget starts at `burst`: that many control frames pass, the next one is cut."""
    guard = _guard(burst=50)
    assert guard.feed(PREFACE + frame(PING, 0, 0, bytes(8)) * 50, 0.0) is None
    cut = guard.feed(frame(PING, 0, 0, bytes(8)), 0.0)
    assert cut is not None and (cut.reason, cut.code) == (CONTROL_FLOOD, 0xB)
    assert "51 control frames" in cut.message and "PING" in cut.message


def test_the_budget_refills_per_second_up_to_the_burst():
    """After the burst, `per_second` frames a second go on forever; a pause never banks more than the burst."""
    guard = _guard(burst=10, per_second=5)
    ping = frame(PING, 0, 0, bytes(8))
    assert guard.feed(PREFACE + ping * 10, 0.0) is None
    for second in range(1, 100):
        assert guard.feed(ping * 5, float(second)) is None
    assert guard.feed(ping * 10, 1000.0) is None
    assert guard.feed(ping, 1000.0) is not None


def test_a_clock_that_steps_back_drains_nothing():
    """A wall clock stepping back adds no tokens and takes none."""
    budget = ControlBudget(100.0, burst=10, per_second=5)
    for _ in range(4):
        assert budget.spend()
    budget.refill(50.0)
    assert budget.tokens == 6
    budget.refill(51.0)
    assert budget.tokens == 10


def test_every_kind_of_control_frame_costs_and_requests_and_their_data_do_not():
    """PING, SETTINGS, PRIORITY, RST_STREAM, WINDOW_UPDATE, DATA under 1 KiB (empty, padding only, a byte),
    CONTINUATION, trailers and unknown types cost one each; a HEADERS that opens a stream and DATA of 1 KiB or
    more cost nothing."""
    guard = _guard(burst=1000, per_stream=0)
    costly = [frame(kind, 0, 1, bytes(6)) for kind in (2, 3, 4, 6, 8, 0x77)]
    costly += [frame(DATA, 0, 1), frame(DATA, 0x8, 1, b"\x00"), frame(DATA, 0, 1, bytes(1023))]
    costly += [frame(HEADERS, 0, 1, b"x") + frame(CONTINUATION, 0x4, 1, b"y")]
    assert guard.feed(PREFACE + frame(HEADERS, 0x4, 1, b"x") + frame(DATA, 0, 1, bytes(1024)), 0.0) is None
    assert guard.budget.spent == 0
    assert guard.feed(b"".join(costly), 0.0) is None
    # Six kinds, three small DATA, and trailers: a HEADERS on stream 1 again, and its CONTINUATION.
    assert guard.budget.spent == 11


def test_a_settings_frame_costs_one_per_entry_and_entries_are_bounded_in_all():
    """h2 keeps every setting it is sent: a frame of 2,730 entries is cut at once, and 128 entries in all is
    the most a connection may send (a real client sends fewer than ten)."""
    entries = b"".join(struct.pack(">HI", 0x100 + n, n) for n in range(2730))
    cut = _guard().feed(PREFACE + frame(SETTINGS, 0, 0, entries), 0.0)
    assert cut is not None and cut.reason == CONTROL_FLOOD and "SETTINGS entries" in cut.message
    guard = _guard(burst=100, per_second=0)
    assert guard.feed(PREFACE + frame(SETTINGS, 0, 0, entries[: 6 * 60]), 0.0) is None
    assert guard.budget.tokens == 40
    cut = guard.feed(frame(SETTINGS, 0, 0, entries[: 6 * 41]), 0.0)
    assert cut is not None and "past the budget" in cut.message
    guard = _guard(burst=1000, per_second=1000)
    for second in range(16):
        assert guard.feed((b"" if second else PREFACE) + frame(SETTINGS, 0, 0, entries[:48]), float(second)) is None
    assert guard.feed(frame(SETTINGS, 0, 0, entries[:6]), 20.0) is not None


def test_streams_opened_and_reset_at_once_lose_a_token_a_pair():
    """Rapid reset: what opening a stream earned, its reset takes back; 200 pairs exhaust the budget, while
    a page that closes its 20 streams spends 20."""
    ping_free = frame(HEADERS, 0x5, 1, b"x")
    guard, cut, pairs = _guard(per_second=0), None, 0
    assert guard.feed(PREFACE, 0.0) is None
    for stream_id in range(1, 1000, 2):
        cut = guard.feed(frame(HEADERS, 0x5, stream_id, b"x") + frame(RST_STREAM, 0, stream_id, bytes(4)), 0.0)
        if cut is not None:
            break
        pairs += 1
    assert cut is not None and 195 <= pairs <= 205, pairs
    guard = _guard(per_second=0)
    opened = b"".join(frame(HEADERS, 0x5, n, b"x") for n in range(1, 40, 2))
    assert guard.feed(PREFACE + ping_free[:0] + opened, 0.0) is None
    assert guard.feed(b"".join(frame(RST_STREAM, 0, n, bytes(4)) for n in range(1, 40, 2)), 0.0) is None
    assert guard.budget.tokens == 180


def test_the_guard_says_where_each_frame_ends():
    """`ends` holds the offset after the preface and after each frame complete in this read, also for frames
    that began in an earlier one."""
    guard = _guard()
    first = PREFACE + frame(SETTINGS, 0, 0) + frame(PING, 0, 0, bytes(8))
    assert guard.feed(first + frame(PING, 0, 0, bytes(8))[:12], 0.0) is None
    assert guard.ends == [24, 33, 50]
    assert guard.feed(frame(PING, 0, 0, bytes(8))[12:] + frame(DATA, 0, 1, bytes(2000))[:5], 0.0) is None
    assert guard.ends == [5]
    assert guard.feed(frame(DATA, 0, 1, bytes(2000))[5:1000], 0.0) is None and guard.ends == []
    assert guard.feed(frame(DATA, 0, 1, bytes(2000))[1000:], 0.0) is None and guard.ends == [1009]


def test_opening_a_stream_earns_control_frames():
    """Each new stream adds `per_stream` (a client that does real work may send more); never past the burst."""
    guard = _guard(burst=20, per_stream=10)
    ping = frame(PING, 0, 0, bytes(8))
    assert guard.feed(PREFACE + ping * 20, 0.0) is None
    assert guard.feed(frame(HEADERS, 0x5, 1, b"x") + ping * 10, 0.0) is None
    assert guard.feed(ping, 0.0) is not None
    guard = _guard(burst=20, per_stream=10)
    assert guard.feed(PREFACE + frame(HEADERS, 0x5, 1, b"x") + frame(HEADERS, 0x5, 3, b"x") + ping * 20, 0.0) is None
    assert guard.feed(ping, 0.0) is not None
    assert guard.streams_opened == 2


def test_a_stream_id_used_again_earns_nothing():
    """Only a HEADERS on a stream id higher than any before opens a stream."""
    guard = _guard(burst=20, per_stream=10)
    assert guard.feed(PREFACE + frame(HEADERS, 0x5, 5, b"x") + frame(HEADERS, 0x5, 3, b"x"), 0.0) is None
    assert guard.streams_opened == 1 and guard.budget.spent == 1


def test_window_updates_are_paid_for_by_the_data_sent():
    """Every 4 KiB of response data earns one frame: a client acknowledging what it reads is never cut."""
    guard = _guard(burst=10, per_second=0)
    update = frame(WINDOW_UPDATE, 0, 0, struct.pack(">I", 4096))
    assert guard.feed(PREFACE + update * 10, 0.0) is None
    for _ in range(1000):
        guard.budget.data_sent(2048)
        guard.budget.data_sent(2048)
        assert guard.feed(update, 0.0) is None
    assert guard.feed(update, 0.0) is not None


def _real_client_bytes() -> tuple[list[bytes], int]:
    """What the h2 library sends as a client of 20 streams, each POSTing 1,000 bytes and reading 48 KB that it
    acknowledges, then a PING: its requests and its acknowledgements, and the response bytes it was sent."""
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    server = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    client.initiate_connection()
    client.increment_flow_control_window(1 << 24)  # as httpx and browsers do
    server.initiate_connection()
    for _ in range(20):
        stream_id = client.get_next_available_stream_id()
        client.send_headers(stream_id, [(":method", "POST"), (":path", "/events/a"), (":scheme", "https"),
                                        (":authority", "x")])  # fmt: skip
        client.send_data(stream_id, bytes(1000), end_stream=True)
    requests, sent = client.data_to_send(), 0
    for event in server.receive_data(requests):
        if isinstance(event, h2.events.RequestReceived):
            server.send_headers(event.stream_id, [(":status", "200")])
            for last in (False, False, True):
                server.send_data(event.stream_id, bytes(16_000), end_stream=last)
                sent += 16_000
    for event in client.receive_data(server.data_to_send()):
        if isinstance(event, h2.events.DataReceived):
            client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
    client.ping(b"12345678")
    return [requests, client.data_to_send()], sent


@given(st.lists(st.integers(1, 200), min_size=1, max_size=20))
def test_a_real_clients_bytes_are_never_cut_however_they_are_split(sizes):
    """The same legitimate exchange, in reads of any sizes: never cut, the same frames counted, and the frame
    ends found are the frames' ends."""
    data = b"".join(_real_client_bytes()[0])
    whole = _guard()
    assert whole.feed(data, 0.0) is None
    guard, offset, ends = _guard(), 0, []
    for size in sizes * (len(data) // sum(sizes) + 1):
        piece = data[offset : offset + size]
        if not piece:
            break
        assert guard.feed(piece, 0.0) is None
        ends += [offset + end for end in guard.ends]
        offset += len(piece)
    assert ends == whole.ends and guard.budget.spent == whole.budget.spent and guard.streams_opened == 20


def test_what_the_h2_client_library_sends_costs_a_few_frames():
    """A real client (h2) opening 20 streams, uploading a body on each and acknowledging about 1 MB of data
    stays far below the budget."""
    (requests, acknowledgements), sent = _real_client_bytes()
    guard = FrameGuard(ControlBudget(0.0))
    assert guard.feed(requests, 0.0) is None
    guard.budget.data_sent(sent)
    assert guard.feed(acknowledgements, 0.0) is None
    assert guard.streams_opened == 20 and guard.budget.spent < 50 and guard.budget.burst - guard.budget.lowest < 20
