"""The publish queue: a reactor turn's publishes go together, one batch in flight, each answered its own."""

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock

from twisted_sse.core import PublishQueue, Receipt


class Sent:
    """A `send` that records each batch and answers it when the test says."""

    def __init__(self):
        self.batches = []

    def __call__(self, publications):
        answer = Deferred()
        self.batches.append((publications, answer))
        return answer

    def answer(self, replicated=None):
        publications, answer = self.batches[-1]
        answer.callback(Receipt([f"{n}-0" for n in range(len(publications))], replicated))


def _queue(**bounds):
    clock, sent = Clock(), Sent()
    return PublishQueue(sent, clock, **bounds), clock, sent


def _results(deferred):
    out = []
    deferred.addBoth(out.append)
    return out


def test_the_publishes_of_one_turn_are_one_batch_and_each_gets_its_own_ids():
    queue, clock, sent = _queue()
    first = _results(queue.put([("a", b"1", None), ("b", b"2", "t")]))
    second = _results(queue.put([("a", b"3", None)]))
    assert sent.batches == []  # not before the turn ends
    clock.advance(0)
    assert [publications for publications, _ in sent.batches] == [
        [("a", b"1", None), ("b", b"2", "t"), ("a", b"3", None)]
    ]
    sent.answer(replicated=False)
    assert first == [Receipt(["0-0", "1-0"], False)] and second == [Receipt(["2-0"], False)]
    assert queue.batches == 1


def test_one_batch_is_in_flight_and_what_comes_meanwhile_goes_next_together():
    queue, clock, sent = _queue()
    queue.put([("a", b"1", None)])
    clock.advance(0)
    later = [_results(queue.put([("a", b"%d" % n, None)])) for n in range(3)]
    clock.advance(1)
    assert len(sent.batches) == 1  # the first is still out
    sent.answer()
    clock.advance(0)
    assert [len(publications) for publications, _ in sent.batches] == [1, 3]
    assert later == [[], [], []]
    sent.answer()
    assert [result[0].ids for result in later] == [["0-0"], ["1-0"], ["2-0"]]


def test_a_failed_batch_fails_each_of_its_publishes_and_the_next_batch_still_goes():
    queue, clock, sent = _queue()
    failed = [_results(queue.put([("a", b"%d" % n, None)])) for n in range(2)]
    clock.advance(0)
    after = _results(queue.put([("a", b"late", None)]))
    sent.batches[0][1].errback(RuntimeError("connection lost"))
    assert [result[0].getErrorMessage() for result in failed] == ["connection lost"] * 2
    clock.advance(0)
    sent.answer()
    assert after[0].ids == ["0-0"]


def test_a_send_that_raises_fails_its_publishes_instead_of_stalling_the_queue():
    clock = Clock()
    calls = []

    def send(publications):
        calls.append(publications)
        if len(calls) == 1:
            raise ValueError("bad batch")
        return Deferred()

    queue = PublishQueue(send, clock)
    failed = _results(queue.put([("a", b"1", None)]))
    clock.advance(0)
    assert failed[0].check(ValueError)
    queue.put([("a", b"2", None)])
    clock.advance(0)
    clock.advance(0)
    assert len(calls) == 2


def test_batches_are_bounded_in_events_and_bytes_but_one_put_always_goes_whole():
    queue, clock, sent = _queue(max_events=3, max_bytes=10)
    queue.put([("a", b"x", None)] * 2)
    queue.put([("a", b"x", None)] * 2)  # would make 4 events: the next batch
    queue.put([("a", b"y" * 20, None)])  # larger than max_bytes alone: goes whole, alone
    clock.advance(0)
    sizes = []
    for _ in range(3):
        sizes.append(len(sent.batches[-1][0]))
        sent.answer()
        clock.advance(0)
    assert sizes == [2, 2, 1]
