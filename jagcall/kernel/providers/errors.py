"""One error for every provider: ``ProviderError``, raised by ``provider_operation``.

    with provider_operation("twilio", "buy number"):
        client.incoming_phone_numbers.create(phone_number=number)

Inside the block, any exception of a provider SDK (twilio, openai, anthropic,
deepgram-sdk, elevenlabs) or of the transports they use (requests, httpx,
httpx2, aiohttp, websockets, sockets) becomes a ``ProviderError`` whose message
says what a person can do about it, with secrets redacted. Timeouts,
connection failures, 408, 429 and 5xx answers are retryable; other 4xx are
not. Anything else (a bug of ours) passes through unchanged. It works as
``with``, ``async with`` and as a decorator of a synchronous function.

The SDKs are imported only when an exception must be classified, so importing
this module costs nothing.
"""

from __future__ import annotations

import logging
from contextlib import ContextDecorator
from typing import Any

from django.conf import settings

from jagcall.kernel.providers.redaction import redact

logger = logging.getLogger("jagcall.providers")

# What to check when a provider refuses the credentials.
CREDENTIAL_HINTS = {
    "twilio": "check the account SID and auth token",
    "openai": "check the OpenAI API key",
    "anthropic": "check the Anthropic API key",
    "deepgram": "check the Deepgram API key",
    "elevenlabs": "check the ElevenLabs API key",
    "stripe": "check the Stripe secret key",
}
_DETAIL_MAX = 300


class ProviderError(Exception):
    """A provider call failed. ``message`` is meant for the person who can act on it.

    ``status`` is the HTTP status (None without an answer), ``code`` the provider's
    own error code (Twilio's 21211, OpenAI's "insufficient_quota"...), ``retryable``
    whether the same call may succeed later (timeouts, connection failures, 408,
    429, 5xx).
    """

    def __init__(
        self,
        provider: str,
        operation: str,
        message: str,
        *,
        status: int | None = None,
        code: Any = None,
        retryable: bool = False,
    ) -> None:
        self.provider = provider
        self.operation = operation
        self.message = redact(message)
        self.status = status
        self.code = code
        self.retryable = retryable
        super().__init__(f"{provider} {operation}: {self.message}")

    def __reduce__(self):  # picklable (Celery), keyword arguments included
        return (
            _rebuild_provider_error,
            (self.provider, self.operation, self.message, self.status, self.code, self.retryable),
        )


def _rebuild_provider_error(provider, operation, message, status, code, retryable) -> ProviderError:
    return ProviderError(provider, operation, message, status=status, code=code, retryable=retryable)


class provider_operation(ContextDecorator):  # noqa: N801  (used like a function: `with provider_operation(...)`)
    """Turns SDK and transport exceptions raised inside the block into ``ProviderError``."""

    def __init__(self, provider: str, operation: str) -> None:
        self.provider = provider
        self.operation = operation

    def __enter__(self) -> provider_operation:
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        if exc is None or not isinstance(exc, Exception) or isinstance(exc, ProviderError):
            return False
        error = provider_error_from(self.provider, self.operation, exc)
        if error is None:
            return False
        logger.warning(
            "%s",
            error,
            extra={
                "provider": error.provider,
                "operation": error.operation,
                "status": error.status,
                "provider_code": error.code,
                "retryable": error.retryable,
            },
        )
        raise error from exc

    async def __aenter__(self) -> provider_operation:
        return self

    async def __aexit__(self, exc_type, exc, tb) -> bool:
        return self.__exit__(exc_type, exc, tb)


def provider_error_from(provider: str, operation: str, exc: BaseException) -> ProviderError | None:
    """The ``ProviderError`` for an SDK or transport exception, or None for anything else."""
    # Only the SDKs the exception comes from are imported (openai and anthropic take a second).
    roots = {cls.__module__.split(".")[0] for cls in type(exc).__mro__}
    for sdk_roots, classify in _CLASSIFIERS:
        if sdk_roots and not roots & sdk_roots:
            continue
        found = classify(exc)
        if found is not None:
            kind, status, code, detail = found
            return _error(provider, operation, kind, status, code, detail)
    return None


# --- building the message ------------------------------------------------------------


