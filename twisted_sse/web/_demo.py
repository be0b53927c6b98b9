"""`--demo`: a page at `/` to watch streams work: subscribe, publish, see reconnects, resumes and `sse-lost`.

Three files shipped in the package (web/demo/), served as they are: no external resource,
no inline script or style, so they work offline and under the strict Content-Security-Policy
they are sent with. The page talks to the service with relative URLs (`events?channel=...`),
so it works wherever the resource is mounted.
"""

from __future__ import annotations

from importlib import resources

from twisted.web.resource import Resource
from twisted.web.server import Request

__all__ = ["add_demo"]

CONTENT_SECURITY_POLICY = (
    b"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; "
    b"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
_FILES = {
    b"": ("index.html", b"text/html; charset=utf-8"),
    b"demo.js": ("demo.js", b"text/javascript; charset=utf-8"),
    b"demo.css": ("demo.css", b"text/css; charset=utf-8"),
}


class _File(Resource):
    isLeaf = True

    def __init__(self, body: bytes, content_type: bytes) -> None:
        super().__init__()
        self._body = body
        self._type = content_type

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"content-type", self._type)
        request.setHeader(b"content-security-policy", CONTENT_SECURITY_POLICY)
        request.setHeader(b"x-content-type-options", b"nosniff")
        request.setHeader(b"cache-control", b"no-cache")
        return self._body

    render_HEAD = render_GET


def add_demo(root: Resource) -> None:
    """Serve the demo page at `root`'s `/` (with its script and style next to it)."""
    folder = resources.files("twisted_sse.web") / "demo"
    for path, (name, content_type) in _FILES.items():
        root.putChild(path, _File((folder / name).read_bytes(), content_type))
