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
