"""Embedding: mount the resource under an application's own Site and publish in-process."""

import pytest
from twisted.internet.task import Clock
from twisted.web.resource import Resource
from twisted.web.server import Site

from tests.http_harness import Client
from tests.sse_parser import Dispatched
from twisted_sse import Settings, SSEService


def test_resource_mounted_under_an_application_site_streams_in_process_publishes():
    """An app mounts service.resource at /sse and service.publish reaches its streams."""
    clock = Clock()
    sse = SSEService(Settings(listen=()), reactor=clock)
    root = Resource()
    root.putChild(b"sse", sse.resource)
    sse.startService()
    client = Client(Site(root, reactor=clock))
    client.send("GET", "/sse/events/news")
    published = []
    sse.publish("news", "bonjour", event="greeting").addCallback(published.append)
    clock.advance(0.01)  # the default --coalesce holds messages 10 ms
    assert client.response().events() == [Dispatched("greeting", "bonjour", published[0])]


@pytest.mark.parametrize(("channel", "event"), [("bad name", None), ("ok", "two\nlines")])
def test_publish_refuses_bad_channel_or_event_at_once(channel, event):
    """The in-process publish raises ValueError for what HTTP would answer 400."""
    sse = SSEService(Settings(listen=()), reactor=Clock())
    with pytest.raises(ValueError):
        sse.publish(channel, b"x", event=event)


def test_service_starts_and_stops_inside_an_application_multiservice():
    """The whole service runs as a child of an application's MultiService."""
    from twisted.application.service import MultiService

    clock = Clock()
    app = MultiService()
    sse = SSEService(Settings(listen=(), heartbeat=1), reactor=clock)
    sse.setServiceParent(app)
    app.startService()
    assert sse.running and clock.getDelayedCalls()
    app.stopService()
    assert not sse.running and not clock.getDelayedCalls()
