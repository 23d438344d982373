"""The API's JWTs: HS256 only, each bound to one organization (``org``), refresh chains (``fam``).

See accounts/jwt/services.py for how they are issued, rotated and revoked,
and accounts/jwt/authentication.py for how a request presents one.
"""

from __future__ import annotations

import uuid

import jwt as pyjwt
from django.core.exceptions import ImproperlyConfigured
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import OutstandingToken
from rest_framework_simplejwt.tokens import AccessToken, RefreshToken
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.models import Organization, User

ORG_CLAIM = "org"
FAMILY_CLAIM = "fam"  # one id per chain of rotated refresh tokens
# How the pair was obtained (RFC 8176 names: pwd, mfa); the one access check reads it on every use.
METHODS_CLAIM = "amr"
# [!!] The one algorithm a token may name. Widening this is a security review.
ALLOWED_ALGORITHMS = frozenset({"HS256"})

if api_settings.ALGORITHM not in ALLOWED_ALGORITHMS:
    raise ImproperlyConfigured(
        f"SIMPLE_JWT['ALGORITHM'] must be one of {sorted(ALLOWED_ALGORITHMS)} (accounts/jwt/tokens.py)."
    )

INVALID_CREDENTIALS = "Invalid email, password or organization."
REFRESH_INVALID = "The refresh token is invalid, expired, revoked or already used. Request a new token pair."


# --- the tokens -------------------------------------------------------------------


def _check_algorithm(raw_token) -> None:
    try:
        header = pyjwt.get_unverified_header(raw_token)
    except pyjwt.PyJWTError as e:
        raise TokenError("Token is invalid") from e
    if header.get("alg") not in ALLOWED_ALGORITHMS:
        raise TokenError("Token is invalid")


def _require_organization_claims(payload: dict) -> None:
    for claim in (api_settings.USER_ID_CLAIM, ORG_CLAIM, "iat", api_settings.JTI_CLAIM):
        if claim not in payload:
            raise TokenError(f"Token has no '{claim}' claim")
    for claim in (api_settings.USER_ID_CLAIM, ORG_CLAIM):
        try:
            uuid.UUID(str(payload[claim]))
        except ValueError as e:
            raise TokenError("Token is invalid") from e


class _OrganizationBound:
    """Shared by both token kinds: the allow-listed algorithm and the claims we rely on."""

    def __init__(self, token=None, verify: bool = True) -> None:
        if token is not None:
            _check_algorithm(token)
        super().__init__(token, verify)

    def verify(self) -> None:
        _require_organization_claims(self.payload)
        super().verify()


class OrganizationAccessToken(_OrganizationBound, AccessToken):
    pass


class OrganizationRefreshToken(_OrganizationBound, RefreshToken):
    access_token_class = OrganizationAccessToken

    @classmethod
    def for_membership(
        cls,
        *,
        user: User,
        organization: Organization,
        methods=("pwd",),
        not_after: int | None = None,
        family: str | None = None,
    ):
        """A new refresh token for ``user`` in ``organization``, recorded as outstanding.

        ``methods`` says how the person signed in for it (accounts.access.SignIn.methods);
        ``not_after`` (epoch seconds) caps the expiry and ``family`` continues
        the chain: a rotated token keeps its predecessor's end of life, family and methods.
        """
        token = cls()
        token[api_settings.USER_ID_CLAIM] = str(getattr(user, api_settings.USER_ID_FIELD))
        token[ORG_CLAIM] = str(organization.pk)
        token[FAMILY_CLAIM] = family or uuid.uuid4().hex
        token[METHODS_CLAIM] = list(methods)
        if not_after is not None:
            token["exp"] = min(int(not_after), token["exp"])
        OutstandingToken.objects.create(
            user=user,
            jti=token[api_settings.JTI_CLAIM],
            token=str(token),
            created_at=token.current_time,
            expires_at=datetime_from_epoch(token["exp"]),
        )
        return token

    @property
    def access_token(self) -> OrganizationAccessToken:
        access = super().access_token
        # Same instant as the refresh token's exp base: exp - iat is exactly the lifetime.
        access.set_iat(at_time=self.current_time)
        return access

_TWO_FACTOR_WHAT_TO_DO = (
    "Set up an authenticator app in your account's security settings, then request a token again with otp_code."
)


def token_sign_in(token):
    """How the person signed in for ``token`` (its ``amr``). A token from before the claim existed
    was obtained with a password, and is taken as nothing more."""
    from accounts.access import SignIn

    methods = token.get(METHODS_CLAIM)
    return SignIn.from_methods(methods if isinstance(methods, list) else ["pwd"])
