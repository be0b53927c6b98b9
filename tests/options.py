"""Parsing `twistd sse` options in tests, with no SSE_* variable of the environment taking part."""

import os

import pytest

from twisted_sse.tap import Options


@pytest.fixture(autouse=True)
def no_sse_environment(monkeypatch):
    """Options come from SSE_* variables too: the tests see none but their own. Autouse where imported."""
    for name in list(os.environ):
        if name.startswith("SSE_") and not name.startswith("SSE_TEST_"):
            monkeypatch.delenv(name)


def parse(*argv):
    """The Settings `twistd sse ARGV` would run with."""
    options = Options()
    options.parseOptions(list(argv))
    return options.settings
