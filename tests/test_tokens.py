"""Minting tokens: the helper an application calls, and the sse-token command."""

import subprocess
import sys

import jwt
import pytest

from testbed import REPO, source_env
from twisted_sse.tokens import COOKIE_ATTRIBUTES, subscriber_token
from twisted_sse.web._token_verifier import TokenVerifier

SECRET = "m" * 32


def test_minted_token_verifies_with_its_grants():
    """subscriber_token's grants, ttl and extra claims are what the daemon's verifier reads."""
    token = subscriber_token(SECRET, subscribe=["user.42"], publish=["news"], ttl=60, sub="42", aud="sse")
    grants = TokenVerifier(SECRET, audience="sse").verify(token)
    assert grants.subscribe.matches("user.42") and grants.publish.matches("news")
    claims = jwt.decode(token, SECRET, algorithms=["HS256"], audience="sse")
    assert claims["exp"] - claims["iat"] == 60 and claims["sub"] == "42"


def test_bad_patterns_are_refused_when_minting():
    """The helper refuses what the daemon would refuse."""
    with pytest.raises(ValueError):
        subscriber_token(SECRET, subscribe=["user.[0-9]"])


def test_cookie_attributes_keep_the_token_from_scripts_and_other_sites():
    """HttpOnly, Secure and SameSite=Lax."""
    assert COOKIE_ATTRIBUTES == {"httponly": True, "secure": True, "samesite": "Lax"}


def test_sse_token_command():
    """`sse-token` prints a token the daemon accepts; without a key it is a usage error."""
    command = [sys.executable, "-c", "from twisted_sse.tokens import main; raise SystemExit(main())"]
    out = subprocess.run([*command, "--key", SECRET, "--subscribe", "a.*", "--ttl", "30"], capture_output=True,
                         text=True, env=source_env(), cwd=REPO, check=True)  # fmt: skip
    assert TokenVerifier(SECRET).verify(out.stdout.strip()).subscribe.matches("a.b")
    env = {k: v for k, v in source_env().items() if k != "SSE_JWT_KEY"}
    failed = subprocess.run(command, capture_output=True, text=True, env=env, cwd=REPO)
    assert failed.returncode == 2 and "--key" in failed.stderr
