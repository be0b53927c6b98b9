"""Notifier: sd_notify messages to $NOTIFY_SOCKET (a path or an abstract name), and the watchdog's pace."""

import socket

from twisted.internet.task import Clock

from twisted_sse._systemd import Notifier, _address


def test_the_notify_socket_is_a_path_or_an_abstract_name():
    """`@name` is the abstract namespace (a leading NUL); anything else that is not a path is ignored."""
    assert _address("/run/systemd/notify") == "/run/systemd/notify"
    assert _address("@sd-notify") == b"\0sd-notify"
    assert _address("") is None and _address("relative/path") is None


def test_ready_watchdog_and_stopping_reach_the_socket(tmp_path):
    """READY at start, WATCHDOG every half WATCHDOG_USEC on the clock, STOPPING at stop; no timer left."""
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(path)
        listener.settimeout(1)
        clock = Clock()
        notifier = Notifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "2000000"}, clock)
        notifier.startService()
        assert listener.recv(4096).startswith(b"READY=1\n")
        assert listener.recv(4096) == b"WATCHDOG=1"
        clock.advance(1.0)
        assert listener.recv(4096) == b"WATCHDOG=1"
        notifier.stopService()
        assert listener.recv(4096).startswith(b"STOPPING=1")
        assert clock.getDelayedCalls() == []


def test_without_systemd_nothing_is_sent_and_a_watchdog_for_another_pid_is_not_ours():
    """No NOTIFY_SOCKET: disabled; WATCHDOG_PID of another process: no pings."""
    assert not Notifier({}, Clock()).enabled
    clock = Clock()
    notifier = Notifier({"NOTIFY_SOCKET": "/nonexistent/notify", "WATCHDOG_USEC": "1000", "WATCHDOG_PID": "1"}, clock)
    notifier.startService()  # the socket isn't there: a warning, not a crash
    assert clock.getDelayedCalls() == []
