"""One error shape for every API error.

    {"error": {"code": "...", "message": "...", "details": {...}}}

Validation errors list their fields in ``details`` ({"field": ["message", ...]}).
Services raise ApplicationError; DRF raises its own exceptions; both become
this shape with the right status. Nothing else leaks (no tracebacks, no
internal names).
"""

from __future__ import annotations

import logging

from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from jagcall.kernel.errors import ApplicationError

logger = logging.getLogger(__name__)

_CODES = {
    400: "invalid",
    401: "not_authenticated",
    403: "permission_denied",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    410: "gone",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def error_body(code: str, message: str, details: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "details": details or {}}}


def _flatten(detail) -> tuple[str, dict]:
    """A readable message plus per-field details from DRF's error detail."""
    if isinstance(detail, dict) and "detail" in detail and "code" in detail:
        return str(detail["detail"]), {}  # an exception that already speaks in one message (e.g. simplejwt)
    if isinstance(detail, dict):
        details = {key: [str(item) for item in (value if isinstance(value, list) else [value])] for key, value in detail.items()}
        fields = ", ".join(sorted(details))
        first = next(iter(details.values()))[0] if details else "Invalid input."
        if list(details) == ["non_field_errors"]:
            return first, details
        return f"Check these fields: {fields}. {first}", details
    if isinstance(detail, list):
        return " ".join(str(item) for item in detail), {}
    return str(detail), {}


def exception_handler(exc, context):
    if isinstance(exc, ApplicationError):
        details = {exc.field: [exc.message]} if exc.field else {}
        response = Response(error_body(exc.code, exc.message, details), status=exc.status)
        if exc.status == 401:
            response["WWW-Authenticate"] = 'Bearer realm="api"'
        return response
    if isinstance(exc, Http404):
        exc = exceptions.NotFound("Not found. It does not exist or belongs to another organization.")
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)
    response = drf_exception_handler(exc, context)
    if response is None:
        logger.exception("unhandled API error", exc_info=exc)
        return Response(
            error_body("server_error", "Something went wrong on our side. It has been logged; try again later."),
            status=status.HTTP_500_INTERNAL_SERVER_ERROR,
        )
    detail = getattr(exc, "detail", response.data)
    message, details = _flatten(detail)
    code = getattr(exc, "default_code", None) or _CODES.get(response.status_code, "error")
    if isinstance(exc, exceptions.ValidationError):
        code = "invalid"
    elif isinstance(detail, dict) and isinstance(detail.get("code"), str):
        code = detail["code"]
    elif hasattr(detail, "code") and isinstance(getattr(detail, "code"), str):
        code = detail.code
    response.data = error_body(code, message, details)
    return response


# Answers that carry a secret (tokens, a new key) must never be cached by a client or proxy (RFC 6749, 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
