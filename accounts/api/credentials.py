"""What every API authentication class shares: reading the bearer token, and the two-factor rule.

Each class (API keys, OAuth tokens, JWTs, the portal session) returns its own
credential, bound to one organization; these helpers keep the parts they
have in common written once.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import get_authorization_header


def bearer_token(request) -> str | None:
    """The token of ``Authorization: Bearer <token>`` (ASCII only), else None. Never read from the URL or body."""
    parts = get_authorization_header(request).split()
    if len(parts) != 2 or parts[0].lower() != b"bearer":
        return None
    try:
        return parts[1].decode("ascii")
    except UnicodeDecodeError:
        return None


def enforce_two_factor_rule(organization, user, *, what_to_do: str) -> None:
    """403 ``two_factor_required`` when ``organization`` requires two-factor sign-in and ``user`` has none."""
    if not organization.require_two_factor:
        return
    from accounts.mfa import user_has_two_factor

    if not user_has_two_factor(user):
        raise exceptions.PermissionDenied(
            {"detail": f"{organization.name} requires two-factor sign-in. {what_to_do}", "code": "two_factor_required"}
        )
