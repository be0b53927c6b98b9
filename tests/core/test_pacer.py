"""Pacer: work runs at once while a reactor turn has share left, then waits for coming turns, in order."""

from twisted.internet.task import Clock

from twisted_sse.core import Pacer


def _spend(clock, seconds, done, name):
    def work():
        clock.rightNow += seconds  # time spent working, without running timed calls
        done.append(name)

    return work


def _one_turn(clock):
    """Run the calls due now, as one reactor turn would (Clock.advance would also run those they schedule)."""
    due = [call for call in clock.getDelayedCalls() if call.getTime() <= clock.seconds()]
    for call in due:
        clock.calls.remove(call)
        call.func(*call.args, **call.kw)


def test_work_runs_at_once_while_the_turn_has_share_left():
    """The first works of a turn run inline; once 20 ms are spent, the next waits."""
    clock, done = Clock(), []
    pacer = Pacer(clock, share=0.02)
    for name in ("a", "b", "c"):
        assert pacer.admit()
        _spend(clock, 0.008, done, name)()
    assert not pacer.admit()  # 24 ms spent in this turn
    assert done == ["a", "b", "c"]


def test_waiting_work_runs_on_coming_turns_a_share_each_first_come_first_served():
    """Queued work runs in order, about one share per turn; nothing is admitted ahead of it."""
    clock, done = Clock(), []
    pacer = Pacer(clock, share=0.02)
    assert pacer.admit()
    clock.rightNow += 0.05
    for name in "abcdef":
        assert not pacer.admit()
        pacer.later(_spend(clock, 0.012, done, name))
    assert pacer.waiting == 6 and done == []
    _one_turn(clock)  # the next turn: two works (24 ms) pass its 20 ms share
    assert done == ["a", "b"] and not pacer.admit()
    _one_turn(clock)
    _one_turn(clock)
    assert done == list("abcdef") and pacer.waiting == 0


def test_a_turn_ends_when_the_reactor_comes_round_and_leaves_no_timer():
    """After a quiet turn everything is admitted again, and no call is left scheduled."""
    clock = Clock()
    pacer = Pacer(clock, share=0.02)
    assert pacer.admit()
    clock.rightNow += 0.03
    assert not pacer.admit()
    _one_turn(clock)
    assert pacer.admit() and clock.getDelayedCalls() != []
    _one_turn(clock)
    assert clock.getDelayedCalls() == []


def test_failing_work_does_not_stop_the_work_behind_it():
    """An exception is logged; the queue goes on."""
    clock, done = Clock(), []
    pacer = Pacer(clock, share=0.02)
    pacer.admit()
    clock.rightNow += 0.05

    def fails():
        raise RuntimeError("boom")

    pacer.later(fails)
    pacer.later(lambda: done.append("after"))
    clock.advance(0)
    assert done == ["after"]
