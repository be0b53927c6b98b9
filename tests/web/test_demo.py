"""The demo page's files: served only with --demo, self-contained, under a strict Content-Security-Policy."""

import re

from tests.http_harness import Harness


def test_without_demo_the_root_is_not_a_page():
    """The daemon's root stays a 404 unless --demo asks for the page."""
    assert Harness().request("GET", "/").status == 404


def test_the_page_its_script_and_its_style_come_with_a_strict_csp():
    """Every file is served from here with a CSP that allows nothing from elsewhere, and no inline code."""
    harness = Harness(demo=True)
    page = harness.request("GET", "/")
    assert page.status == 200 and page.headers["content-type"].startswith("text/html")
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    html = page.body.decode()
    assert re.findall(r'<script src="([^"]+)"', html) == ["demo.js"] and "<style" not in html
    assert not re.search(r"<script>|\son\w+=|https?://", html)  # no inline script, handler or outside resource
    for path, kind in (("/demo.js", "text/javascript"), ("/demo.css", "text/css")):
        response = harness.request("GET", path)
        assert response.status == 200 and response.headers["content-type"].startswith(kind)
        assert "http://" not in response.body.decode() and "https://" not in response.body.decode()


def test_the_page_puts_event_text_on_the_page_as_text_only():
    """Event data comes from publishers: the script never hands it to innerHTML."""
    script = Harness(demo=True).request("GET", "/demo.js").body.decode()
    assert "innerHTML" not in script and "textContent" in script
