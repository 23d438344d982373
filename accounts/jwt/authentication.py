"""``Authorization: Bearer <JWT access token>``: a person in one organization."""

from __future__ import annotations

from types import SimpleNamespace

from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import InvalidToken, TokenError

from accounts.access import AccessDenied, organization_access
from accounts.api.credentials import denial_as_api_error
from accounts.jwt.tokens import ORG_CLAIM, OrganizationAccessToken, token_sign_in
from accounts.principals import Principal

UNAVAILABLE = "This token's organization is not available to this user."


class OrganizationJWTAuthentication(JWTAuthentication):
    """``Authorization: Bearer <access token>`` bound to one organization.

    Returns ``(user, Principal)``. Refuses (401) a token that is malformed,
    not HS256, badly signed, expired or not yet valid, for another audience or
    issuer, not an access token, of an unknown or inactive user, or for an
    organization the user no longer belongs to or that is no longer active.
    [!!] The one access check (accounts/access.py) then reads how the token
    was obtained (``amr``): an organization that requires two-factor sign-in
    or its single sign-on refuses a token that did not pass it (403).
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
        sign_in = token_sign_in(token)
        try:
            membership = organization_access(SimpleNamespace(user=user, session=None), token[ORG_CLAIM], sign_in=sign_in)
        except AccessDenied as denial:
            raise denial_as_api_error(denial, unavailable=UNAVAILABLE) from None
        return user, Principal.member(membership, via="jwt", sign_in=sign_in)

    def get_validated_token(self, raw_token) -> OrganizationAccessToken:
        try:
            return OrganizationAccessToken(raw_token)
        except TokenError as e:
            raise InvalidToken(e.args[0]) from e
