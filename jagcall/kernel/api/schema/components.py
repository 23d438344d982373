"""The pieces every operation of the schema shares: the ``Error`` component,
the response headers, the Idempotency-Key parameter, and how an error answer
is described."""

from __future__ import annotations


class Convention:
    """The identity under which the shared components are registered (one object, no collisions)."""


ERROR_SCHEMA = {
    "type": "object",
    "description": "The one shape of every 4xx and 5xx answer (docs/api.md, Errors).",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": (
                        "Stable and machine-readable: invalid, parse_error, not_authenticated, permission_denied, "
                        "missing_scope, not_found, throttled, idempotency_key_reused, server_error, or a more "
                        "specific one such as otp_required."
                    ),
                },
                "message": {"type": "string", "description": "Written for a person: says what to fix."},
                "details": {
                    "type": "object",
                    "description": 'Field errors of a validation error ({"field": ["message", ...]}); else empty.',
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["code", "message", "details"],
            "additionalProperties": False,
        }
    },
    "required": ["error"],
    "additionalProperties": False,
}

HEADERS = {
    "X-Request-ID": {
        "description": "The request's id: quote it to support.",
        "required": True,
        "schema": {"type": "string"},
    },
    "RateLimit-Limit": {
        "description": "Requests of this kind (reads, or writes) allowed per window for this caller.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Remaining": {
        "description": "Requests of this kind left in the current window.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Reset": {
        "description": "Seconds until the oldest counted request leaves the window, freeing a slot.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Makes a retry of this request run once: 1-255 printable ASCII characters, e.g. a UUID. The first "
        "successful answer is kept for 24 hours and replayed for the same request (docs/api.md, Idempotency)."
    ),
    # Header values lose surrounding spaces on the wire: the key starts and ends with a visible character.
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[!-~]([ -~]*[!-~])?$"},
}


def error_response(description: str, example: dict | None = None) -> dict:
    media = {"schema": {"$ref": "#/components/schemas/Error"}}
    if example is not None:
        media["example"] = {"error": {"details": {}, **example}}
        media["example"]["error"]["details"] = media["example"]["error"].pop("details")  # code, message, details
    return {"description": description, "content": {"application/json": media}}
