"""Who may listen to and publish on which channel.

With no `--jwt-key` every channel is public, as it always was. With one, channels are
private unless a `--public` pattern lists them, and a stream needs a token whose
`sse.subscribe` patterns (with the public ones) cover EVERY channel it names.

Where a subscriber's token comes from, in order: `Authorization: Bearer`, else the
cookie `--jwt-cookie` (EventSource can't send headers), else `?token=` with
`--jwt-query` (it leaks into proxy logs and Referer headers; twisted-sse never logs it).
A credential that is present but invalid is refused: it never falls through to the next
source, and it never counts as "no credential". Publishing with a token takes it from
`Authorization: Bearer` only: a cookie would make every page the user visits able to
publish as them (a `text/plain` POST needs no CORS preflight).
"""

from __future__ import annotations

import hmac
from collections.abc import Sequence

from twisted.internet.defer import Deferred
from twisted.python.failure import Failure
from twisted.web.server import Request

from twisted_sse.core import ChannelPatterns
from twisted_sse.web._auth_callback import AuthCallback, CallbackDenied
from twisted_sse.web._post_request import PostRequest
from twisted_sse.web._token_verifier import Grants, InvalidToken, TokenVerifier

__all__ = ["AccessPolicy", "Denied"]


class Denied(Exception):
    """A request that will never be allowed as it is: 401 (no or bad credential) or 403 (not allowed)."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.reason = "unauthenticated" if code == 401 else "forbidden"


def _denied(failure: Failure) -> Failure:
    denied = failure.check(CallbackDenied) and failure.value
    if isinstance(denied, CallbackDenied):
        return Failure(Denied(denied.code, str(denied)))
    return failure


def _bearer(request: PostRequest) -> str | None:
    """The Bearer credential, None without an Authorization header; Denied for another scheme."""
    header = request.getHeader(b"authorization")
    if header is None:
        return None
    scheme, _, credential = header.partition(b" ")
    if scheme.lower() != b"bearer" or not credential.strip():
        raise Denied(401, "use 'Authorization: Bearer TOKEN'")
    return credential.strip().decode("latin-1")


class AccessPolicy:
    """Decides stream and publish requests; `verifier` None means every channel is public."""

    def __init__(
        self,
        verifier: TokenVerifier | None,
        public: Sequence[str] = (),
        cookie: str = "sse_token",
        query: bool = False,
        callback: AuthCallback | None = None,
    ) -> None:
        """`callback` (instead of `verifier`): the application decides who may subscribe."""
        self._verifier = verifier
        self._callback = callback
        self._public = ChannelPatterns(public)
        self._cookie = cookie.encode("latin-1")
        self._query = query

    @property
    def private(self) -> bool:
        return self._verifier is not None or self._callback is not None

    def check_stream(
        self, request: Request, channels: Sequence[str], address: str
    ) -> float | None | Deferred[float | None]:
        """None when the stream may open with no end of its own; its credential's expiry when it may
        open until then; Denied otherwise. With the callback, a Deferred of the same (or failing with
        Denied, or CallbackUnavailable: a passing failure)."""
        if self._callback is not None:
            if self._public.covers(channels):
                return None
            return self._callback.check(request.requestHeaders, channels, address).addErrback(_denied)
        if self._verifier is None:
            return None
        token = self._subscriber_credential(request)
        if token is None:
            if self._public.covers(channels):
                return None
            raise Denied(401, "these channels are private: send a token (Authorization: Bearer, or the cookie)")
        grants = self._verify(token)
        refused = [c for c in channels if not (grants.subscribe.matches(c) or self._public.matches(c))]
        if refused:
            raise Denied(403, f"the token does not allow subscribing to {', '.join(refused[:5])}")
        return grants.expires

    def check_publish(self, request: PostRequest, channels: Sequence[str], publish_token: str) -> None:
        """Allowed by the static publish token, or by a token whose `sse.publish` covers every channel."""
        grants = self.check_publisher(request, publish_token)
        if grants is None:
            return
        refused = [channel for channel in channels if not grants.publish.matches(channel)]
        if refused:
            raise Denied(403, f"the token does not allow publishing to {', '.join(refused[:5])}")

    def check_publisher(self, request: PostRequest, publish_token: str) -> Grants | None:
        """The publisher's credential, before knowing the channels: None for the static publish token
        (every channel), a JWT's grants, or Denied (none, or not valid)."""
        credential = _bearer(request)
        if credential is None:
            raise Denied(401, "publishing needs an 'Authorization: Bearer TOKEN' header")
        if hmac.compare_digest(credential.encode("latin-1"), publish_token.encode("utf-8")):
            return None
        if self._verifier is None:
            raise Denied(403, "the publish token is not valid")
        return self._verify(credential, code=403)

    def _subscriber_credential(self, request: Request) -> str | None:
        bearer = _bearer(request)
        if bearer is not None:
            return bearer
        cookie = request.getCookie(self._cookie)
        if cookie is not None:
            return cookie.decode("latin-1")
        if self._query:
            values = request.args.get(b"token")
            if values:
                return values[0].decode("latin-1")
        return None

    def _verify(self, token: str, code: int = 401) -> Grants:
        assert self._verifier is not None
        try:
            return self._verifier.verify(token)
        except InvalidToken as error:
            raise Denied(code, str(error)) from None
