"""The recipe twisted-sse replaces, as a baseline: one Redis pub/sub connection per client.

A threaded HTTP server whose stream handler subscribes its own redis-py connection and
iterates `pubsub.listen()`, as Django/Flask SSE views commonly do. It notices a client
that left only when a write fails. Durable envelopes are unwrapped so that clients see
the same data as from twisted-sse.

    python benchmarks/baseline_server.py PORT REDIS_URL
"""

import resource
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import redis

PORT, URL = int(sys.argv[1]), sys.argv[2]
# Two descriptors per client (its socket and its Redis connection): as many as allowed.
_, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
try:
    resource.setrlimit(resource.RLIMIT_NOFILE, (65536, 65536))  # root may go past the hard limit
except (ValueError, OSError):
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        if self.path == "/healthz":
            self.send_response(200)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")
            return
        channel = self.path.rsplit("/", 1)[-1]
        pubsub = redis.Redis.from_url(URL).pubsub(ignore_subscribe_messages=True)
        pubsub.subscribe("sse:" + channel, "sse:#events:" + channel)  # raw payloads, durable envelopes
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        try:
            self.wfile.write(b"retry: 3000\n\n")
            self.wfile.flush()
            for message in pubsub.listen():
                data = message["data"]
                if message["channel"].startswith(b"sse:#events:"):
                    data = data.split(b"\n", 1)[1]
                self.wfile.write(b"data: " + data + b"\n\n")
                self.wfile.flush()
        except OSError:
            pass
        finally:
            pubsub.close()


class Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 4096


Server(("127.0.0.1", PORT), Handler).serve_forever()
