"""Verifying subscriber and publisher JWTs with PyJWT: which key, which algorithms, which claims.

The accepted algorithms follow from the key and are always passed to `jwt.decode`: a
PEM public key accepts only its own family (RS*/PS* for RSA, the ES* of its curve, EdDSA),
a secret only HS*. So `none` and the algorithm-confusion attack (an HS256 token "signed"
with the public key as a secret) are never accepted. `exp` is required; `nbf`, `aud` and
`iss` are checked when configured; 30 s of leeway at verification time.

Claims: `{"sse": {"subscribe": [patterns], "publish": [patterns]}}`, where a pattern is
a channel name in which `*` matches any run of characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from twisted_sse.core import ChannelPatterns

__all__ = ["Grants", "InvalidToken", "TokenVerifier", "load_key", "MAX_TOKEN_LENGTH", "LEEWAY"]

MAX_TOKEN_LENGTH = 8192
"""Longer credentials are refused before any decoding."""
LEEWAY = 30
"""Seconds of clock skew allowed for `exp` and `nbf` when a token is checked."""
MAX_PATTERNS = 256
"""Patterns one token may grant per action."""
MIN_SECRET_BYTES = 32
"""An HS256 secret shorter than 256 bits can be brute-forced offline from one token."""

_HMAC = ("HS256", "HS384", "HS512")
_RSA = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
_EC_BY_CURVE = {"secp256r1": ("ES256",), "secp384r1": ("ES384",), "secp521r1": ("ES512",)}


class InvalidToken(Exception):
    """The credential can't be used: the message says why (safe to show the client)."""


@dataclass(frozen=True)
class Grants:
    """What one verified token allows, and until when."""

    subscribe: ChannelPatterns
    publish: ChannelPatterns
    expires: float
    """The token's `exp`, in Unix seconds."""


def load_key(spec: str) -> tuple[Any, tuple[str, ...]]:
    """The verification key for `--jwt-key` and the algorithms it may verify.

    `@/path/key.pem`: a PEM public key (RSA, EC P-256/384/521, Ed25519, Ed448). Anything
    else: an HMAC secret of at least 32 bytes. ValueError says what is wrong.
    """
    if spec.startswith("@"):
        path = Path(spec[1:])
        try:
            data = path.read_bytes()
        except OSError as error:
            raise ValueError(f"can't read {path}: {error.strerror}") from None
        try:
            key = load_pem_public_key(data)
        except ValueError:
            raise ValueError(f"{path} holds no PEM public key (give the public key, never the private one)") from None
        if isinstance(key, rsa.RSAPublicKey):
            return key, _RSA
        if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in _EC_BY_CURVE:
            return key, _EC_BY_CURVE[key.curve.name]
        if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            return key, ("EdDSA",)
        raise ValueError(f"{path}: unsupported key type {type(key).__name__}")
    secret = spec.encode("utf-8")
    if b"-----BEGIN" in secret:
        raise ValueError("a PEM key goes in a file: --jwt-key @/path/key.pem")
    if len(secret) < MIN_SECRET_BYTES:
        raise ValueError(f"an HMAC secret needs at least {MIN_SECRET_BYTES} bytes")
    return secret, _HMAC


class TokenVerifier:
    """Checks tokens against one key; `verify` returns their grants or raises InvalidToken."""

    def __init__(
        self,
        key_spec: str,
        algorithms: Sequence[str] = (),
        audience: str | None = None,
        issuer: str | None = None,
    ) -> None:
        """ValueError for a bad key, or algorithms the key can't verify."""
        self._key, allowed = load_key(key_spec)
        if algorithms:
            wrong = [name for name in algorithms if name not in allowed]
            if wrong:
                raise ValueError(f"this key can't verify {', '.join(wrong)}; it takes {', '.join(allowed)}")
            allowed = tuple(algorithms)
        self.algorithms = allowed
        self._audience = audience
        self._issuer = issuer

    def verify(self, token: str) -> Grants:
        if len(token) > MAX_TOKEN_LENGTH:
            raise InvalidToken(f"the token is longer than {MAX_TOKEN_LENGTH} characters")
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=list(self.algorithms),
                audience=self._audience,
                issuer=self._issuer,
                leeway=LEEWAY,
                options={"require": ["exp"], "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise InvalidToken("the token is not valid yet") from None
        except jwt.InvalidTokenError as error:
            raise InvalidToken(f"the token is not valid: {error}") from None
        return Grants(_patterns(claims, "subscribe"), _patterns(claims, "publish"), float(claims["exp"]))


def _patterns(claims: dict[str, Any], action: str) -> ChannelPatterns:
    section = claims.get("sse", {})
    if not isinstance(section, dict):
        raise InvalidToken("the token's sse claim is not an object")
    patterns = section.get(action, [])
    if not isinstance(patterns, list) or len(patterns) > MAX_PATTERNS:
        raise InvalidToken(f"the token's sse.{action} is not a list of at most {MAX_PATTERNS} patterns")
    try:
        return ChannelPatterns(patterns)
    except ValueError as error:
        raise InvalidToken(f"the token's sse.{action}: {error}") from None
