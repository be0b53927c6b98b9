"""The HTTP edge: the resource and its streams, the one writer, the site and its limits, auth.

`SSEResource` is what an application mounts; `SSESite` is the `Site` that `twistd sse`
serves it with (header and body deadlines, pending-connection bound, HTTP/2 by ALPN).
"""

from twisted_sse.web._access import AccessPolicy, Denied
from twisted_sse.web._auth_callback import AuthCallback, CallbackDenied, CallbackUnavailable, make_agent
from twisted_sse.web._client_address import TrustedProxies, check_cidrs
from twisted_sse.web._demo import add_demo
from twisted_sse.web._heartbeat import Heartbeat
from twisted_sse.web._lifetimes import Lifetimes
from twisted_sse.web._metrics import MetricsPage, SSECollector
from twisted_sse.web._resource import SSEResource
from twisted_sse.web._site import SSESite
from twisted_sse.web._token_verifier import Grants, InvalidToken, TokenVerifier

__all__ = [
    "AccessPolicy",
    "Denied",
    "AuthCallback",
    "CallbackDenied",
    "CallbackUnavailable",
    "make_agent",
    "TrustedProxies",
    "check_cidrs",
    "Heartbeat",
    "Lifetimes",
    "SSEResource",
    "SSESite",
    "Grants",
    "InvalidToken",
    "TokenVerifier",
    "MetricsPage",
    "SSECollector",
    "add_demo",
]
