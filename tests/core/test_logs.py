"""--log-level: twisted-sse's lines below the level are dropped before they are formatted."""

import pytest

from twisted_sse.core._logs import Logger, set_level


@pytest.fixture(autouse=True)
def _restore_level():
    yield
    set_level("info")


def _emitted(level: str) -> list[str]:
    seen: list[dict] = []
    log = Logger(observer=seen.append)
    set_level(level)
    log.debug("d")
    log.info("i")
    log.warn("w")
    log.error("e")
    return [event["log_format"] for event in seen]


def test_levels():
    """Each level lets through itself and what is more important; info is the default."""
    assert _emitted("debug") == ["d", "i", "w", "e"]
    assert _emitted("info") == ["i", "w", "e"]
    assert _emitted("warn") == ["w", "e"]
    assert _emitted("error") == ["e"]


def test_unknown_level_is_refused():
    with pytest.raises(ValueError, match="use one of"):
        set_level("verbose")
