"""Cloudflare Turnstile: server-side verification of the registration widget's token.

Turnstile has no Python SDK, so this is a plain HTTPS POST to siteverify with
the standard library. The rules (SECURITY.md, "Turnstile CAPTCHA on
registration"):

- an empty or over-long token is refused without calling out;
- any network error, timeout, non-200 status, non-JSON reply or reply without
  ``success`` refuses the token (fail closed, code ``unavailable``);
- ``success: false`` is mapped from Cloudflare's error codes
  (``timeout-or-duplicate`` -> ``expired_or_reused``);
- on ``success: true`` the ``action``, the ``hostname`` and the age of
  ``challenge_ts`` (at most 300 s) are checked here as well;
- a local replay guard remembers SHA-256(token) in the cache for 300 s, so a
  token is accepted at most once even if siteverify said yes twice.

A wrong or missing secret is our configuration, not the registrant's doing: it
is refused as ``unavailable`` and logged as an error so it gets noticed.
Neither the secret nor the token is ever logged.

Callers check ``settings.TURNSTILE_ENABLED`` first; calling this while it is
off raises ``ImproperlyConfigured``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import urllib.error
import urllib.parse
import urllib.request
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.http.request import validate_host
from django.utils import timezone

from jagcall.kernel.errors import ApplicationError

logger = logging.getLogger(__name__)

TOKEN_MAX_LENGTH = 2048
TOKEN_MAX_AGE = timedelta(seconds=300)
REPLAY_GUARD_SECONDS = 300
REPLAY_CACHE_PREFIX = "turnstile:spent:"
RESPONSE_MAX_BYTES = 64 * 1024
LOOPBACK_HOSTS = {"127.0.0.1", "localhost", "::1"}

# Why a token was refused (TurnstileRejected.code).
MISSING = "missing"
INVALID = "invalid"
EXPIRED_OR_REUSED = "expired_or_reused"
WRONG_ACTION = "wrong_action"
WRONG_HOSTNAME = "wrong_hostname"
UNAVAILABLE = "unavailable"
CODES = (MISSING, INVALID, EXPIRED_OR_REUSED, WRONG_ACTION, WRONG_HOSTNAME, UNAVAILABLE)

# siteverify error codes that mean "we could not check", not "the token is bad".
_OUR_SIDE_ERRORS = {"missing-input-secret", "invalid-input-secret", "bad-request", "internal-error"}
_SECRET_ERRORS = {"missing-input-secret", "invalid-input-secret"}


class TurnstileRejected(ApplicationError):
    """The token was not accepted; ``code`` says why (one of CODES), the message is for the registrant."""

    MESSAGE = "The anti-robot check failed or expired. Please complete it again."

    def __init__(self, code: str, *, error_codes: tuple[str, ...] = ()):
        super().__init__(self.MESSAGE, code=code, status=400)
        self.error_codes = error_codes  # what siteverify said, for logs and tests


@dataclass(frozen=True)
class TurnstileResult:
    challenge_ts: datetime
    hostname: str
    action: str


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """siteverify never redirects; a redirect is treated as an unusable reply."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(_NoRedirect)


def turnstile_verify(
    *, token: str, remote_ip: str | None, action: str, hostnames: list[str] | None = None
) -> TurnstileResult:
    """Verify a widget token for ``action``; return what Cloudflare vouched for or raise TurnstileRejected.

    ``hostnames`` are the page hostnames the widget may run on (entries as in
    ALLOWED_HOSTS: exact names, ``.example.com`` for a domain and its
    subdomains, ``*`` for any); by default settings.ALLOWED_HOSTS.
    """
    verify_url, secret, timeout = _configuration()

    if not isinstance(token, str) or not token.strip():
        raise TurnstileRejected(MISSING)
    if len(token) > TOKEN_MAX_LENGTH:
        raise TurnstileRejected(INVALID)

    reply = _siteverify(verify_url, secret, timeout, token=token, remote_ip=remote_ip)

    if reply["success"] is not True:
        raise _rejection_for(reply)

    if reply.get("action") != action:
        logger.warning("Turnstile token refused: made for another action (expected %r).", action)
        raise TurnstileRejected(WRONG_ACTION)

    hostname = reply.get("hostname")
    if not isinstance(hostname, str) or not _hostname_allowed(hostname, hostnames):
        logger.warning("Turnstile token refused: solved on hostname %r, which is not allowed.", hostname)
        raise TurnstileRejected(WRONG_HOSTNAME)

    challenge_ts = _parse_timestamp(reply.get("challenge_ts"))
    if challenge_ts is None:
        logger.warning("Turnstile siteverify reply has no usable challenge_ts; refusing (fail closed).")
        raise TurnstileRejected(UNAVAILABLE)
    if timezone.now() - challenge_ts > TOKEN_MAX_AGE:
        logger.warning("Turnstile token refused: challenge solved more than 300 s ago.")
        raise TurnstileRejected(EXPIRED_OR_REUSED)

    _remember_or_refuse(token)
    return TurnstileResult(challenge_ts=challenge_ts, hostname=hostname, action=action)


