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
- The one access check of the portal applies (accounts/access.py): how
  this session was signed in must open the organization (its single
  sign-on, its two-factor rule), answered 403 with the reason as ``code``.
- ``request.auth`` is the member's Principal (accounts/principals.py), with
  every scope the role allows; rate limits count per person, shared with
  their JWTs.
- A request without a signed-in session is left to the next class; the
  session's idle and absolute timeouts are enforced by the middleware that
  runs before any view.
"""

from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import SessionAuthentication

from accounts.access import AccessDenied, organization_access, sign_in_of
from accounts.api.credentials import denial_as_api_error
from accounts.principals import Principal

ORGANIZATION_HEADER = "X-Organization"
ORGANIZATION_REQUIRED = (
    f"Signed-in requests must name the organization they act on in the {ORGANIZATION_HEADER} header "
    "(its slug or id)."
)
ORGANIZATION_UNAVAILABLE = f"The organization named in {ORGANIZATION_HEADER} is not available to you."


class OrganizationSessionAuthentication(SessionAuthentication):
    """``(user, Principal)`` for a signed-in session naming its organization."""

    def authenticate(self, request):
        user = getattr(request._request, "user", None)
        if not user or not user.is_active or not user.is_authenticated:
            return None
        # CSRF first: a forged cross-site request learns nothing, not even whether the header was right.
        self.enforce_csrf(request)
        name = (request.headers.get(ORGANIZATION_HEADER) or "").strip()
        if not name:
            raise exceptions.AuthenticationFailed(ORGANIZATION_REQUIRED, code="organization_required")
        try:
            membership = organization_access(request._request, name)
        except AccessDenied as denial:
            raise denial_as_api_error(denial, unavailable=ORGANIZATION_UNAVAILABLE) from None
        return user, Principal.member(membership, via="session", sign_in=sign_in_of(request._request))

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
