"""What every API authentication class shares: reading the bearer token, and answering an access denial.

Each class (API keys, OAuth tokens, JWTs, the portal session) returns its own
credential, bound to one organization; these helpers keep the parts they
have in common written once.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header

from accounts.access import AccessDenied


def bearer_token(request) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (ASCII only), else None. Never read from the URL or body."""
    parts = get_authorization_header(request).split()
    if len(parts) != 2 or parts[0].lower() != b"bearer":
        return None
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        return None


def denial_as_api_error(denial: AccessDenied, *, unavailable: str) -> exceptions.APIException:
    """An access denial in the API's terms: 401 for who you are, 403 for what this sign-in lacks.

    [!!] Not a member and no such organization read the same (``unavailable``).
    """
    if denial.reason == AccessDenied.NOT_FOUND:
        return exceptions.AuthenticationFailed(unavailable, code="organization_unavailable")
    if denial.reason in (AccessDenied.NOT_SIGNED_IN, AccessDenied.SESSION_EXPIRED):
        return exceptions.AuthenticationFailed(denial.message, code=denial.reason)
    return exceptions.PermissionDenied({"detail": denial.message, "code": denial.reason})
