"""Heartbeat: one timer sends a comment line every interval; 0 turns it off."""

from twisted.internet.task import Clock

from twisted_sse.core import encode_comment
from twisted_sse.web import Heartbeat


def test_a_comment_goes_out_every_interval_not_at_start():
    """The first beat comes one interval after start, then one per interval."""
    clock, sent = Clock(), []
    heartbeat = Heartbeat(sent.append, 15, clock)
    heartbeat.startService()
    assert sent == []
    clock.advance(15)
    clock.advance(15)
    assert sent == [encode_comment(), encode_comment()]


def test_stopping_leaves_no_timer():
    """Stopped, nothing is scheduled and nothing more is sent."""
    clock, sent = Clock(), []
    heartbeat = Heartbeat(sent.append, 1, clock)
    heartbeat.startService()
    heartbeat.stopService()
    clock.advance(5)
    assert sent == [] and clock.getDelayedCalls() == []


def test_an_interval_of_zero_sends_nothing():
    """--heartbeat 0: no timer at all."""
    clock, sent = Clock(), []
    Heartbeat(sent.append, 0, clock).startService()
    assert clock.getDelayedCalls() == []