def _configuration() -> tuple[str, str, float]:
    if not getattr(settings, "TURNSTILE_ENABLED", False):
        raise ImproperlyConfigured(
            "turnstile_verify() called while TURNSTILE_ENABLED is off; callers must check the setting first."
        )
    secret = settings.TURNSTILE_SECRET_KEY
    if not secret:
        raise ImproperlyConfigured("TURNSTILE_SECRET_KEY is empty while TURNSTILE_ENABLED is on.")
    verify_url = settings.TURNSTILE_VERIFY_URL
    parts = urllib.parse.urlsplit(verify_url)
    loopback = (parts.hostname or "") in LOOPBACK_HOSTS
    if parts.scheme != "https" and not (parts.scheme == "http" and loopback):
        raise ImproperlyConfigured("TURNSTILE_VERIFY_URL must be https (plain http only on a loopback address).")
    return verify_url, secret, float(settings.TURNSTILE_TIMEOUT_SECONDS)


def _siteverify(verify_url: str, secret: str, timeout: float, *, token: str, remote_ip: str | None) -> dict:
    fields = {"secret": secret, "response": token, "idempotency_key": str(uuid.uuid4())}
    if remote_ip:
        fields["remoteip"] = remote_ip
    request = urllib.request.Request(
        verify_url,
        data=urllib.parse.urlencode(fields).encode("ascii"),
        headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
            "User-Agent": "JagCall-Turnstile/1",
        },
        method="POST",
    )
    try:
        with _opener.open(request, timeout=timeout) as response:
            status = response.status
            body = response.read(RESPONSE_MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        exc.close()
        logger.warning("Turnstile siteverify answered HTTP %s; refusing the token (fail closed).", exc.code)
        raise TurnstileRejected(UNAVAILABLE) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        # URLError wraps connection errors; TimeoutError and socket errors are OSError.
        reason = getattr(exc, "reason", None) or type(exc).__name__
        logger.warning("Turnstile siteverify unreachable (%s); refusing the token (fail closed).", reason)
        raise TurnstileRejected(UNAVAILABLE) from None

    if status != 200:
        logger.warning("Turnstile siteverify answered HTTP %s; refusing the token (fail closed).", status)
        raise TurnstileRejected(UNAVAILABLE)
    if len(body) > RESPONSE_MAX_BYTES:
        logger.warning("Turnstile siteverify reply is too large; refusing the token (fail closed).")
        raise TurnstileRejected(UNAVAILABLE)
    try:
        reply = json.loads(body)
    except (UnicodeDecodeError, ValueError):
        logger.warning("Turnstile siteverify reply is not JSON; refusing the token (fail closed).")
        raise TurnstileRejected(UNAVAILABLE) from None
    if not isinstance(reply, dict) or not isinstance(reply.get("success"), bool):
        logger.warning("Turnstile siteverify reply has no boolean 'success'; refusing the token (fail closed).")
        raise TurnstileRejected(UNAVAILABLE)
    return reply


def _rejection_for(reply: dict) -> TurnstileRejected:
    raw = reply.get("error-codes")
    error_codes = tuple(str(code) for code in raw) if isinstance(raw, list) else ()
    if _SECRET_ERRORS.intersection(error_codes):
        logger.error("Turnstile siteverify refused our secret key (%s): check TURNSTILE_SECRET_KEY.", error_codes)
        return TurnstileRejected(UNAVAILABLE, error_codes=error_codes)
    if _OUR_SIDE_ERRORS.intersection(error_codes):
        logger.warning("Turnstile siteverify could not check the token (%s); refusing (fail closed).", error_codes)
        return TurnstileRejected(UNAVAILABLE, error_codes=error_codes)
    logger.info("Turnstile token refused by siteverify (%s).", error_codes)
    if "timeout-or-duplicate" in error_codes:
        return TurnstileRejected(EXPIRED_OR_REUSED, error_codes=error_codes)
    if "missing-input-response" in error_codes:
        return TurnstileRejected(MISSING, error_codes=error_codes)
    return TurnstileRejected(INVALID, error_codes=error_codes)


def _allowed_host_patterns(hostnames: list[str] | None) -> list[str]:
    """ALLOWED_HOSTS-style patterns, lower-case and without ports."""
    source = settings.ALLOWED_HOSTS if hostnames is None else hostnames
    patterns = []
    for entry in source:
        entry = entry.strip().lower()
        if entry.startswith("["):  # [::1] or [::1]:8000
            entry = entry[: entry.find("]") + 1] if "]" in entry else entry
        elif entry.count(":") == 1:  # host:port
            entry = entry.split(":", 1)[0]
        if entry:
            patterns.append(entry)
    return patterns


def _hostname_allowed(hostname: str, hostnames: list[str] | None) -> bool:
    patterns = _allowed_host_patterns(hostnames)
    hostname = hostname.strip().lower().rstrip(".")
    if not hostname:
        return "*" in patterns
    if ":" in hostname and not hostname.startswith("["):
        return validate_host(hostname, patterns) or validate_host(f"[{hostname}]", patterns)  # bare IPv6
    return validate_host(hostname, patterns)


def _parse_timestamp(value) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    if timezone.is_naive(parsed):
        return None
    return parsed


def _remember_or_refuse(token: str) -> None:
    """The local replay guard: the first caller to record the token wins, any later one is refused."""
    key = REPLAY_CACHE_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()
    try:
        first_use = cache.add(key, 1, timeout=REPLAY_GUARD_SECONDS)
    except Exception as exc:  # the cache is down: the guard cannot be applied, so fail closed
        logger.warning("Turnstile replay guard unavailable (%s); refusing the token (fail closed).", type(exc).__name__)
        raise TurnstileRejected(UNAVAILABLE) from None
    if not first_use:
        logger.warning("Turnstile token refused: already used here (local replay guard).")
        raise TurnstileRejected(EXPIRED_OR_REUSED)
