"""Absolute URLs that Twilio calls back: settings.PUBLIC_BASE_URL + the route (+ query).

Webhooks' signatures are checked against exactly this URL (jagcall/kernel/webhooks/),
so every URL handed to Twilio is built here.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.conf import settings
from django.urls import reverse


def public_url(name: str, **query) -> str:
    """``public_url("twilio-hooks:status")`` -> ``https://app.example.com/hooks/twilio/status/``; keyword
    arguments become the query string (``public_url("twilio-hooks:voice", call=call.id)``)."""
    url = settings.PUBLIC_BASE_URL.rstrip("/") + reverse(name)
    if query:
        url += "?" + urlencode({key: str(value) for key, value in query.items()})
    return url
