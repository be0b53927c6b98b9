"""The demo page in headless Chromium: subscribe from the URL, publish with the form, survive a daemon restart."""

import os
import shutil

import pytest

from testbed import Daemon, RedisServer, free_port, wait_until
from twisted_sse.publish import Publisher

CHROMEDRIVER = shutil.which("chromedriver")
# .ci/run installs Debian's chromium and chromium-driver; on CI their absence is a failure, not a skip.
pytestmark = pytest.mark.skipif(
    CHROMEDRIVER is None and not os.environ.get("CI"), reason="apt-get install chromium-driver"
)


@pytest.fixture
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1100,800"):
        options.add_argument(argument)
    options.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    yield driver
    driver.quit()


def _rows(driver):
    from selenium.webdriver.common.by import By

    rows = []
    for tr in driver.find_elements(By.CSS_SELECTOR, "#event-rows tr:not(.note)"):
        cells = [td.text for td in tr.find_elements(By.TAG_NAME, "td")]
        rows.append((cells[1], cells[2], cells[3]))  # id, type, data
    return list(reversed(rows))  # the page shows the newest first


def _text(driver, element_id):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.ID, element_id).text


def _publish(driver, data, event_type=""):
    from selenium.webdriver.common.by import By

    for element_id, value in (("publish-type", event_type), ("publish-data", data)):
        field = driver.find_element(By.ID, element_id)
        field.clear()
        field.send_keys(value)
    driver.find_element(By.CSS_SELECTOR, "#publish button[type=submit]").click()
    wait_until(lambda: _text(driver, "publish-result").startswith(("published", "4", "5", "failed")), timeout=10)
    return _text(driver, "publish-result")


def test_the_page_subscribes_publishes_and_resumes_across_a_daemon_restart_without_a_gap(tmp_path, browser):
    """Open /?channel=news, publish through the form and see the event with its id and type; restart the daemon
    (on Redis) while an event is published: the page reconnects, resumes, and shows every event once, in order."""
    from selenium.webdriver.common.by import By

    redis = RedisServer(tmp_path)
    port = free_port()
    args = ("--demo", "--publish-token", "s3cret", "--retry", "200")
    daemon = Daemon(tmp_path, *args, redis_url=redis.url, port=port)
    try:
        browser.get(f"http://127.0.0.1:{port}/?channel=news")
        wait_until(lambda: _text(browser, "status").startswith("open"), timeout=10)
        browser.find_element(By.ID, "token").send_keys("s3cret")
        assert _publish(browser, "hello from the form", "headline").startswith("published, id ")
        wait_until(lambda: len(_rows(browser)) == 1, timeout=10)
        [(first_id, kind, data)] = _rows(browser)
        assert (kind, data) == ("headline", "hello from the form") and _text(browser, "last-id") == first_id
        browser.save_screenshot(str(tmp_path / "demo.png"))

        daemon.stop()
        Publisher(redis.url).publish("news", "while the daemon was down")
        daemon = Daemon(tmp_path, *args, redis_url=redis.url, port=port)
        wait_until(lambda: _text(browser, "status").startswith("open") and int(_text(browser, "reconnects")) >= 1,
                   timeout=20)  # fmt: skip
        assert _publish(browser, "after the restart").startswith("published")
        wait_until(lambda: len(_rows(browser)) == 3, timeout=10)
        assert [(kind, data) for _, kind, data in _rows(browser)] == [
            ("headline", "hello from the form"), ("message", "while the daemon was down"),
            ("message", "after the restart"),
        ]  # fmt: skip
        ids = [event_id for event_id, _, _ in _rows(browser)]
        assert ids == sorted(ids, key=lambda i: tuple(map(int, i.split("-")))) and len(set(ids)) == 3
        notes = [tr.text for tr in browser.find_elements(By.CSS_SELECTOR, "#event-rows tr.note")]
        assert any(f"resuming after {first_id}" in note for note in notes)
        errors = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"
                  and "Content Security Policy" in entry["message"]]  # fmt: skip
        assert errors == []
    finally:
        daemon.stop()
        redis.stop()
