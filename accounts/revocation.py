"""Ending what a person signed in with, when what vouched for it changes.

[!!] Each of these ends the person's other sessions and their outstanding
refresh tokens (JWT and OAuth), keeping only the session that made the
change:

- a password change, and a password reset;
- removal of a second factor, and use of a recovery code (the code may
  have been stolen with the device: whoever else holds a session loses it);
- removal from an organization (its tokens end; their other sessions too,
  so an open tab does not outlive the removal);
- an organization turning on "single sign-on required" (its members' tokens
  and other sessions, so everyone comes back through the identity provider)
  or "two-factor required" (its OAuth connections, made without it).

Access tokens already issued run out on their own (JWT: 15 minutes; they
are also re-checked on every request); OAuth access tokens are deleted at once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from importlib import import_module

import jwt as pyjwt
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.consumers import access_recheck_user
from accounts.security_events import emit


@dataclass(frozen=True)
class Revoked:
    sessions: int = 0
    jwt_refresh_tokens: int = 0
    oauth_refresh_tokens: int = 0
    oauth_access_tokens: int = 0


def _end_sessions(*, user, keep_session_key: str | None) -> int:
    from allauth.usersessions.models import UserSession

    store = import_module(settings.SESSION_ENGINE).SessionStore()
    ended = 0
    for user_session in UserSession.objects.filter(user=user).exclude(session_key=keep_session_key or ""):
        store.delete(user_session.session_key)
        user_session.delete()
        ended += 1
    return ended


def _revoke_jwt_refresh_tokens(*, user, organization=None) -> int:
    from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

    from accounts.jwt.tokens import ORG_CLAIM

    live = (
        OutstandingToken.objects.select_for_update(of=("self",))
        .filter(user=user, blacklistedtoken__isnull=True, expires_at__gt=timezone.now())
        .order_by("pk")
    )
    revoked = 0
    for outstanding in live:
        if organization is not None:
            try:
                claims = pyjwt.decode(outstanding.token, options={"verify_signature": False})
            except pyjwt.PyJWTError:
                claims = {}
            if claims.get(ORG_CLAIM) != str(organization.pk):
                continue
        BlacklistedToken.objects.get_or_create(token=outstanding)
        revoked += 1
    return revoked


def _revoke_oauth_tokens(*, user=None, organization=None) -> tuple[int, int]:
    from accounts.oauth.models import AccessToken, Grant, RefreshToken

    refresh_tokens = RefreshToken.objects.unscoped("a person's tokens across their organizations").filter(revoked__isnull=True)
    access_tokens = AccessToken.objects.unscoped("a person's tokens across their organizations").all()
    grants = Grant.objects.unscoped("a person's codes across their organizations").all()
    if user is not None:
        refresh_tokens, access_tokens, grants = (q.filter(user=user) for q in (refresh_tokens, access_tokens, grants))
    if organization is not None:
        refresh_tokens, access_tokens, grants = (
            q.filter(organization=organization) for q in (refresh_tokens, access_tokens, grants)
        )
    now = timezone.now()
    refresh_count = refresh_tokens.update(revoked=now, access_token=None, updated=now)
    access_count, _ = access_tokens.delete()
    grants.delete()
    return refresh_count, access_count


@transaction.atomic
def person_sign_ins_revoke(
    *, user, reason: str, keep_session_key: str | None = None, organization=None, request=None, actor=None
) -> Revoked:
    """End ``user``'s other sessions and refresh tokens (only ``organization``'s tokens, when given).

    The session ``keep_session_key`` (the one making the change) stays.
    """
    oauth_refresh, oauth_access = _revoke_oauth_tokens(user=user, organization=organization)
    revoked = Revoked(
        sessions=_end_sessions(user=user, keep_session_key=keep_session_key),
        jwt_refresh_tokens=_revoke_jwt_refresh_tokens(user=user, organization=organization),
        oauth_refresh_tokens=oauth_refresh,
        oauth_access_tokens=oauth_access,
    )
    emit(
        "user.sign_ins_revoked",
        request=request,
        actor=actor,
        user=user,
        organization=organization,
        reason=reason,
        **asdict(revoked),
    )
    access_recheck_user(user.pk)  # open websockets of the ended sessions close
    return revoked


@transaction.atomic
def organization_sign_ins_revoke(*, organization, users, reason: str, keep_session_key: str | None = None, request=None) -> Revoked:
    """The same for each of ``users`` in ``organization`` (a rule of the organization tightened)."""
    totals = Revoked()
    for user in users:
        one = person_sign_ins_revoke(
            user=user, reason=reason, keep_session_key=keep_session_key, organization=organization, request=request
        )
        totals = Revoked(*(a + b for a, b in zip(asdict(totals).values(), asdict(one).values())))
    return totals


@transaction.atomic
def organization_oauth_connections_revoke(*, organization, reason: str, request=None) -> int:
    """End every OAuth token acting in ``organization`` (its rules changed since they were granted)."""
    refresh_count, access_count = _revoke_oauth_tokens(organization=organization)
    emit(
        "oauth.tokens_revoked",
        request=request,
        organization=organization,
        reason=reason,
        refresh_tokens=refresh_count,
        access_tokens=access_count,
    )
    return refresh_count


def _current_session_key(request) -> str | None:
    session = getattr(request, "session", None)
    return getattr(session, "session_key", None) if session is not None else None


def connect_signals() -> None:
    """Password and second-factor changes end the person's other sign-ins (allauth's signals)."""
    from allauth.account import signals as account_signals
    from allauth.mfa import signals as mfa_signals

    def password_changed(sender, request, user, **kwargs):
        person_sign_ins_revoke(user=user, reason="password_changed", keep_session_key=_current_session_key(request), request=request)

    def password_reset(sender, request, user, **kwargs):
        person_sign_ins_revoke(user=user, reason="password_reset", keep_session_key=_current_session_key(request), request=request)

    def factor_removed(sender, request, user, authenticator, **kwargs):
        person_sign_ins_revoke(
            user=user, reason="second_factor_removed", keep_session_key=_current_session_key(request), request=request
        )

    def factor_used(sender, request, user, authenticator, **kwargs):
        if authenticator.type == "recovery_codes":
            person_sign_ins_revoke(
                user=user, reason="recovery_code_used", keep_session_key=_current_session_key(request), request=request
            )

    account_signals.password_changed.connect(password_changed, weak=False, dispatch_uid="jagcall-revoke-password-changed")
    account_signals.password_set.connect(password_changed, weak=False, dispatch_uid="jagcall-revoke-password-set")
    account_signals.password_reset.connect(password_reset, weak=False, dispatch_uid="jagcall-revoke-password-reset")
    mfa_signals.authenticator_removed.connect(factor_removed, weak=False, dispatch_uid="jagcall-revoke-factor-removed")
    mfa_signals.authenticator_used.connect(factor_used, weak=False, dispatch_uid="jagcall-revoke-recovery-code")
