"""The toolkit's request validator, taught about organizations and hashed codes.

Contract (on top of django-oauth-toolkit's OAuth2Validator):
- [!!] An authorization code is created only for the organization the
  person chose on the consent screen (``request.jagcall_organization``),
  where they are a member, with scopes their role allows. It is stored as
  its SHA-256, and every lookup hashes the code presented.
- A code is exchanged once, under a row lock, within
  AUTHORIZATION_CODE_EXPIRE_SECONDS. A second exchange is refused and
  revokes the tokens the first one produced (RFC 6749, 4.1.2).
- Tokens carry the organization of their code (or of the refresh token they
  rotate). A refresh token is refused when it was already used or revoked
  (and then its whole family is revoked, RFC 9700 4.14.2), when its chain
  has reached ``expires_at``, or when the person is no longer a member.
- Resource indicators (RFC 8707) are not supported and are refused.
- Only ``response_type=code`` and the ``authorization_code`` and
  ``refresh_token`` grants are accepted (oauth/server.py has no others).
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from django.db.models import F
from django.utils import timezone
from oauth2_provider.oauth2_validators import OAuth2Validator
from oauth2_provider.settings import oauth2_settings
from oauthlib.oauth2.rfc6749 import errors

from accounts.models import OrganizationStatus
from accounts.scopes import scopes_for_role
from accounts.security_events import emit
from accounts.selectors import membership_for_user
from accounts.oauth.models import AccessToken, Grant, RefreshToken
from accounts.oauth.server import PKCE_METHOD, PKCE_REQUIRED
from accounts.oauth.tokens import digest

GRANT_TYPES = frozenset({"authorization_code", "refresh_token"})
RESOURCE_UNSUPPORTED = "Resource indicators (the resource parameter) are not supported; leave it out."


def refresh_lifetime() -> timedelta:
    return timedelta(seconds=oauth2_settings.REFRESH_TOKEN_EXPIRE_SECONDS)


def _membership(user, organization):
    """The person's membership of an active organization, or None."""
    if user is None or not user.is_active or organization is None or organization.status != OrganizationStatus.ACTIVE:
        return None
    return membership_for_user(organization=organization, user=user)


