"""`twistd sse` options: defaults, parsing into Settings, usage errors that name the option."""

import pytest
from twisted.python.usage import UsageError

from tests.options import no_sse_environment, parse  # noqa: F401 (the fixture applies here)
from twisted_sse.core._settings import RedisAddress, Settings
from twisted_sse.tap import Options


def test_defaults(monkeypatch):
    """With no options the daemon listens on tcp:8080 with the documented defaults."""
    monkeypatch.delenv("SSE_PUBLISH_TOKEN", raising=False)
    assert parse() == Settings()


def test_every_option_is_parsed(monkeypatch):
    """Each option reaches the service's settings."""
    monkeypatch.delenv("SSE_PUBLISH_TOKEN", raising=False)
    settings = parse(
        "--listen", "tcp:0:interface=127.0.0.1", "--listen", "unix:/tmp/sse.sock",
        "--prefix", "app:", "--heartbeat", "2.5", "--retry", "500", "--publish-token", "tok",
        "--cors-origin", "https://a.example", "--cors-origin", "*", "--max-message-size", "10",
        "--trusted-proxy", "10.0.0.0/8", "--trusted-proxy", "::1", "--max-resumes", "3",
        "--metrics", "--admin-listen", "tcp:9100:interface=127.0.0.1", "--redis", "redis://127.0.0.1:6380/2",
        "--publish-replicas", "2",
    )  # fmt: skip
    assert settings == Settings(
        listen=("tcp:0:interface=127.0.0.1", "unix:/tmp/sse.sock"),
        prefix="app:",
        heartbeat=2.5,
        retry_ms=500,
        publish_token="tok",
        cors_origins=("https://a.example", "*"),
        max_message_size=10,
        trusted_proxies=("10.0.0.0/8", "::1"),
        max_resumes=3,
        metrics=True,
        admin_listen="tcp:9100:interface=127.0.0.1",
        redis=RedisAddress(host="127.0.0.1", port=6380, db=2),
        publish_replicas=2,
    )


def test_token_from_environment(monkeypatch):
    """SSE_PUBLISH_TOKEN supplies the token so it stays out of ps; the option wins over it."""
    monkeypatch.setenv("SSE_PUBLISH_TOKEN", "from-env")
    assert parse().publish_token == "from-env"
    assert parse("--publish-token", "flag").publish_token == "flag"


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["--heartbeat", "soon"], "--heartbeat"),
        (["--heartbeat", "-1"], "--heartbeat"),
        (["--heartbeat", "nan"], "--heartbeat"),
        (["--heartbeat", "inf"], "--heartbeat"),
        (["--retry", "1.5"], "--retry"),
        (["--retry", "-3"], "--retry"),
        (["--max-message-size", "0"], "--max-message-size"),
        (["--listen", "tcp:notaport"], "--listen"),
        (["--listen", "carrier-pigeon:1"], "--listen"),
        (["--cors-origin", "app.example"], "--cors-origin"),
        (["--publish-token", "has space"], "--publish-token"),
        (["--trusted-proxy", "10.0.0.0/40"], "--trusted-proxy"),
        (["--jwt-key", "short"], "--jwt-key"),
        (["--jwt-key", "@/nonexistent.pem"], "--jwt-key"),
        (["--jwt-key", "k" * 32, "--jwt-algorithms", "RS256"], "--jwt-algorithms"),
        (["--jwt-key", "k" * 32, "--jwt-algorithms", "none"], "--jwt-algorithms"),
        (["--public", "news"], "--jwt-key"),
        (["--auth-url", "ftp://app"], "--auth-url"),
        (["--auth-url", "http://app/auth", "--jwt-key", "k" * 32], "--auth-url"),
        (["--auth-url", "http://app/auth", "--auth-timeout", "0"], "--auth-timeout"),
        (["--jwt-key", "k" * 32, "--public", "user.[0-9]"], "--public"),
        (["--jwt-key", "k" * 32, "--jwt-cookie", "a;b"], "--jwt-cookie"),
        (["--max-stream-age", "-1"], "--max-stream-age"),
        (["--max-streams-per-ip", "-1"], "--max-streams-per-ip"),
        (["--log-level", "chatty"], "--log-level"),
        (["--body-timeout", "0"], "--body-timeout"),
        (["--max-channels-per-ip", "many"], "--max-channels-per-ip"),
        (["--max-resumes", "0"], "--max-resumes"),
        (["--admin-listen", "tcp:notaport"], "--admin-listen"),
        (["--log-format", "xml"], "--log-format"),
        (["--publish-replicas", "1"], "--publish-replicas needs --redis"),
        (["--redis", "redis://127.0.0.1/0", "--publish-replicas", "-1"], "--publish-replicas"),
        (["--listen", "systemd:domain=INET:name=sse"], "start it from a systemd socket unit"),
    ],
)
def test_bad_values_are_usage_errors_naming_the_option(argv, option):
    """A bad value is a usage error that names its option."""
    with pytest.raises(UsageError, match=option):
        parse(*argv)


