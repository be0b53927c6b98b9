"""Block: a block's bytes are joined once, and its first and last ids skip what has no id."""

from twisted_sse.core import Block


def test_a_block_joins_its_events_once_in_order():
    """`data` is every event's bytes, in order."""
    block = Block([((1, 0), b"a\n\n"), (None, b"raw\n\n"), ((2, 0), b"b\n\n")])
    assert block.data == b"a\n\nraw\n\nb\n\n"


def test_a_single_event_block_shares_the_event_bytes():
    """One event: no join, the very bytes that were encoded once for every client."""
    encoded = b"data: x\n\n"
    assert Block([((1, 0), encoded)]).data is encoded


def test_first_and_last_are_the_ids_of_the_events_that_have_one():
    """Raw events (no id) at either end don't count."""
    block = Block([(None, b"r"), ((3, 1), b"a"), ((4, 0), b"b"), (None, b"r")])
    assert (block.first, block.last) == ((3, 1), (4, 0))


def test_a_block_of_raw_events_has_no_ids():
    """Only raw payloads: nothing to skip by."""
    block = Block([(None, b"r1"), (None, b"r2")])
    assert (block.first, block.last) == (None, None)