def _error(provider: str, operation: str, kind: str, status: int | None, code: Any, detail: str) -> ProviderError:
    detail = redact(" ".join(str(detail or "").split()))[:_DETAIL_MAX]
    if kind == "timeout":
        message = f"did not answer in {settings.PROVIDER_TIMEOUT_SECONDS} s: try again in a moment"
        return ProviderError(provider, operation, message, status=status, code=code, retryable=True)
    if kind == "connection":
        message = "could not be reached: check the network connection and try again"
        return ProviderError(provider, operation, _with(message, detail), status=status, code=code, retryable=True)
    if kind == "status" and status is not None:
        message, retryable = _for_status(provider, status)
        return ProviderError(provider, operation, _with(message, detail), status=status, code=code, retryable=retryable)
    return ProviderError(provider, operation, _with("failed", detail), status=status, code=code, retryable=False)


def _with(message: str, detail: str) -> str:
    return f"{message} (the provider said: {detail})" if detail else message


def _for_status(provider: str, status: int) -> tuple[str, bool]:
    if status == 401:
        hint = CREDENTIAL_HINTS.get(provider, "check the credentials")
        return f"the credentials were refused (HTTP 401): {hint}", False
    if status == 403:
        return "refused access (HTTP 403): the account may lack the permission or the plan for this", False
    if status == 404:
        return "found no such resource (HTTP 404): it may have been removed at the provider", False
    if status == 408:
        return "timed out the request (HTTP 408): try again in a moment", True
    if status == 409:
        return "refused the request as conflicting with the resource's state (HTTP 409)", False
    if status == 413:
        return "refused the request as too large (HTTP 413)", False
    if status == 429:
        return "rate limited the request (HTTP 429): try again in a moment", True
    if status >= 500:
        return f"had a server error (HTTP {status}): try again later", True
    if 400 <= status < 500:
        return f"refused the request (HTTP {status})", False
    return f"answered unexpectedly (HTTP {status})", False


