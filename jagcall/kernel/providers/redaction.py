"""Keeping provider secrets out of messages and logs.

``redact(text)`` removes, in this order: every secret the settings hold (each
``*_API_KEY``, ``TWILIO_AUTH_TOKEN``, ``TWILIO_API_KEY_SECRET``, and the other
``*_SECRET``, ``*_TOKEN``, ``*_PASSWORD``, ``*_SIGNING_KEY`` values, SECRET_KEY
and its fallbacks), every secret handed to a client builder
(``register_secret``), then anything shaped like a key or a token: ``sk-...`` /
``sk_...`` keys, long hex strings (a Twilio auth token is 32 hex digits; a
Twilio SID such as ``AC`` + 32 hex is an identifier and stays), long mixed
letter-and-digit strings, JWTs, ``Bearer``/``Token``/``Basic`` credentials, the
value after ``api_key=``/``token:``/``password=``..., and the password of a URL.

``SecretRedactionFilter`` runs ``redact`` over every log record (message,
arguments, extra string fields, the formatted exception) before a handler
formats it; settings/logs.py puts it on the console handler.

This module imports no SDK, so the logging configuration can load it cheaply.
"""

from __future__ import annotations

import logging
import re
import threading
import traceback
import weakref
from collections import OrderedDict

REDACTED = "[redacted]"
# Values shorter than this are not treated as secrets (an empty or placeholder setting).
_MIN_SECRET_LENGTH = 8
_SECRET_SETTING = re.compile(
    r"(^SECRET_KEY$|_API_KEY$|_API_KEY_SECRET$|_SECRET$|_SECRET_KEY$|_TOKEN$|_PASSWORD$|_SIGNING_KEY$)"
)
_SECRET_LIST_SETTINGS = ("SECRET_KEY_FALLBACKS",)

# Secrets given to the client builders (an organization's own credentials), most
# recent last; bounded so a long-running worker does not grow without end.
_registered: OrderedDict[str, None] = OrderedDict()
# [!!] Re-entrant: a finalizer that logs (an SDK's HTTP client closing its connections when garbage-collected)
# can run in the middle of a redaction or a registration, and its log record is redacted too, in the same thread.
_registered_lock = threading.RLock()
_REGISTERED_MAX = 4096

