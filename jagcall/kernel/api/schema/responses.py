"""The error answers each operation documents, from what the view is (docs/api.md, Errors).

All of them reference the one ``Error`` component, which is exactly what
jagcall/kernel/api/errors.py writes: 400 (field details) on writes and on
reads with query parameters beyond the paginator's, 401, 403
(``missing_scope``), 404 for ids in the path and for lists (a bad cursor),
409 and 503 for the Idempotency-Key of organization-bound POSTs, 429.
"""

from __future__ import annotations

from jagcall.kernel.api.schema.components import error_response as _error

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def error_responses(
    *,
    method: str,
    scope: str | None,
    has_filters: bool,
    has_path_ids: bool,
    is_list: bool,
    organization_view: bool,
    idempotent: bool,
) -> dict[str, dict]:
    """The documented error answers of one operation, by status code.

    ``has_filters``: the operation takes query parameters a request may get
    wrong (the paginator's own never answer 400); ``has_path_ids``: its path
    carries ids.
    """
    errors = {}
    if method not in WRITE_METHODS and has_filters:
        errors["400"] = _error(
            "A query parameter is invalid: `details` lists each one's errors.",
            {
                "code": "invalid",
                "message": "Check these fields: since. Enter a valid date/time.",
                "details": {"since": ["Enter a valid date/time."]},
            },
        )
    if method in WRITE_METHODS:
        if method in BODY_METHODS:
            description = (
                "The request is invalid: `details` lists each field's errors. Malformed JSON is a "
                "`parse_error`."
            )
        else:
            description = "The request cannot be done as it stands; the message says why."
        if idempotent:
            description += " A malformed Idempotency-Key is an `idempotency_key_invalid`."
        errors["400"] = _error(
            description,
            {
                "code": "invalid",
                "message": "Check these fields: name. This field is required.",
                "details": {"name": ["This field is required."]},
            },
        )
    if organization_view:
        errors["401"] = _error(
            "Not authenticated: no credential, or one that is invalid, expired, revoked or bound to an "
            "organization that is no longer active.",
            {
                "code": "not_authenticated",
                "message": "Authenticate with a credential bound to an active organization.",
            },
        )
        errors["403"] = _error(
            "Not allowed: the credential lacks the scope this operation needs (`missing_scope`, the message "
            "names it), or the person behind it holds no role allowed to do this.",
            {"code": "missing_scope", "message": f"This request needs the scope {scope}."} if scope else None,
        )
    else:
        errors["401"] = _error("The credentials given were not accepted; the message says why.")
        errors["403"] = _error("Not allowed; the message says why and what to do.")
    if has_path_ids or is_list:
        errors["404"] = _error(
            "Not found: the id does not exist or belongs to another organization"
            + (", or the `cursor` is not valid." if is_list else "."),
            {"code": "not_found", "message": "Not found. It does not exist or belongs to another organization."},
        )
    if idempotent:
        errors["409"] = _error(
            "Idempotency-Key conflict: `idempotency_key_reused` (the key was used for a different request), "
            "`idempotency_in_progress` (the first request with it is still running) or "
            "`idempotency_replay_unavailable` (it succeeded, but its answer showed a secret once).",
            {
                "code": "idempotency_key_reused",
                "message": "This Idempotency-Key was already used for a different request. Use a new key "
                "for a new request.",
            },
        )
    if organization_view:
        errors["429"] = _error(
            "Too many requests for this caller's rate limit; `Retry-After` says how many seconds to wait.",
            {"code": "throttled", "message": "Request was throttled. Expected available in 12 seconds."},
        )
    else:
        errors["429"] = _error("Too many attempts; wait a few minutes, then try again.")
    if idempotent:
        errors["503"] = _error(
            "`idempotency_unavailable`: a request with an Idempotency-Key cannot be guarded right now and was "
            "not run. Retry shortly.",
            {
                "code": "idempotency_unavailable",
                "message": "Requests with an Idempotency-Key cannot be accepted right now. Retry shortly.",
            },
        )
    return errors