def _detail_of(body: Any) -> str:
    """The provider's own message out of an error body (dict, JSON text, or plain text)."""
    if isinstance(body, (bytes, bytearray)):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            import json

            body = json.loads(body)
        except ValueError:
            return body
    if isinstance(body, dict):
        for key in ("message", "err_msg", "detail", "error", "msg", "reason"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value
            if isinstance(value, dict):
                found = _detail_of(value)
                if found:
                    return found
        return ""
    return "" if body is None else str(body)


# --- classifying each SDK's exceptions -----------------------------------------------------
# Each returns (kind, status, code, detail) or None; kind is timeout, connection, status or other.


def _twilio(exc: BaseException):
    from twilio.base.exceptions import TwilioException, TwilioRestException

    if isinstance(exc, TwilioRestException):
        return "status", exc.status, exc.code, exc.msg
    if isinstance(exc, TwilioException):
        # A list page that was refused: the SDK raises the base class with the HTTP response (twilio.base.page).
        response = exc.args[1] if len(exc.args) > 1 else None
        if isinstance(getattr(response, "status_code", None), int):
            body = getattr(response, "text", "") or ""
            return "status", response.status_code, _twilio_code(body), _detail_of(body)
        return "other", None, None, str(exc)
    return None


def _twilio_code(body: str):
    """Twilio's own error code (20003, 21211...) out of an error body, or None."""
    import json

    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return None
    return code if isinstance(code, int) else None


def _openai_like(exc: BaseException):
    """openai and anthropic share their error classes' shape (Stainless SDKs)."""
    import importlib

    roots = {cls.__module__.split(".")[0] for cls in type(exc).__mro__}
    for sdk in (importlib.import_module(name) for name in ("openai", "anthropic") if name in roots):
        if isinstance(exc, sdk.APITimeoutError):
            return "timeout", None, None, ""
        if isinstance(exc, sdk.APIConnectionError):
            return "connection", None, None, ""
        if isinstance(exc, sdk.APIStatusError):
            body = exc.body
            code = getattr(exc, "code", None)
            if code is None and isinstance(body, dict):
                inner = body.get("error") if isinstance(body.get("error"), dict) else body
                code = inner.get("code") or inner.get("type")
            return "status", exc.status_code, code, _detail_of(body) or getattr(exc, "message", "")
        base = getattr(sdk, "OpenAIError", None) or getattr(sdk, "AnthropicError", None)
        if base is not None and isinstance(exc, base):
            return "other", None, None, str(exc)
    return None


def _fern_api_error(exc: BaseException):
    """deepgram-sdk and elevenlabs (Fern SDKs): ApiError with status_code and body."""
    roots = {cls.__module__.split(".")[0] for cls in type(exc).__mro__}
    api_errors = []
    if "deepgram" in roots:
        from deepgram.core.api_error import ApiError as DeepgramApiError

        api_errors.append(DeepgramApiError)
    if "elevenlabs" in roots:
        from elevenlabs.core.api_error import ApiError as ElevenLabsApiError

        api_errors.append(ElevenLabsApiError)
    if api_errors and isinstance(exc, tuple(api_errors)):
        body = exc.body
        code = None
        if isinstance(body, dict):
            inner = body.get("detail") if isinstance(body.get("detail"), dict) else body
            code = inner.get("err_code") or inner.get("code") or inner.get("status")
        if exc.status_code is None:
            return "other", None, code, _detail_of(body)
        return "status", exc.status_code, code, _detail_of(body)
    return None


def _websockets(exc: BaseException):
    from websockets.exceptions import ConnectionClosed, InvalidStatus, WebSocketException

    if isinstance(exc, InvalidStatus):
        response = exc.response
        return "status", response.status_code, None, _detail_of(response.body)
    if isinstance(exc, (ConnectionClosed, WebSocketException)):
        return "connection", None, None, ""
    return None


def _transport(exc: BaseException):
    roots = {cls.__module__.split(".")[0] for cls in type(exc).__mro__}
    timeouts: list[type] = [TimeoutError]  # also asyncio.TimeoutError and socket.timeout
    status_errors: list[type] = []
    connection: list[type] = [ConnectionError]
    if "httpx" in roots:
        import httpx

        timeouts.append(httpx.TimeoutException)
        status_errors.append(httpx.HTTPStatusError)
        connection.append(httpx.TransportError)
    if "httpx2" in roots:
        import httpx2

        timeouts.append(httpx2.TimeoutException)
        status_errors.append(httpx2.HTTPStatusError)
        connection.append(httpx2.TransportError)
    if "requests" in roots:
        import requests

        timeouts.append(requests.Timeout)
        if isinstance(exc, requests.HTTPError) and exc.response is not None:
            return "status", exc.response.status_code, None, _detail_of(exc.response.text)
        connection.append(requests.RequestException)
    if "aiohttp" in roots:
        import aiohttp

        timeouts.append(aiohttp.ServerTimeoutError)
        if isinstance(exc, aiohttp.ClientResponseError):
            return "status", exc.status, None, exc.message
        connection.append(aiohttp.ClientError)
    if isinstance(exc, tuple(timeouts)):
        return "timeout", None, None, ""
    if status_errors and isinstance(exc, tuple(status_errors)):
        return "status", exc.response.status_code, None, _detail_of(exc.response.text)
    if isinstance(exc, tuple(connection)):
        return "connection", None, None, ""
    return None


def _stripe(exc: BaseException):
    """Stripe's SDK: ``StripeError`` with ``http_status`` and ``code``; connection errors have no status."""
    import stripe

    if not isinstance(exc, stripe.StripeError):
        return None
    message = getattr(exc, "user_message", None) or getattr(exc, "_message", None) or str(exc)
    if isinstance(exc, stripe.APIConnectionError):
        return "connection", None, None, message
    status = getattr(exc, "http_status", None)
    if status is None:
        return "other", None, getattr(exc, "code", None), message
    return "status", int(status), getattr(exc, "code", None), message


# (the top-level packages an exception must come from, or empty for any; the classifier)
_CLASSIFIERS = (
    ({"stripe"}, _stripe),
    ({"twilio"}, _twilio),
    ({"openai", "anthropic"}, _openai_like),
    ({"deepgram", "elevenlabs"}, _fern_api_error),
    ({"websockets"}, _websockets),
    (set(), _transport),
)
