"""``Authorization: Bearer <JWT access token>``: a person in one organization."""

from __future__ import annotations

from dataclasses import dataclass

from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed, InvalidToken, TokenError

from accounts.api.credentials import enforce_two_factor_rule
from accounts.jwt.tokens import _TWO_FACTOR_WHAT_TO_DO, ORG_CLAIM, OrganizationAccessToken
from accounts.models import Membership, Organization, OrganizationStatus
from accounts.scopes import scopes_for_role
from accounts.selectors import membership_for_user


@dataclass(frozen=True)
class OrganizationCredential:
    """What ``request.auth`` holds for a JWT: OrganizationAPIView reads ``.organization`` and ``.role``."""

    organization: Organization
    role: str
    token: OrganizationAccessToken
    scopes: frozenset = frozenset()  # every scope the role allows (accounts/scopes.py)
    rate_limit_key: str = ""  # one person across their tokens


class OrganizationJWTAuthentication(JWTAuthentication):
    """``Authorization: Bearer <access token>`` bound to one organization.

    Returns ``(user, OrganizationCredential)``. Refuses (401) a token that is
    malformed, not HS256, badly signed, expired or not yet valid, for another
    audience or issuer, not an access token, of an unknown or inactive user,
    or for an organization the user no longer belongs to or that is no
    longer active; 403 when the organization requires two-factor sign-in
    and the user has none.
    """

    def authenticate(self, request):
        header = self.get_header(request)
        if header is None:
            return None
        raw_token = self.get_raw_token(header)
        if raw_token is None:
            return None
        token = self.get_validated_token(raw_token)
        user = self.get_user(token)
        membership = self.get_membership(token, user)
        return user, OrganizationCredential(
            organization=membership.organization,
            role=membership.role,
            token=token,
            scopes=scopes_for_role(membership.role),
            rate_limit_key=f"user:{user.id}",
        )

    def get_validated_token(self, raw_token) -> OrganizationAccessToken:
        try:
            return OrganizationAccessToken(raw_token)
        except TokenError as e:
            raise InvalidToken(e.args[0]) from e

    def get_membership(self, token, user) -> Membership:
        organization = Organization.objects.filter(pk=token[ORG_CLAIM], status=OrganizationStatus.ACTIVE).first()
        membership = membership_for_user(organization=organization, user=user) if organization else None
        if membership is None:
            raise AuthenticationFailed(
                "This token's organization is not available to this user.", code="organization_unavailable"
            )
        membership.organization = organization
        enforce_two_factor_rule(organization, user, what_to_do=_TWO_FACTOR_WHAT_TO_DO)
        return membership


