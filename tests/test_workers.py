"""The --workers parent's pieces that need no process: a worker's command line, and the usage errors."""

import sys

import pytest
from twisted.python.usage import UsageError

from tests.options import no_sse_environment, parse  # noqa: F401 (the fixture applies here)
from twisted_sse._workers import FIRST_FD, worker_argv


def test_a_worker_runs_the_parents_sse_options_in_the_foreground_on_the_inherited_sockets():
    """--workers and --admin-listen stay with the parent; each --listen gets its descriptor, then the ready pipe."""
    argv = ["twistd", "--logfile", "x.log", "sse", "--workers", "4", "--listen", "tcp:8080", "--admin-listen=tcp:9",
            "--listen", "unix:/run/s.sock", "--redis", "redis://r/0", "--workers=2"]  # fmt: skip
    child = worker_argv(argv, 1, 2, "x.log")
    assert child[0] == sys.executable
    at = child.index("sse")
    assert child[3:at] == ["-n", "--pidfile=", "--logfile", "x.log"]
    assert child[at + 1 :] == [
        "--listen", "tcp:8080", "--listen", "unix:/run/s.sock", "--redis", "redis://r/0", "--worker", "1",
        "--inherit", str(FIRST_FD), "--inherit", str(FIRST_FD + 1), "--ready-fd", str(FIRST_FD + 2),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (["--workers", "2"], "--workers above 1 needs --redis"),
        (["--workers", "0", "--redis", "redis://r/0"], "--workers '0'"),
        (["--workers", "many"], "--workers 'many'"),
        (["--workers", "2", "--redis", "redis://r/0", "--listen", "tcp6:8080"], "serves tcp, ssl, unix and systemd"),
        (["--listen", "tcp:1", "--inherit", "3", "--inherit", "4"], "--inherit: one descriptor per --listen"),
    ],
)
def test_workers_usage_errors_name_what_to_fix(argv, named):
    """Each refusal says which option and why."""
    with pytest.raises(UsageError) as raised:
        parse(*argv)
    assert named in str(raised.value)


def test_auto_is_one_worker_per_core(monkeypatch):
    """--workers auto counts the machine's cores."""
    monkeypatch.setattr("os.cpu_count", lambda: 6)
    assert parse("--workers", "auto", "--redis", "redis://r/0").workers == 6
