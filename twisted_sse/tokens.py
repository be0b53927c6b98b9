"""Minting tokens for twisted-sse from an application (a Django or Flask view) or a script.

    from twisted_sse.tokens import subscriber_token, COOKIE_ATTRIBUTES
    token = subscriber_token(settings.SSE_JWT_SECRET, subscribe=[f"user.{user.id}", "news"], ttl=3600)
    response.set_cookie("sse_token", token, max_age=3600, **COOKIE_ATTRIBUTES)  # Django

On the command line: `sse-token --key SECRET --subscribe 'user.42' --ttl 600`.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jwt

from twisted_sse.core import valid_pattern

__all__ = ["subscriber_token", "COOKIE_ATTRIBUTES", "main"]

COOKIE_ATTRIBUTES = {"httponly": True, "secure": True, "samesite": "Lax"}
"""How to set the token cookie (Django's `set_cookie` keywords): not readable by page
scripts, HTTPS only, and not sent on cross-site subrequests."""


def subscriber_token(
    key: str | bytes,
    subscribe: Sequence[str] = (),
    publish: Sequence[str] = (),
    ttl: float = 3600,
    algorithm: str | None = None,
    **claims: Any,
) -> str:
    """A signed JWT granting `subscribe` and `publish` channel patterns for `ttl` seconds.

    `key`: the HMAC secret the daemon's `--jwt-key` holds, or a PEM private key (then
    give `algorithm`, e.g. "RS256" or "EdDSA"). Extra `claims` (`aud`, `iss`, `sub`, ...)
    are added as they are.
    """
    for pattern in (*subscribe, *publish):
        if not valid_pattern(pattern):
            raise ValueError(f"not a channel pattern: {pattern!r} (channel characters, * for any run)")
    now = int(time.time())
    payload = {
        **claims,
        "iat": now,
        "exp": now + int(ttl),
        "sse": {"subscribe": list(subscribe), "publish": list(publish)},
    }
    return jwt.encode(payload, key, algorithm=algorithm or "HS256")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="sse-token", description="Mint a token for twisted-sse.")
    parser.add_argument("--key", help="HMAC secret, or @/path/private.pem (default: env SSE_JWT_KEY)")
    parser.add_argument("--algorithm", help="for a PEM key: RS256, ES256, EdDSA, ... (default: HS256)")
    parser.add_argument("--subscribe", action="append", default=[], metavar="PATTERN", help="repeatable")
    parser.add_argument("--publish", action="append", default=[], metavar="PATTERN", help="repeatable")
    parser.add_argument("--ttl", type=float, default=3600, help="seconds until it expires (default 3600)")
    parser.add_argument("--audience", help="the aud claim")
    parser.add_argument("--issuer", help="the iss claim")
    args = parser.parse_args(argv)
    spec = args.key or os.environ.get("SSE_JWT_KEY")
    if not spec:
        parser.error("give --key or set SSE_JWT_KEY")
    key: str | bytes = Path(spec[1:]).read_bytes() if spec.startswith("@") else spec
    claims = {name: value for name, value in (("aud", args.audience), ("iss", args.issuer)) if value}
    try:
        token = subscriber_token(key, args.subscribe, args.publish, args.ttl, args.algorithm, **claims)
    except (ValueError, TypeError, jwt.PyJWTError) as error:
        parser.error(str(error))
    sys.stdout.write(token + "\n")
    return 0
