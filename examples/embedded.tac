# An existing Twisted application that embeds twisted-sse:
#   - mounts the SSE resource at /sse/ under its own Site,
#   - publishes in-process (a tick every second),
#   - runs the SSE service as a child of its own application.
# Run it:  twistd -ny examples/embedded.tac   then open http://127.0.0.1:8080/
import os
import time

from twisted.application import service, strports
from twisted.application.internet import TimerService
from twisted.web.resource import Resource
from twisted.web.server import Site
from twisted.web.static import Data

from twisted_sse import Settings, SSEService, parse_redis_url

port = os.environ.get("SSE_EXAMPLE_PORT", "8080")
redis_url = os.environ.get("SSE_REDIS_URL")  # unset: the in-process broker
application = service.Application("embedded-sse-example")

# No listener of its own: the application's Site serves it.
sse = SSEService(Settings(listen=(), redis=parse_redis_url(redis_url) if redis_url else None))
sse.setServiceParent(application)

PAGE = b"""<!doctype html><meta charset="utf-8"><title>ticks</title>
<pre id="log"></pre>
<script>
const log = document.getElementById("log");
const source = new EventSource("/sse/events/ticks");
source.addEventListener("tick", (e) => { log.textContent = "tick " + e.data + "\\n" + log.textContent; });
</script>
"""

root = Resource()
root.putChild(b"", Data(PAGE, "text/html; charset=utf-8"))
root.putChild(b"sse", sse.resource)
strports.service(f"tcp:{port}:interface=127.0.0.1", Site(root)).setServiceParent(application)


def tick():
    sse.publish("ticks", str(int(time.time())), event="tick")


TimerService(1.0, tick).setServiceParent(application)
