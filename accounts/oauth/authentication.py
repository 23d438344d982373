"""OAuth 2.0 access tokens as API credentials, each bound to one organization.

The authorization server lives beside it in accounts/oauth/ (django-oauth-toolkit); this class
only reads its access tokens, through the toolkit's swappable-model API
(``get_access_token_model()``), so accounts still imports no other app.

Contract:
- [!!] Tokens are read from ``Authorization: Bearer jc_oat_…`` only. A
  bearer without an OAuth prefix is left to the next class (JWTs); a
  refresh token (``jc_ort_…``) sent as a bearer is refused with a message
  saying what to do instead.
- The token is found by its SHA-256: the database holds nothing else.
- Unknown, revoked and expired tokens are refused with 401 and an
  ``oauth.token_refused`` security event.
- [!!] Every request re-checks what the token cannot know: the person is
  still active and still a member of the token's organization (their role
  is read now, not at consent), that organization and the application's
  are still active (accounts.access.member_access). The consent itself
  passed the one access check in the person's session (two-factor, single
  sign-on), and tightening those rules revokes the organization's tokens.
  Removing a member takes effect on the next request.
- The credential's scopes are those granted at consent that the member's
  current role still allows (accounts/scopes.py).
"""

from __future__ import annotations

from django.utils import timezone
from rest_framework import exceptions
from rest_framework.authentication import BaseAuthentication

from accounts.access import AccessDenied, member_access
from accounts.api.credentials import bearer_token
from accounts.models import OrganizationStatus
from accounts.principals import Principal
from accounts.security_events import emit
from accounts.oauth.selectors import oauth_access_token_for_authentication
from accounts.oauth.tokens import ACCESS_TOKEN_PREFIX, REFRESH_TOKEN_PREFIX


TOKEN_INVALID = "This OAuth access token is invalid or was revoked. Connect the application again to get a new one."
TOKEN_UNAVAILABLE = "This OAuth access token's organization is no longer available to the person who authorized it."


class OAuthAccessTokenAuthentication(BaseAuthentication):
    """An OAuth 2.0 access token (`Authorization: Bearer jc_oat_…`) from `/oauth/token`: it acts for the
    person who connected the application, in the organization they chose, with the scopes they gave
    (within what their role allows).

    ``authenticate()`` returns ``(user, Principal)``.
    """


    def authenticate_header(self, request):
        return 'Bearer realm="api"'

    def authenticate(self, request):
        raw = bearer_token(request)
        if raw is None:
            return None
        if raw.startswith(REFRESH_TOKEN_PREFIX):
            self._refuse(request, "refresh_token_as_bearer")
            raise exceptions.AuthenticationFailed(
                "This is an OAuth refresh token. Exchange it at the token endpoint (grant_type=refresh_token) "
                "for an access token, and send that.",
                code="oauth_token_invalid",
            )
        if not raw.startswith(ACCESS_TOKEN_PREFIX):
            return None


        token = oauth_access_token_for_authentication(raw=raw)  # its organization is checked below
        if token is None or token.application is None:
            self._refuse(request, "unknown")
            raise exceptions.AuthenticationFailed(TOKEN_INVALID, code="oauth_token_invalid")
        event = {"organization": token.organization, "user": token.user, "token": token}
        if token.expires <= timezone.now():
            self._refuse(request, "expired", **event)
            raise exceptions.AuthenticationFailed(
                f"This OAuth access token expired at {token.expires:%Y-%m-%d %H:%M} UTC. "
                "Use the refresh token to get a new one.",
                code="oauth_token_expired",
            )
        if token.application.organization.status != OrganizationStatus.ACTIVE:
            self._refuse(request, "application_unavailable", **event)
            raise exceptions.AuthenticationFailed(TOKEN_INVALID, code="oauth_token_invalid")
        user, organization = token.user, token.organization
        try:
            # [!!] The consent passed the one access check in the person's session; a
            # tightening of the organization's rules since then revoked this token.
            membership = member_access(user, organization)
        except AccessDenied:
            self._refuse(request, "not_a_member", **event)
            raise exceptions.AuthenticationFailed(TOKEN_UNAVAILABLE, code="organization_unavailable") from None
        return user, Principal.for_oauth_application(
            token.application, membership=membership, granted_scopes=token.scope.split()
        )

    @staticmethod
    def _refuse(request, reason: str, *, organization=None, user=None, token=None) -> None:
        emit(
            "oauth.token_refused",
            request=getattr(request, "_request", request),
            user=user,
            organization=organization,
            reason=reason,
            application_id=str(token.application_id) if token is not None and token.application_id else None,
            token_id=str(token.pk) if token is not None else None,
        )
