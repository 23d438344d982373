"""The portal session as an API credential.

Contract:
- Used by the portal's own pages (and by a person exploring the API in the
  browser): the signed-in session cookie authenticates, and every unsafe
  method (POST, PUT, PATCH, DELETE) must carry Django's CSRF token in the
  ``X-CSRFToken`` header; without it the answer is 403 ``csrf_failed``.
- [!!] A session is not bound to an organization, so each request names the
  one it acts on in the ``X-Organization`` header (slug or id), the way a
  portal URL names it in its path. Never from a session "current
  organization" (two tabs may be on two organizations) and never from the
  body. The caller must be a member of an active organization of that name;
  anything else is 401 with the same message, so the header cannot be used
  to learn which organizations exist.
- The organization's two-factor rule applies as on the portal (403
  ``two_factor_required``).
- The credential carries the member's role and every scope the role allows
  (accounts/scopes.py); rate limits count per person, shared with their JWTs.
- A request without a signed-in session is left to the next class; the
  session's idle and absolute timeouts are enforced by the middleware that
  runs before any view.
"""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication

from accounts.api.credentials import enforce_two_factor_rule
from accounts.models import Organization, User
from accounts.scopes import scopes_for_role
from accounts.selectors import membership_for_user, organization_active_by_id_or_slug

ORGANIZATION_HEADER = "X-Organization"
ORGANIZATION_REQUIRED = (
    f"Signed-in requests must name the organization they act on in the {ORGANIZATION_HEADER} header "
    "(its slug or id)."
)
ORGANIZATION_UNAVAILABLE = f"The organization named in {ORGANIZATION_HEADER} is not available to you."


@dataclass(frozen=True)
class SessionCredential:
    """What ``request.auth`` holds for a signed-in portal session."""

    organization: Organization
    role: str
    user: User
    scopes: frozenset = frozenset()

    @property
    def rate_limit_key(self) -> str:
        return f"user:{self.user.id}"


class OrganizationSessionAuthentication(SessionAuthentication):
    """``(user, SessionCredential)`` for a signed-in session naming its organization."""

    def authenticate(self, request):
        user = getattr(request._request, "user", None)
        if not user or not user.is_active or not user.is_authenticated:
            return None
        # CSRF first: a forged cross-site request learns nothing, not even whether the header was right.
        self.enforce_csrf(request)
        name = (request.headers.get(ORGANIZATION_HEADER) or "").strip()
        if not name:
            raise exceptions.AuthenticationFailed(ORGANIZATION_REQUIRED, code="organization_required")
        organization = organization_active_by_id_or_slug(value=name)
        membership = membership_for_user(organization=organization, user=user) if organization else None
        if membership is None:
            raise exceptions.AuthenticationFailed(ORGANIZATION_UNAVAILABLE, code="organization_unavailable")
        enforce_two_factor_rule(
            organization, user, what_to_do="Set up an authenticator app in your account to continue."
        )
        return user, SessionCredential(
            organization=organization, role=membership.role, user=user, scopes=scopes_for_role(membership.role)
        )

    def enforce_csrf(self, request):
        try:
            super().enforce_csrf(request)
        except exceptions.PermissionDenied as e:
            raise exceptions.PermissionDenied(
                {
                    "detail": "This request needs the CSRF token of your signed-in session in the X-CSRFToken "
                    "header. Reload the page and try again.",
                    "code": "csrf_failed",
                }
            ) from e
