"""Framing: what `encode` writes is what a spec-conformant EventSource parser dispatches."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.sse_parser import Dispatched, parse
from twisted_sse.core._framing import Event, encode, encode_comment, encode_retry

one_line = st.text().filter(lambda s: not any(c in s for c in "\r\n\0"))


def as_received(data: str) -> str:
    """The SSE format carries line breaks, not which ones: clients see LF for CR, LF and CRLF."""
    return data.replace("\r\n", "\n").replace("\r", "\n")


@given(data=st.text(), event=st.none() | one_line, event_id=st.none() | one_line)
def test_round_trip_through_spec_parser(data, event, event_id):
    """Any UTF-8 data with any single-line type and id reaches the client unchanged but for line breaks."""
    parsed = parse(encode(Event(data.encode("utf-8"), event, event_id)))
    assert parsed == [Dispatched(event or "message", as_received(data), event_id or "")]


@given(st.lists(st.tuples(st.text(), st.none() | one_line), max_size=5))
def test_consecutive_events_stay_separate(events):
    """A stream of several events dispatches each one, in order."""
    stream = b"".join(encode(Event(d.encode("utf-8"), e)) for d, e in events)
    assert [(p.data, p.type) for p in parse(stream)] == [(as_received(d), e or "message") for d, e in events]


@pytest.mark.parametrize(
    ("data", "lines"),
    [
        (b"a\r\nb", [b"a", b"b"]),
        (b"a\rb", [b"a", b"b"]),
        (b"a\nb", [b"a", b"b"]),
        (b"a\n\nb", [b"a", b"", b"b"]),
        (b"", [b""]),
        (b"line\xe2\x80\xa8sep\x0bvt\x1cfs", [b"line\xe2\x80\xa8sep\x0bvt\x1cfs"]),
    ],
)
def test_data_splits_only_on_cr_lf_crlf(data, lines):
    """Data splits into data: lines on CR, LF and CRLF only, unlike str.splitlines."""
    assert encode(Event(data)) == b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"


@pytest.mark.parametrize("bad", ["a\nb", "a\rb", "a\0b"])
def test_event_type_and_id_refuse_line_breaks_and_nul(bad):
    """An event type or id with CR, LF or NUL is refused: it would forge fields."""
    with pytest.raises(ValueError):
        Event(b"x", event=bad)
    with pytest.raises(ValueError):
        Event(b"x", id=bad)


def test_comment_and_retry_lines():
    """Comments are ignored by clients; retry sets their reconnect delay."""
    from tests.sse_parser import SSEParser

    parser = SSEParser()
    assert parser.feed(encode_comment() + encode_retry(2500) + encode(Event(b"x"))) == [Dispatched("message", "x", "")]
    assert parser.retry == 2500
    assert parser.comments == [""]
