"""JWTs for the API, each bound to exactly one organization.

Contract:
- A token pair is issued for (user, organization) after the password, the
  second factor (when the user has one) and the organization's own rules
  pass. Both tokens carry ``sub`` (user id) and ``org`` (organization id);
  ``aud`` and ``iss`` come from SIMPLE_JWT and are checked on every use.
- [!!] Only HS256 is accepted, with the dedicated JWT_SIGNING_KEY (never
  SECRET_KEY). The header's ``alg`` is checked against the allow-list
  before anything else, so ``none`` and every other algorithm are refused
  even if the settings were changed by mistake.
- [!!] Every request re-checks what the token cannot know: the user is
  still active, still a member of the token's organization, and that
  organization is active (and its two-factor rule is met). Removing a
  member or deactivating a user takes effect on the next request, not when
  the 15-minute access token expires.
- Refresh tokens rotate: each is used once (it is blacklisted as the new
  pair is minted, under a row lock, so two concurrent uses cannot both
  succeed). Rotation does not extend the refresh lifetime: the chain ends
  REFRESH_TOKEN_LIFETIME after the password was last given.
- [!!] A spent refresh token presented again means it was copied: the whole
  chain it belongs to (the ``fam`` claim, kept through rotation) is revoked,
  so the thief's and the owner's next refresh both fail and the person signs
  in again (RFC 9700 4.14.2). Access tokens already issued run out within
  their 15 minutes.
- Tokens are read from the ``Authorization: Bearer`` header only.

The functions named ``api_token_*`` are the services (writes: outstanding
and blacklisted tokens, authenticator usage); the views in
accounts/jwt/api.py only parse input and render their result.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import SimpleNamespace

import jwt as pyjwt
from django.core.exceptions import ValidationError
from django.db import transaction
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from accounts.access import AccessDenied, SignIn, organization_access, organization_lookup
from accounts.jwt.tokens import (
    _TWO_FACTOR_WHAT_TO_DO,
    FAMILY_CLAIM,
    INVALID_CREDENTIALS,
    ORG_CLAIM,
    REFRESH_INVALID,
    OrganizationRefreshToken,
    token_sign_in,
)
from accounts.models import Organization, User
from accounts.security_events import emit
from accounts.selectors import user_email_verified
from jagcall.kernel.errors import ApplicationError


# --- services ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TokenPair:
    access: str
    refresh: str
    expires_in: int
    organization: Organization
    token_type: str = "Bearer"




def _two_factor_required_message(organization: Organization) -> str:
    return f"{organization.name} requires two-factor sign-in. {_TWO_FACTOR_WHAT_TO_DO}"


def _refuse(request, reason: str, message: str, *, code: str, status: int, **event) -> ApplicationError:
    emit("api.token_refused", request=request, reason=reason, **event)
    return ApplicationError(message, code=code, status=status)


def _pair(refresh: OrganizationRefreshToken, organization: Organization) -> TokenPair:
    access = refresh.access_token
    return TokenPair(
        access=str(access),
        refresh=str(refresh),
        expires_in=int(access["exp"] - access["iat"]),
        organization=organization,
    )


def _authenticate_password(request, *, email: str, password: str) -> User:
    """The password check of the web sign-in, with its failed-attempt limits (shared with it)."""
    from allauth.account.adapter import get_adapter

    try:
        user = get_adapter(request).authenticate(request, email=email, password=password)
    except ValidationError:
        raise _refuse(
            request,
            "rate_limited",
            "Too many failed sign-in attempts. Wait a few minutes, then try again.",
            code="too_many_attempts",
            status=429,
            email=email,
        ) from None
    if user is None:
        raise _refuse(
            request, "invalid_credentials", INVALID_CREDENTIALS, code="invalid_credentials", status=401, email=email
        )
    if not user.is_active:
        # The same answer as a wrong password: an inactive account is not confirmed to exist.
        raise _refuse(request, "inactive", INVALID_CREDENTIALS, code="invalid_credentials", status=401, user=user)
    return user


def _validate_second_factor(request, *, user: User, otp_code: str | None) -> bool:
    """True when the user has two-factor sign-in and ``otp_code`` passed; False when they have none.

    Accepts a TOTP code (each once) or a recovery code (each once). Wrong
    codes count against the same per-user limit as the web's second step.
    """
    from allauth.core import ratelimit
    from allauth.mfa import signals
    from allauth.mfa.models import Authenticator
    from allauth.mfa.utils import is_mfa_enabled

    if not is_mfa_enabled(user):
        return False
    code = (otp_code or "").strip()
    if not code:
        raise _refuse(
            request,
            "otp_required",
            "This account uses two-factor sign-in: send otp_code (a code from your authenticator app, "
            "or one of your recovery codes).",
            code="otp_required",
            status=401,
            user=user,
        )
    limit_key = f"mfa-auth-user-{user.pk}"
    if not ratelimit.consume(request, action="login_failed", key=limit_key):
        raise _refuse(
            request,
            "otp_rate_limited",
            "Too many wrong two-factor codes. Wait a few minutes, then try again.",
            code="too_many_attempts",
            status=429,
            user=user,
        )
    used = None
    with transaction.atomic():
        for kind in (Authenticator.Type.TOTP, Authenticator.Type.RECOVERY_CODES):
            authenticator = Authenticator.objects.filter(user=user, type=kind).first()
            if authenticator is not None and authenticator.wrap().validate_code(code):
                used = authenticator
                break
        if used is not None:
            used.record_usage()
    if used is None:
        raise _refuse(
            request,
            "otp_invalid",
            "The two-factor code is wrong, expired or already used.",
            code="otp_invalid",
            status=401,
            user=user,
        )
    ratelimit.clear(request, action="login_failed", key=limit_key)
    used.user = user
    signals.authenticator_used.send(
        sender=Authenticator, request=request, user=user, authenticator=used, reauthenticated=False, passwordless=False
    )
    return True


def _check_organization_access(
    request,
    *,
    user: User,
    organization: Organization | None,
    sign_in: SignIn,
    slug: str | None = None,
    unavailable: tuple[str, str] = (INVALID_CREDENTIALS, "invalid_credentials"),
):
    """The rules every issuance and refresh re-applies; returns the membership.

    [!!] The one access check (accounts/access.py) with the sign-in this
    pair was obtained with: membership, the organization's single sign-on
    and two-factor rules. ``unavailable`` is the (message, code) answered
    when the organization is unknown, inactive or not the user's.
    """
    if not user_email_verified(user=user):
        raise _refuse(
            request,
            "email_unverified",
            "Verify your email address before using the API: follow the link in the email we sent you "
            "(or ask for a new one from the sign-in page).",
            code="email_unverified",
            status=403,
            user=user,
        )
    try:
        return organization_access(SimpleNamespace(user=user, session=None), organization, sign_in=sign_in)
    except AccessDenied as denial:
        if denial.reason == AccessDenied.TWO_FACTOR_REQUIRED:
            message = _two_factor_required_message(denial.organization)
        elif denial.reason == AccessDenied.SSO_REQUIRED:
            # A password must not open the API where the web requires single sign-on.
            message = f"{denial.organization.name} requires its single sign-on; API tokens cannot be issued with a password."
        else:
            # [!!] Unknown, terminated or not yours: one answer, so the slug's existence is not revealed.
            raise _refuse(
                request,
                "not_a_member",
                unavailable[0],
                code=unavailable[1],
                status=401,
                user=user,
                organization_slug=slug or (organization.slug if organization else None),
            ) from None
        raise _refuse(
            request, denial.reason, message, code=denial.reason, status=403, user=user, organization=denial.organization
        ) from None


def api_token_issue(
    *, request, email: str, password: str, organization_slug: str, otp_code: str | None = None
) -> TokenPair:
    """A token pair for one organization. Raises ApplicationError (401/403/429) when a rule says no.

    Order matters: nothing beyond "wrong credentials" is said until the
    password and the second factor have both passed.
    """
    user = _authenticate_password(request, email=email, password=password)
    second_factor = _validate_second_factor(request, user=user, otp_code=otp_code)
    sign_in = SignIn(password=True, second_factor=second_factor)
    membership = _check_organization_access(
        request, user=user, organization=organization_lookup(organization_slug), sign_in=sign_in, slug=organization_slug
    )
    organization = membership.organization
    with transaction.atomic():
        refresh = OrganizationRefreshToken.for_membership(user=user, organization=organization, methods=sign_in.methods)
    emit(
        "api.token_issued",
        request=request,
        user=user,
        organization=organization,
        jti=refresh[api_settings.JTI_CLAIM],
        second_factor=second_factor,
    )
    return _pair(refresh, organization)


def _parse_refresh(request, raw: str, *, reason: str) -> OrganizationRefreshToken:
    try:
        return OrganizationRefreshToken(raw)
    except TokenError:
        raise _refuse(request, reason, REFRESH_INVALID, code="token_not_valid", status=401) from None


class _SpentRefreshToken(OrganizationRefreshToken):
    """Verified like any refresh token (signature, algorithm, claims, expiry) except the blacklist."""

    def check_blacklist(self) -> None:
        return None


def _refuse_reuse_if_spent(request, raw: str) -> None:
    """A genuine refresh token that was already spent: revoke its whole chain, then refuse."""
    try:
        spent = _SpentRefreshToken(raw)
    except TokenError:
        return  # not a token of ours at all: refused as invalid by the caller
    user = User.objects.filter(pk=spent[api_settings.USER_ID_CLAIM]).first()
    revoked = _revoke_family(user=user, family=spent.get(FAMILY_CLAIM)) if user is not None else 0
    raise _refuse(
        request, "refresh_reused", REFRESH_INVALID, code="token_not_valid", status=401, user=user,
        family_tokens_revoked=revoked,
    )


def api_token_refresh(*, request, refresh: str) -> TokenPair:
    """Rotate: a new pair for the same organization; the presented refresh token is spent."""
    try:
        OrganizationRefreshToken(refresh)
    except TokenError:
        _refuse_reuse_if_spent(request, refresh)
    old = _parse_refresh(request, refresh, reason="refresh_invalid")
    user = User.objects.filter(pk=old[api_settings.USER_ID_CLAIM]).first()
    if user is None or not user.is_active:
        raise _refuse(request, "inactive", REFRESH_INVALID, code="token_not_valid", status=401, user=user)
    sign_in = token_sign_in(old)
    membership = _check_organization_access(
        request,
        user=user,
        organization=organization_lookup(old[ORG_CLAIM]),
        sign_in=sign_in,
        unavailable=(REFRESH_INVALID, "token_not_valid"),
    )
    organization = membership.organization
    spent = False
    with transaction.atomic():
        # order_by: the model's default ordering joins the (nullable) user, which FOR UPDATE refuses.
        outstanding = (
            OutstandingToken.objects.select_for_update()
            .filter(jti=old[api_settings.JTI_CLAIM])
            .order_by("pk")
            .first()
        )
        if outstanding is None:
            spent = True
        else:
            _blacklisted, created = BlacklistedToken.objects.get_or_create(token=outstanding)
            spent = not created
        if not spent:
            new = OrganizationRefreshToken.for_membership(
                user=user,
                organization=organization,
                methods=sign_in.methods,
                not_after=old["exp"],
                family=old.get(FAMILY_CLAIM),
            )
    if spent:
        revoked = _revoke_family(user=user, family=old.get(FAMILY_CLAIM))
        raise _refuse(
            request, "refresh_reused", REFRESH_INVALID, code="token_not_valid", status=401, user=user,
            family_tokens_revoked=revoked,
        )
    emit(
        "api.token_refreshed",
        request=request,
        user=user,
        organization=organization,
        jti=new[api_settings.JTI_CLAIM],
        previous_jti=old[api_settings.JTI_CLAIM],
    )
    return _pair(new, organization)


@transaction.atomic
def _revoke_family(*, user: User, family: str | None) -> int:
    """Blacklist the live refresh tokens of ``user`` in chain ``family``; returns how many.

    A person has few live refresh tokens (one per signed-in client), so they
    are read back and matched by their ``fam`` claim rather than indexed.
    """
    if not family:
        return 0
    revoked = 0
    live = (
        OutstandingToken.objects.select_for_update(of=("self",))
        .filter(user=user, blacklistedtoken__isnull=True)
        .order_by("pk")
    )
    for outstanding in live:
        try:
            claims = pyjwt.decode(outstanding.token, options={"verify_signature": False})
        except pyjwt.PyJWTError:
            continue
        if claims.get(FAMILY_CLAIM) == family:
            BlacklistedToken.objects.get_or_create(token=outstanding)
            revoked += 1
    return revoked


def api_token_revoke(*, request, refresh: str) -> None:
    """Blacklist a refresh token (sign out of the API). Its access tokens expire on their own."""
    token = _parse_refresh(request, refresh, reason="revoke_invalid")
    with transaction.atomic():
        token.blacklist()
    user = User.objects.filter(pk=token[api_settings.USER_ID_CLAIM]).first()
    organization = Organization.objects.filter(pk=token[ORG_CLAIM]).first()
    emit("api.token_revoked", request=request, user=user, organization=organization, jti=token[api_settings.JTI_CLAIM])
