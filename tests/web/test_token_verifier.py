"""TokenVerifier: PyJWT with the algorithms the key allows, exp required, grants as channel patterns."""

from __future__ import annotations

import base64
import json
import time
from unittest import mock

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

from twisted_sse.tokens import subscriber_token
from twisted_sse.web._token_verifier import LEEWAY, MAX_TOKEN_LENGTH, InvalidToken, TokenVerifier, load_key

SECRET = "s" * 32


def _token(claims: dict, key=SECRET, algorithm="HS256", headers=None) -> str:
    return jwt.encode(claims, key, algorithm=algorithm, headers=headers)


def _claims(**extra) -> dict:
    return {"exp": int(time.time()) + 600, "sse": {"subscribe": ["user.42", "news.*"], "publish": ["news"]}, **extra}


def _pem_pair(private):
    public = private.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


def test_valid_token_grants_its_patterns():
    """A well-signed token's sse.subscribe and sse.publish become channel patterns, with its exp."""
    claims = _claims()
    grants = TokenVerifier(SECRET).verify(_token(claims))
    assert grants.subscribe.matches("user.42") and grants.subscribe.matches("news.eu")
    assert not grants.subscribe.matches("user.4") and not grants.subscribe.matches("news")
    assert grants.publish.matches("news") and not grants.publish.matches("user.42")
    assert grants.expires == claims["exp"]


def test_algorithms_passed_to_pyjwt_follow_the_key():
    """jwt.decode always gets an explicit algorithm list: HS* for a secret, exactly the key's family for PEM."""
    with mock.patch("twisted_sse.web._token_verifier.jwt.decode", return_value=_claims()) as decode:
        TokenVerifier(SECRET).verify("x.y.z")
    assert decode.call_args.kwargs["algorithms"] == ["HS256", "HS384", "HS512"]
    assert decode.call_args.kwargs["options"]["require"] == ["exp"]
    assert decode.call_args.kwargs["leeway"] == LEEWAY


@pytest.mark.parametrize(
    ("private", "algorithms"),
    [
        (
            rsa.generate_private_key(public_exponent=65537, key_size=2048),
            ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512"),
        ),
        (ec.generate_private_key(ec.SECP256R1()), ("ES256",)),
        (ec.generate_private_key(ec.SECP384R1()), ("ES384",)),
        (ed25519.Ed25519PrivateKey.generate(), ("EdDSA",)),
    ],
)
def test_pem_public_keys_verify_their_own_family(tmp_path, private, algorithms):
    """A PEM public key verifies tokens signed by its private key, with only its family's algorithms."""
    private, public = _pem_pair(private)
    path = tmp_path / "key.pem"
    path.write_bytes(public)
    verifier = TokenVerifier(f"@{path}")
    assert verifier.algorithms == algorithms
    token = subscriber_token(private, subscribe=["a"], algorithm=algorithms[0])
    assert verifier.verify(token).subscribe.matches("a")


def test_algorithm_confusion_is_refused(tmp_path):
    """An HS256 token whose 'secret' is the server's public key is refused (the classic confusion)."""
    private, public = _pem_pair(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    path = tmp_path / "key.pem"
    path.write_bytes(public)
    header = base64.urlsafe_b64encode(json.dumps({"alg": "HS256", "typ": "JWT"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(_claims()).encode()).rstrip(b"=")
    import hashlib
    import hmac

    signature = base64.urlsafe_b64encode(hmac.new(public, header + b"." + body, hashlib.sha256).digest()).rstrip(b"=")
    forged = (header + b"." + body + b"." + signature).decode()
    with pytest.raises(InvalidToken):
        TokenVerifier(f"@{path}").verify(forged)


def test_alg_none_is_refused():
    """An unsigned token (alg none) is never accepted."""
    unsigned = jwt.encode(_claims(), None, algorithm="none")
    with pytest.raises(InvalidToken):
        TokenVerifier(SECRET).verify(unsigned)


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        (lambda: _token(_claims(), key="t" * 32), "not valid"),  # forged signature
        (lambda: _token({"sse": {"subscribe": ["a"]}}), "not valid"),  # no exp
        (lambda: _token(_claims(exp=int(time.time()) - LEEWAY - 5)), "expired"),
        (lambda: _token(_claims(nbf=int(time.time()) + LEEWAY + 60)), "not valid yet"),
        (lambda: _token(_claims(sse={"subscribe": ["user.[0-9]+"]})), "sse.subscribe"),
        (lambda: _token(_claims(sse={"subscribe": "user.42"})), "sse.subscribe"),
        (lambda: _token(_claims(sse=["user.42"])), "sse claim"),
        (lambda: "x" * (MAX_TOKEN_LENGTH + 1), "longer than"),
        (lambda: "not a token", "not valid"),
    ],
)
def test_bad_tokens_are_refused_with_a_reason(token, reason):
    """Forged, unexpiring, expired, premature, malformed and huge tokens are refused, saying why."""
    with pytest.raises(InvalidToken, match=reason):
        TokenVerifier(SECRET).verify(token())


def test_leeway_applies_at_verification():
    """A token that expired less than the leeway ago still verifies (clock skew)."""
    assert TokenVerifier(SECRET).verify(_token(_claims(exp=int(time.time()) - 5)))


def test_audience_and_issuer_when_configured():
    """--jwt-audience and --jwt-issuer refuse tokens for another audience or from another issuer."""
    verifier = TokenVerifier(SECRET, audience="sse", issuer="app")
    assert verifier.verify(_token(_claims(aud="sse", iss="app")))
    for wrong in (_claims(aud="other", iss="app"), _claims(aud="sse", iss="evil"), _claims()):
        with pytest.raises(InvalidToken):
            verifier.verify(_token(wrong))


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("short", "at least 32 bytes"),
        ("-----BEGIN PUBLIC KEY-----" + "x" * 40, "goes in a file"),
        ("@/nonexistent/key.pem", "can't read"),
    ],
)
def test_bad_keys_are_refused(spec, words):
    """Short secrets, inline PEM and unreadable files are refused at start."""
    with pytest.raises(ValueError, match=words):
        load_key(spec)


def test_private_key_file_is_refused(tmp_path):
    """A PEM private key given as the verification key is refused: the daemon holds public keys only."""
    private = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "private.pem"
    path.write_bytes(private.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    with pytest.raises(ValueError, match="no PEM public key"):
        load_key(f"@{path}")


def test_algorithms_can_only_narrow():
    """--jwt-algorithms narrows the key's list; an algorithm the key can't verify is refused."""
    assert TokenVerifier(SECRET, ["HS512"]).algorithms == ("HS512",)
    with pytest.raises(ValueError, match="can't verify RS256"):
        TokenVerifier(SECRET, ["RS256"])
    with pytest.raises(ValueError, match="can't verify none"):
        TokenVerifier(SECRET, ["none"])
    with pytest.raises(InvalidToken):
        TokenVerifier(SECRET, ["HS512"]).verify(_token(_claims()))  # signed HS256
