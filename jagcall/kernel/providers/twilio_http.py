"""Twilio's HTTP client, pointed at a base URL (twilio 9.x has no base-URL option)."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

from requests.adapters import HTTPAdapter
from twilio.http.http_client import TwilioHttpClient
from twilio.http.response import Response


class BaseUrlTwilioHttpClient(TwilioHttpClient):
    """Sends every request for ``https://*.twilio.com`` to ``base_url`` instead, keeping path and query.

    With ``base_url`` None it is Twilio's own client with our timeout and retries.
    ``max_retries`` retries failed connections only (requests' adapter retries, reads
    are not retried), for plain-http stand-ins as well as https.
    """

    def __init__(self, *, base_url: str | None, timeout: float, max_retries: int) -> None:
        super().__init__(timeout=timeout, max_retries=max_retries)
        self.base_url = base_url.rstrip("/") if base_url else None
        if self.session is not None:
            pool_size = min(32, (os.cpu_count() or 1) + 4)
            self.session.mount("http://", HTTPAdapter(max_retries=max_retries, pool_maxsize=pool_size))

    def rewrite(self, url: str) -> str:
        if not self.base_url:
            return url
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
        if parts.scheme != "https" or not (host == "twilio.com" or host.endswith(".twilio.com")):
            return url  # e.g. a recording's media URL already on the stand-in
        base = urlsplit(self.base_url)
        return urlunsplit((base.scheme, base.netloc, base.path + parts.path, parts.query, parts.fragment))

    def request(self, method, url, params=None, data=None, headers=None, auth=None, timeout=None,
                allow_redirects=False) -> Response:
        return super().request(
            method, self.rewrite(url), params=params, data=data, headers=headers, auth=auth, timeout=timeout,
            allow_redirects=allow_redirects,
        )
