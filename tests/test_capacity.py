"""The open-files limit: raised to the hard limit when the system allows it, never lowered."""

import resource

from twisted_sse import _capacity


def test_the_soft_limit_is_raised_to_the_hard_one(monkeypatch):
    """soft < hard: setrlimit(hard, hard), and the new limit is returned."""
    calls = []
    monkeypatch.setattr(_capacity._rlimit, "getrlimit", lambda which: (1024, 4096))
    monkeypatch.setattr(_capacity._rlimit, "setrlimit", lambda which, limits: calls.append((which, limits)))
    assert _capacity.raise_open_files_limit() == 4096
    assert calls == [(resource.RLIMIT_NOFILE, (4096, 4096))]


def test_an_unlimited_or_equal_hard_limit_leaves_the_soft_one(monkeypatch):
    """Nothing to raise to: the soft limit stands and setrlimit is not called."""
    monkeypatch.setattr(_capacity._rlimit, "setrlimit", lambda *a: (_ for _ in ()).throw(AssertionError))
    for hard in (resource.RLIM_INFINITY, 1024):
        monkeypatch.setattr(_capacity._rlimit, "getrlimit", lambda which, hard=hard: (1024, hard))
        assert _capacity.raise_open_files_limit() == 1024


def test_a_refused_raise_keeps_the_soft_limit(monkeypatch):
    """A system that refuses (a container) leaves the soft limit, and says so by returning it."""

    def refuse(which, limits):
        raise ValueError("not allowed")

    monkeypatch.setattr(_capacity._rlimit, "getrlimit", lambda which: (1024, 4096))
    monkeypatch.setattr(_capacity._rlimit, "setrlimit", refuse)
    assert _capacity.raise_open_files_limit() == 1024


def test_the_real_limit_is_at_least_what_it_was():
    """On this machine: the returned limit is the soft limit now in force."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    limit = _capacity.raise_open_files_limit()
    assert limit >= before and resource.getrlimit(resource.RLIMIT_NOFILE)[0] == limit
