import pytest

from testbed import RedisServer


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """One redis-server for the session; tests that break it start their own."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    yield server
    server.stop()


@pytest.fixture
def redis_db(redis_server):
    """The session's redis-server, emptied for this test."""
    redis_server.client().flushall()
    return redis_server


@pytest.fixture(params=["whole", "twisted"])
def both_post_paths(request, monkeypatch):
    """Run a test with POSTs read whole (the site's PostChannel) and by Twisted's channel alone (as when
    the resource is mounted in an application's own Site)."""
    if request.param == "twisted":
        from twisted_sse.web._resource import SSEResource

        monkeypatch.setattr(SSEResource, "whole_post", lambda self, request: None)
    return request.param
