"""Channels: which names are channels, and which names a pattern (`*` only) covers."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twisted_sse.core._channels import ChannelPatterns, checked_publication, valid_channel, valid_pattern


@pytest.mark.parametrize(
    ("pattern", "name", "matches"),
    [
        ("news", "news", True),
        ("news", "newsy", False),
        ("user.42", "user.4", False),
        ("user.4", "user.42", False),
        ("user.*", "user.42", True),
        ("user.*", "user.", True),
        ("user.*", "users", False),
        ("user.*", "user", False),
        ("*", "anything", True),
        ("orders.*.items", "orders.7.items", True),
        ("orders.*.items", "orders.items", False),
        ("a*b*c", "abc", True),
        ("a*b*c", "aXbYbZc", True),
        ("a*b*c", "acb", False),
        ("*.admin", "x.admin", True),
        ("*.admin", ".admin", True),
        ("*.admin", "admin", False),
        ("a.b", "aXb", False),  # a dot is a dot, not "any character"
    ],
)
def test_matching(pattern, name, matches):
    """Only `*` is a wildcard; everything else is literal."""
    assert ChannelPatterns([pattern]).matches(name) is matches


@pytest.mark.parametrize("bad", ["", "user.[0-9]", "a?b", "a b", "x" * 257, "user/42", 42, None])
def test_invalid_patterns_are_refused(bad):
    """A pattern is channel characters plus `*` (a token can't smuggle regex syntax in)."""
    with pytest.raises(ValueError):
        ChannelPatterns([bad])


_alphabet = st.sampled_from("ab.*")


@given(st.text(_alphabet, min_size=1, max_size=12), st.text(st.sampled_from("ab."), min_size=1, max_size=12))
def test_agrees_with_a_reference_matcher(pattern, name):
    """The scan agrees with a reference that turns `*` into `.*` over escaped literals."""
    reference = re.fullmatch(".*".join(re.escape(part) for part in pattern.split("*")), name, re.S) is not None
    assert ChannelPatterns([pattern]).matches(name) is reference
    assert valid_pattern(pattern)


def test_covers_needs_every_channel():
    """A multi-channel stream needs every one of its channels covered."""
    grants = ChannelPatterns(["news", "user.42"])
    assert grants.covers(["news", "user.42"]) and not grants.covers(["news", "user.43"])
    assert not ChannelPatterns([])


@pytest.mark.parametrize("name", ["news", "a", "user.42", "A-Z_0:9", "x" * 128])
def test_channel_names_of_the_documented_characters_are_valid(name):
    """1-128 characters from A-Za-z0-9_.:- are a channel name."""
    assert valid_channel(name)


@pytest.mark.parametrize("name", ["", "x" * 129, "a b", "a*", "#events:a", "é", "a/b"])
def test_anything_else_is_not_a_channel_name(name):
    """Empty, too long, spaces, patterns, the reserved `#`, non-ASCII: refused."""
    assert not valid_channel(name)


def test_a_publication_is_checked_and_its_text_encoded():
    """Text becomes UTF-8 bytes; a bad channel or a multi-line event type is a ValueError naming it."""
    assert checked_publication("news", "héllo", "headline") == "héllo".encode()
    assert checked_publication("news", b"\x00raw", None) == b"\x00raw"
    with pytest.raises(ValueError, match="invalid channel name"):
        checked_publication("bad name", b"x", None)
    with pytest.raises(ValueError):
        checked_publication("news", b"x", "two\nlines")