def test_plugin_is_a_lazy_declaration():
    """The plugin file names the tap module as a string and imports nothing of twisted_sse."""
    import ast
    import pathlib

    source = pathlib.Path(__file__).parent.parent / "twisted" / "plugins" / "sse_plugin.py"
    tree = ast.parse(source.read_text())
    imported = [node for node in ast.walk(tree) if isinstance(node, (ast.Import, ast.ImportFrom))]
    assert [getattr(node, "module", None) for node in imported] == ["twisted.application.service"]
    assert "twisted_sse.tap" in source.read_text()
    assert not (source.parent / "__init__.py").exists()


def test_jwt_options(monkeypatch):
    """The JWT options reach the settings; the key may come from SSE_JWT_KEY."""
    monkeypatch.setenv("SSE_JWT_KEY", "e" * 32)
    settings = parse("--jwt-algorithms", "HS256,HS512", "--jwt-audience", "sse", "--jwt-issuer", "app",
                     "--jwt-cookie", "tok", "--jwt-query", "--public", "news", "--public", "status.*",
                     "--max-stream-age", "600", "--max-streams-per-ip", "7", "--max-channels-per-ip", "0")  # fmt: skip
    assert (settings.jwt_key, settings.jwt_algorithms, settings.jwt_audience, settings.jwt_issuer) == (
        "e" * 32, ("HS256", "HS512"), "sse", "app")  # fmt: skip
    assert (settings.jwt_cookie, settings.jwt_query, settings.public) == ("tok", True, ("news", "status.*"))
    assert (settings.max_stream_age, settings.max_streams_per_ip, settings.max_channels_per_ip) == (600, 7, 0)


def test_every_option_can_come_from_the_environment_and_the_command_line_wins(monkeypatch):
    """SSE_<NAME>: parameters, repeatables separated by spaces, flags as 1/0; the command line overrides."""
    monkeypatch.setenv("SSE_MAX_QUEUE", "123456")
    monkeypatch.setenv("SSE_HEARTBEAT", "7")
    monkeypatch.setenv("SSE_CORS_ORIGIN", "https://a.example  https://b.example")
    monkeypatch.setenv("SSE_METRICS", "true")
    monkeypatch.setenv("SSE_REDIS_URL", "redis://127.0.0.1:6390/2")
    monkeypatch.setenv("SSE_SOMETHING_ELSE", "belongs to someone else")
    settings = parse("--heartbeat", "3")
    assert (settings.max_queue, settings.heartbeat, settings.metrics) == (123456, 3.0, True)
    assert settings.cors_origins == ("https://a.example", "https://b.example")
    assert settings.redis is not None and (settings.redis.port, settings.redis.db) == (6390, 2)
    assert parse("--cors-origin", "*").cors_origins == ("*",)
    monkeypatch.setenv("SSE_METRICS", "0")
    assert parse().metrics is False


@pytest.mark.parametrize(
    ("variable", "value", "named"),
    [("SSE_MAX_QUEUE", "lots", "--max-queue 'lots': not a whole number (from SSE_MAX_QUEUE)"),
     ("SSE_LISTEN", "tcp:notaport", "(from SSE_LISTEN)"),
     ("SSE_METRICS", "maybe", "SSE_METRICS='maybe': give 1 or 0")],
)  # fmt: skip
def test_a_bad_value_from_the_environment_is_a_usage_error_naming_the_variable(monkeypatch, variable, value, named):
    """The operator learns which variable to fix."""
    monkeypatch.setenv(variable, value)
    with pytest.raises(UsageError) as raised:
        parse()
    assert named in str(raised.value)


def test_help_says_options_come_from_the_environment():
    """--help explains the SSE_ names."""
    assert "SSE_MAX_QUEUE" in str(Options())
