"""Whole POSTs: which requests `read_whole_post` takes, and the answers `WholePost` gives."""

import pytest
from twisted.internet.error import ConnectionDone
from twisted.python.failure import Failure

from twisted_sse.web._post_request import MAX_HEAD, MAX_HEADERS, WholePost, read_whole_post

PLAIN = b"POST /events/news?event=up HTTP/1.1\r\nHost: x\r\nAuthorization:  Bearer t \r\nContent-Length: 5\r\n\r\nhello"


def _with(*lines: bytes, body: bytes = b"hello", start: bytes = b"POST /events/news HTTP/1.1") -> bytes:
    return b"\r\n".join((start, *lines)) + b"\r\n\r\n" + body


def test_a_plain_post_is_read_with_its_headers_by_lower_case_name_and_its_body():
    target, headers, body, size = read_whole_post(PLAIN, 1024)
    assert target == b"/events/news?event=up" and body == b"hello" and size == len(PLAIN)
    assert headers == {b"host": b"x", b"authorization": b"Bearer t", b"content-length": b"5"}


def test_only_the_first_of_pipelined_requests_is_read_and_its_size_says_where_the_next_starts():
    second = b"GET /healthz HTTP/1.1\r\n\r\n"
    *_, end = read_whole_post(PLAIN + second, 1024)
    assert (PLAIN + second)[end:] == second


def test_a_request_is_read_where_it_starts_in_the_data():
    _, _, body, end = read_whole_post(b"xx" + PLAIN + b"yy", 1024, start=2)
    assert body == b"hello" and end == 2 + len(PLAIN)


def test_keep_alive_and_an_empty_body_are_plain():
    assert read_whole_post(_with(b"Connection: Keep-Alive", b"Content-Length: 0", body=b""), 10)[2] == b""


@pytest.mark.parametrize(
    "request_bytes",
    [
        pytest.param(_with(b"Content-Length: 5", start=b"GET /events/news HTTP/1.1"), id="not a POST"),
        pytest.param(_with(b"Content-Length: 5", start=b"post /events/news HTTP/1.1"), id="method case"),
        pytest.param(_with(b"Content-Length: 5", start=b"POST /events/news HTTP/1.0"), id="HTTP/1.0"),
        pytest.param(_with(b"Content-Length: 5", start=b"POST  /events/news HTTP/1.1"), id="two spaces"),
        pytest.param(_with(b"Content-Length: 5", start=b"POST events/news HTTP/1.1"), id="target without /"),
        pytest.param(_with(b"Content-Length: 5", start=b"POST /events/n\xe9 HTTP/1.1"), id="target not ASCII"),
        pytest.param(_with(b"Host: x"), id="no Content-Length"),
        pytest.param(_with(b"Content-Length: +5"), id="length with a sign"),
        pytest.param(_with(b"Content-Length: 5, 5"), id="length list"),
        pytest.param(_with(b"Content-Length: 5", b"Content-Length: 5"), id="length twice"),
        pytest.param(_with(b"Content-Length: 5", b"Authorization: a", b"authorization: b"), id="a header twice"),
        pytest.param(_with(b"Content-Length: 1" + b"0" * 12), id="length of 13 digits"),
        pytest.param(_with(b"Content-Length: 5", b"Transfer-Encoding: chunked"), id="chunked"),
        pytest.param(_with(b"Content-Length: 5", b"Expect: 100-continue"), id="expect"),
        pytest.param(_with(b"Content-Length: 5", b"Upgrade: websocket"), id="upgrade"),
        pytest.param(_with(b"Content-Length: 5", b"Connection: close"), id="connection close"),
        pytest.param(_with(b"Content-Length: 5", b"X-A: b", b" folded"), id="obsolete folding"),
        pytest.param(_with(b"Content-Length: 5", b"X-A : b"), id="space before the colon"),
        pytest.param(_with(b"Content-Length: 5", b"X A: b"), id="name not a token"),
        pytest.param(_with(b"Content-Length: 5", b"X-A b"), id="no colon"),
        pytest.param(_with(b"Content-Length: 5", b"X-A: b\x00c"), id="NUL in a value"),
        pytest.param(_with(b"Content-Length: 5", b"X-A: b\nX-B: c"), id="bare LF"),
        pytest.param(_with(b"Content-Length: 5", b"X-A: b\rc"), id="bare CR"),
        pytest.param(_with(b"Content-Length: 6"), id="body not all there"),
        pytest.param(_with(b"Content-Length: 5")[:-10], id="headers not all there"),
        pytest.param(_with(b"Content-Length: 11", body=b"hello world"), id="body past max_body"),
        pytest.param(_with(b"Content-Length: 5", b"X-A: " + b"a" * MAX_HEAD), id="head past MAX_HEAD"),
        pytest.param(_with(b"Content-Length: 5", *[b"X-%d: a" % n for n in range(MAX_HEADERS)]), id="too many"),
    ],
)
def test_anything_but_a_plain_post_is_left_to_twisted(request_bytes):
    assert read_whole_post(request_bytes, 10) is None


def test_the_most_headers_a_whole_post_may_have_are_read():
    lines = [b"Content-Length: 5", *[b"X-%d: a" % n for n in range(MAX_HEADERS - 1)]]
    assert len(read_whole_post(_with(*lines), 10)[1]) == MAX_HEADERS


class _Connection:
    def __init__(self):
        self.answers = []

    def answered(self, request, answer):
        self.answers.append(answer)


def test_an_answer_has_twisteds_headers_in_order_and_its_length_and_is_written_once():
    connection = _Connection()
    request = WholePost(connection, b"/events/x", {b"origin": b"o"}, b"")
    request.setResponseCode(401)
    request.setHeader(b"content-type", b"text/plain")
    request.setHeader(b"www-authenticate", b"Bearer")
    request.write(b"no\n")
    request.finish()
    request.finish()
    [answer] = connection.answers
    head, _, body = answer.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.1 401 Unauthorized" and body == b"no\n"
    assert [line.split(b":")[0] for line in lines[1:]] == [b"Server", b"Date", b"Content-Type", b"WWW-Authenticate",
                                                           b"Content-Length"]  # fmt: skip
    assert b"Content-Length: 3" in lines and lines[1].startswith(b"Server: TwistedWeb/")


def test_notify_finish_fires_on_the_answer_and_fails_when_the_client_went_first():
    left = _Connection()
    answered, gone = WholePost(_Connection(), b"/", {}, b""), WholePost(left, b"/", {}, b"")
    results = []
    answered.notifyFinish().addBoth(results.append)
    answered.finish()
    gone.notifyFinish().addBoth(results.append)
    gone.connection_lost(Failure(ConnectionDone()))
    gone.notifyFinish().addBoth(results.append)  # asked after it went: fails at once, as Twisted's does
    gone.finish()
    assert results[0] is None and all(isinstance(r, Failure) for r in results[1:]) and len(results) == 3
    assert left.answers == []  # nothing is written for a client that went
