"""The pub/sub envelope: twisted-sse's own publishes carry type and id, raw payloads stay raw."""

import json

from hypothesis import given
from hypothesis import strategies as st

from twisted_sse.core._envelope import MARK, unpack
from twisted_sse.core._framing import Event


def pack(data, event, event_id):
    """The envelope as PUBLISH_SCRIPT builds it."""
    header = {k: v for k, v in (("id", event_id), ("event", event)) if v is not None}
    return MARK + json.dumps(header).encode() + b"\n" + data


one_line = st.text().filter(lambda s: not any(c in s for c in "\r\n\0"))


@given(st.binary(), st.none() | one_line, st.none() | one_line)
def test_envelope_round_trip(data, event, event_id):
    """Data, type and id packed by twisted-sse come back exactly."""
    assert unpack(pack(data, event, event_id)) == Event(data, event, event_id)


@given(st.binary())
def test_raw_payloads_are_data_byte_for_byte(payload):
    """A payload that doesn't start with the mark is the event's data, unchanged."""
    if not payload.startswith(MARK):
        assert unpack(payload) == Event(payload)


def test_raw_payloads_that_look_like_json_stay_raw():
    """JSON, numbers with leading zeros and text are data, never parsed."""
    for payload in [b'{"event": "x", "id": "1"}', b"007", "h\u00e9llo".encode(), b""]:
        assert unpack(payload) == Event(payload)


def test_a_broken_envelope_is_delivered_raw():
    """A payload with the mark but no valid header is delivered as it is, not dropped."""
    for payload in [MARK + b"not json\nx", MARK + b'{"event": "a\\nb"}\nx', MARK + b"[1]\nx", MARK]:
        assert unpack(payload) == Event(payload)
