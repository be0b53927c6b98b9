"""ChannelPatterns: `*` matches any run of characters, nothing else is special."""

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from twisted_sse.core._channels import ChannelPatterns, valid_pattern


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