_PATTERNS: tuple[tuple[re.Pattern[str], str | None], ...] = (
    # The password in scheme://user:password@host.
    (re.compile(r"(?P<keep>[a-z][a-z0-9+.-]*://[^/\s:@]*:)[^/\s@]+(?=@)", re.I), None),
    # Authorization schemes: "Bearer xyz", "Token xyz" (Deepgram), "Basic base64".
    # The credential has a digit, so "token rotated" in a sentence stays.
    (re.compile(r"(?P<keep>\b(?:bearer|token|basic)\s+)(?=[A-Za-z._~+/=-]*\d)[A-Za-z0-9._~+/=-]{12,}", re.I), None),
    # name=value / "name": "value" pairs whose name says secret.
    (
        re.compile(
            r"(?P<keep>(?:api[_-]?key|apikey|xi-api-key|auth[_-]?token|access[_-]?token|secret|password|passwd|"
            r"authorization)[\"']?\s*[:=]\s*[\"']?)(?!(?:bearer|token|basic)\s)[^\s\"',;&}]{4,}",
            re.I,
        ),
        None,
    ),
    # JWTs.
    (re.compile(r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*"), REDACTED),
    # OpenAI (sk-..., sk-proj-...), Anthropic (sk-ant-...), ElevenLabs (sk_...), Stripe (sk_live_, rk_live_).
    (re.compile(r"\b(?:sk|rk)[-_][A-Za-z0-9_-]{12,}"), REDACTED),
)
# Long tokens: hex runs of 32+ (auth tokens, Deepgram keys) and letter-and-digit runs of 32+.
_LONG_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{32,}(?![A-Za-z0-9_-])")
# [!!] A Twilio SID (two capital letters and 32 hex digits: AC..., CA..., PN..., SK...) names
# a resource and stays readable; the auth token is the bare 32 hex digits.
_TWILIO_SID = re.compile(r"^[A-Z]{2}[0-9a-f]{32}$")


def register_secret(*values: str | None) -> None:
    """Redact these values from now on (credentials given to a client builder)."""
    with _registered_lock:
        for value in values:
            if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH:
                _registered[value] = None
                _registered.move_to_end(value)
        while len(_registered) > _REGISTERED_MAX:
            _registered.popitem(last=False)


_secrets_cache: tuple[weakref.ref | None, tuple[str, ...]] = (None, ())


def _settings_secrets() -> tuple[str, ...]:
    """The secret settings' values, read once per settings object (override_settings makes a new one):
    every log record asks for them."""
    global _secrets_cache
    try:
        from django.conf import settings

        if not settings.configured:
            return ()
        holder = settings._wrapped
        if _secrets_cache[0] is not None and _secrets_cache[0]() is holder:
            return _secrets_cache[1]
        names = tuple(name for name in dir(settings) if name.isupper() and _SECRET_SETTING.search(name))
    except Exception:  # settings not importable yet (early start-up): patterns still apply
        return ()
    values = [_setting(settings, name) for name in names]
    for name in _SECRET_LIST_SETTINGS:
        listed = _setting(settings, name)
        values.extend(listed if isinstance(listed, (list, tuple)) else [])
    secrets = tuple(value for value in values if isinstance(value, str) and len(value) >= _MIN_SECRET_LENGTH)
    try:
        _secrets_cache = (weakref.ref(holder), secrets)
    except TypeError:  # a settings object that takes no weak reference: read every time
        pass
    return secrets


def _setting(settings, name: str):
    try:
        return getattr(settings, name, None)
    except Exception:  # e.g. an empty SECRET_KEY refuses to be read
        return None


def _long_token(match: re.Match[str]) -> str:
    token = match.group(0)
    if _TWILIO_SID.match(token):
        return token
    has_digit = any(c.isdigit() for c in token)
    has_letter = any(c.isalpha() for c in token)
    return REDACTED if has_digit and has_letter else token


def redact(text: object) -> str:
    """``text`` with every configured secret and anything shaped like a key or token removed."""
    return _redact(text, long_tokens=True)


def _redact(text: object, *, long_tokens: bool) -> str:
    result = text if isinstance(text, str) else str(text)
    with _registered_lock:
        known = list(_registered)
    # Longest first, so a secret that contains another is removed whole.
    for secret in sorted({*_settings_secrets(), *known}, key=len, reverse=True):
        if secret in result:
            result = result.replace(secret, REDACTED)
    for pattern, replacement in _PATTERNS:
        if replacement is None:
            result = pattern.sub(lambda m: m.group("keep") + REDACTED, result)
        else:
            result = pattern.sub(replacement, result)
    return _LONG_TOKEN.sub(_long_token, result) if long_tokens else result


# The LogRecord attributes that are not "extra" fields.
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "request_id"}


class SecretRedactionFilter(logging.Filter):
    """[!!] Removes provider secrets from a log record before any handler formats it.

    It applies ``redact`` but for its bare long-token rule: logs carry request ids
    (32 hex digits, the shape of a Twilio auth token) and audit hashes, which must
    stay readable; configured and registered secrets and every other shape go.
    """

    def _clean(self, text: str) -> str:
        return _redact(text, long_tokens=False)

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: leave it to the formatter's own error path
            return True
        cleaned = self._clean(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, ()
        if record.exc_info and record.exc_info[0] is not None:
            # Formatters use exc_text when exc_info is gone (logging.Formatter, python-json-logger).
            record.exc_text = self._clean("".join(traceback.format_exception(*record.exc_info)).rstrip("\n"))
            record.exc_info = None
        elif record.exc_text:
            record.exc_text = self._clean(record.exc_text)
        if record.stack_info:
            record.stack_info = self._clean(record.stack_info)
        for name, value in list(vars(record).items()):
            if name not in _RECORD_FIELDS and isinstance(value, str):
                setattr(record, name, self._clean(value))
        return True
