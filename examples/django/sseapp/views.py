"""The four views an app needs: a page, the token cookie, publishing, and the auth callback."""

import json
from functools import lru_cache

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.http import HttpResponseNotAllowed, JsonResponse
from django.shortcuts import render

from twisted_sse.publish import Publisher
from twisted_sse.tokens import COOKIE_ATTRIBUTES, subscriber_token

TOKEN_TTL = 3600


@lru_cache(maxsize=1)
def _publisher() -> Publisher:
    return Publisher(settings.SSE_REDIS_URL)


def _channel(user) -> str:
    return f"user.{user.id}"


@login_required
def page(request):
    """A page that streams the user's own channel (and sets the token cookie first)."""
    return render(request, "page.html", {"channel": _channel(request.user), "sse_url": settings.SSE_URL})


@login_required
def sse_cookie(request):
    """Cookie-token mode: a token for the user's channel, in an HttpOnly cookie the daemon reads."""
    token = subscriber_token(settings.SSE_JWT_KEY, subscribe=[_channel(request.user), "news"], ttl=TOKEN_TTL)
    response = JsonResponse({"channel": _channel(request.user)})
    attributes = {**COOKIE_ATTRIBUTES, "secure": not settings.DEBUG}  # plain http while developing
    response.set_cookie("sse_token", token, max_age=TOKEN_TTL, **attributes)
    return response


@login_required
def notify(request):
    """Publish a durable event to the user's channel through Redis."""
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    text = request.POST.get("text", "")
    event_id = _publisher().publish(_channel(request.user), json.dumps({"text": text}))
    return JsonResponse({"id": event_id})


def sse_auth(request):
    """Callback mode (--auth-url): twisted-sse forwards the browser's cookies; allow the user's own channel."""
    if not request.user.is_authenticated:
        return JsonResponse({"error": "log in first"}, status=401)
    return JsonResponse({"channels": [_channel(request.user), "news"]})