class OrganizationOAuth2Validator(OAuth2Validator):
    # --- what may be asked for --------------------------------------------------------

    def _load_application(self, client_id, request):
        # PostgreSQL text cannot hold NUL, and psycopg 3 raises DataError (not the ValueError the toolkit
        # expects): no client id has one, so it is simply unknown.
        if not isinstance(client_id, str) or "\x00" in client_id:
            return None
        return super()._load_application(client_id, request)

    def validate_response_type(self, client_id, response_type, client, request, *args, **kwargs):
        return response_type == "code" and client.allows_grant_type(client.GRANT_AUTHORIZATION_CODE)

    def validate_grant_type(self, client_id, grant_type, client, request, *args, **kwargs):
        return grant_type in GRANT_TYPES and client.allows_grant_type(client.GRANT_AUTHORIZATION_CODE)

    def _check_and_set_request_resource(self, request):
        if getattr(request, "resource", None):
            raise errors.CustomOAuth2Error(error="invalid_target", description=RESOURCE_UNSUPPORTED, request=request)
        request.resource = []

    # --- authorization codes ------------------------------------------------------------

    def _grant(self, code, client, *, lock: bool = False):
        if not code or client is None:
            return None
        grants = Grant.objects.unscoped("a code presented at the token endpoint names its own organization").filter(code=digest(code), application=client)
        if lock:
            grants = grants.select_for_update(of=("self",))
        return grants.select_related("organization", "user").first()

    def _create_authorization_code(self, request, code, expires=None):
        organization = getattr(request, "jagcall_organization", None)
        membership = _membership(request.user, organization)
        if membership is None:
            raise errors.AccessDeniedError(
                description="Choose one of your organizations to connect.", request=request
            )
        # Defence in depth: the consent view has checked both already.
        if request.code_challenge_method != PKCE_METHOD or not request.code_challenge:
            raise errors.InvalidRequestError(description=PKCE_REQUIRED, request=request)
        beyond = set(request.scopes) - scopes_for_role(membership.role)
        if beyond:
            raise errors.InvalidScopeError(
                description=f"Your role does not allow: {', '.join(sorted(beyond))}.", request=request
            )
        if not expires:
            expires = timezone.now() + timedelta(seconds=oauth2_settings.AUTHORIZATION_CODE_EXPIRE_SECONDS)
        return Grant.objects.create(
            organization=organization,
            application=request.client,
            user=request.user,
            code=digest(code["code"]),
            expires=expires,
            redirect_uri=request.redirect_uri,
            scope=" ".join(request.scopes),
            code_challenge=request.code_challenge,
            code_challenge_method=request.code_challenge_method,
        )

    def validate_code(self, client_id, code, client, request, *args, **kwargs):
        # [!!] Locked until the exchange commits: a concurrent second exchange waits, then sees it used.
        grant = self._grant(code, client, lock=True)
        if grant is None:
            return False
        if grant.used_at is not None:
            if grant.token_family:
                RefreshToken.revoke_family(grant.token_family)
            emit(
                "oauth.code_reused",
                user=grant.user,
                organization=grant.organization,
                application_id=str(client.pk),
                grant_id=str(grant.pk),
            )
            return False
        if grant.is_expired():
            return False
        if _membership(grant.user, grant.organization) is None:
            return False
        request.scopes = grant.scope.split()
        request.user = grant.user
        request.jagcall_organization = grant.organization
        return True

    def confirm_redirect_uri(self, client_id, code, redirect_uri, client, *args, **kwargs):
        grant = self._grant(code, client)
        return grant is not None and grant.redirect_uri_allowed(redirect_uri)

    def get_code_challenge(self, code, request):
        grant = self._grant(code, request.client)
        return (grant.code_challenge or None) if grant else None

    def get_code_challenge_method(self, code, request):
        grant = self._grant(code, request.client)
        return (grant.code_challenge_method or None) if grant else None

    def get_authorization_code_scopes(self, client_id, code, redirect_uri, request):
        grant = self._grant(code, request.client)
        return grant.scope.split() if grant else []

    def invalidate_authorization_code(self, client_id, code, request, *args, **kwargs):
        """Mark the code used (kept until it expires, to recognise reuse) rather than deleting it."""
        updated = (
            Grant.objects.unscoped("a code presented at the token endpoint names its own organization")
            .filter(code=digest(code), application=request.client, used_at__isnull=True)
            .update(used_at=timezone.now(), token_family=getattr(request, "jagcall_token_family", None))
        )
        if not updated:
            raise errors.InvalidGrantError(request=request)

    # --- tokens ----------------------------------------------------------------------------

    def _create_access_token(self, expires, request, token, source_refresh_token=None):
        access_token = AccessToken(
            organization=request.jagcall_organization,
            user=request.user,
            scope=token["scope"],
            expires=expires,
            application=request.client,
            source_refresh_token=source_refresh_token,
        )
        self._set_token_value(access_token, token["access_token"])
        access_token.save()
        return access_token

    def _create_refresh_token(self, request, refresh_token_code, access_token, previous_refresh_token):
        if previous_refresh_token is not None:
            family, expires_at = previous_refresh_token.token_family, previous_refresh_token.expires_at
        else:
            family, expires_at = uuid.uuid4(), timezone.now() + refresh_lifetime()
        refresh_token = RefreshToken(
            organization=request.jagcall_organization,
            user=request.user,
            application=request.client,
            access_token=access_token,
            token_family=family,
            expires_at=expires_at,
        )
        self._set_token_value(refresh_token, refresh_token_code)
        refresh_token.save()
        request.jagcall_token_family = family
        return refresh_token

    def validate_refresh_token(self, refresh_token, client, request, *args, **kwargs):
        # [!!] Locked until the rotation commits: two concurrent uses of one token cannot both succeed.
        rt = (
            RefreshToken.objects.unscoped("a refresh token presented at the token endpoint names its own organization")
            .select_for_update()
            .filter(token_checksum=digest(refresh_token))
            .order_by(F("revoked").desc(nulls_first=True))
            .first()
        )
        if rt is None or rt.application_id != client.pk:
            return False
        if rt.revoked is not None:
            # Used (rotated) or revoked before: whoever presents it now, the family is no longer trusted.
            RefreshToken.revoke_family(rt.token_family)
            emit(
                "oauth.refresh_token_reused",
                user=rt.user,
                organization=rt.organization,
                application_id=str(client.pk),
                token_family=str(rt.token_family),
            )
            return False
        if rt.access_token_id is None or rt.expires_at <= timezone.now():
            return False
        if _membership(rt.user, rt.organization) is None:
            return False
        request.user = rt.user
        request.refresh_token = refresh_token
        request.refresh_token_instance = rt
        request.jagcall_organization = rt.organization
        return True

    def get_original_scopes(self, refresh_token, request, *args, **kwargs):
        rt = request.refresh_token_instance
        access_token = AccessToken.objects.unscoped("the access token of a refresh token, in its organization").filter(pk=rt.access_token_id).first()
        return access_token.scope.split() if access_token else []
