"""The one organization access check, and how a session was signed in.

``organization_access(source, organization, permission=...)`` answers one
question for every way in (portal pages, the API, websockets, the back
office's organization views): may the person behind ``source`` (a request
or a websocket scope) act in ``organization`` now? It returns their
Membership or raises ``AccessDenied`` with one of the reasons below. The
organization is looked up here, once; the second-factor and single sign-on
rules are written here, once.

[!!] A second factor belongs to the session, not to the account. What a
session proved is read from the session itself:

- allauth's authentication records (``password``, ``password_reset`` and
  ``mfa`` with its type: ``totp``, ``recovery_codes``, ``webauthn``; a
  passkey sign-in is an ``mfa`` record with ``passwordless``), kept per
  user in the session and cleared at logout;
- our own record (``SESSION_KEY``) of the single sign-ons this session
  completed: organization id -> when that sign-on ends (the assertion's
  SessionNotOnOrAfter, or the session's own absolute end) - and of a
  factor the person enrolled in this very session (proving the code).

Rules (``sign_in_opens``):
1. A single sign-on vouches only for the organization whose identity
   provider signed the assertion, and only until it ends.
2. An organization that requires single sign-on of this member (every role
   but owner) opens only through its own sign-on.
3. Otherwise the session needs a sign-in of our own: a password (or a
   reset link), or a passkey. A session opened by another organization's
   single sign-on has none, so the person signs in again (reauthenticates).
4. An organization that requires two-factor sign-in needs a second factor
   passed in this session (or its own single sign-on, whose identity
   provider applies the organization's own factors).
"""

from __future__ import annotations

import re
import time
import uuid
from dataclasses import dataclass, field

from django.conf import settings

from accounts.models import Membership, Organization, OrganizationStatus, User
from accounts.permissions import has_permission
from accounts.selectors import membership_for_user
from accounts.sso.selectors import sso_required_for

SESSION_KEY = "_jc_sign_in"
# The session middleware's clock (accounts.middleware.SessionTimeoutMiddleware).
SESSION_AUTH_AT = "_jc_auth_at"
SESSION_SEEN_AT = "_jc_seen_at"

_SLUG = re.compile(r"[-a-z0-9_]{1,60}")


class AccessDenied(Exception):
    """Why ``organization_access`` said no. ``status`` is what an HTTP caller answers."""

    NOT_SIGNED_IN = "not_signed_in"
    SESSION_EXPIRED = "session_expired"
    NOT_FOUND = "not_found"  # not a member, or no such active organization: the same answer
    FORBIDDEN = "forbidden"  # a member whose role does not allow this
    SIGN_IN_REQUIRED = "sign_in_required"  # this session holds no sign-in that opens the organization
    SSO_REQUIRED = "sso_required"
    TWO_FACTOR_REQUIRED = "two_factor_required"

    STATUS = {
        NOT_SIGNED_IN: 401,
        SESSION_EXPIRED: 401,
        NOT_FOUND: 404,
        FORBIDDEN: 403,
        SIGN_IN_REQUIRED: 403,
        SSO_REQUIRED: 403,
        TWO_FACTOR_REQUIRED: 403,
    }

    def __init__(self, reason: str, message: str, *, organization: Organization | None = None, membership=None):
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.organization = organization
        self.membership = membership

    @property
    def status(self) -> int:
        return self.STATUS[self.reason]


# --- how this session was signed in ------------------------------------------------------


@dataclass(frozen=True)
class SignIn:
    """What one session (or one token issuance) proved, and when."""

    password: bool = False  # a password or a reset link was given
    passkey: bool = False  # signed in with a passkey (possession and user verification)
    second_factor: bool = False  # TOTP, a recovery code or a passkey
    sso: dict = field(default_factory=dict)  # organization id (str) -> end of that sign-on (epoch seconds)

    @property
    def own(self) -> bool:
        """A sign-in of JagCall's own (not an identity provider's)."""
        return self.password or self.passkey

    def vouched_by_sso(self, organization: Organization, *, now: float | None = None) -> bool:
        until = self.sso.get(str(organization.pk))
        return until is not None and (now or time.time()) < until

    @property
    def methods(self) -> list[str]:
        """For tokens and logs: RFC 8176 style method names."""
        names = []
        if self.password:
            names.append("pwd")
        if self.passkey:
            names.append("hwk")
        if self.second_factor:
            names.append("mfa")
        if self.sso:
            names.append("sso")
        return names

    @classmethod
    def from_methods(cls, methods) -> "SignIn":
        """The inverse of ``methods`` for a credential that carries them (JWT ``amr``); never SSO."""
        methods = set(methods or ())
        return cls(password="pwd" in methods, passkey="hwk" in methods, second_factor="mfa" in methods)


def _session_of(source):
    return source.get("session") if isinstance(source, dict) else getattr(source, "session", None)


def _user_of(source):
    return source.get("user") if isinstance(source, dict) else getattr(source, "user", None)


def _records(session, user) -> list[dict]:
    # allauth's own layout (allauth.account.internal.flows.login): the records are
    # kept with the id of the user they belong to, and ignored for anyone else.
    if session is None or user is None or session.get("account_authentication_methods_user") != str(user.pk):
        return []
    records = session.get("account_authentication_methods")
    return records if isinstance(records, list) else []


def _ours(session, user) -> dict:
    data = session.get(SESSION_KEY) if session is not None else None
    if not isinstance(data, dict) or user is None or data.get("user") != str(user.pk):
        return {}
    return data


def sign_in_of(source) -> SignIn:
    """What the session behind ``source`` (request or websocket scope) proved for its user."""
    session, user = _session_of(source), _user_of(source)
    password = passkey = second_factor = False
    for record in _records(session, user):
        method = record.get("method")
        if method in ("password", "password_reset"):
            password = True
        elif method == "mfa":
            second_factor = True
            if record.get("passwordless"):
                passkey = True
    ours = _ours(session, user)
    if ours.get("password"):
        password = True
    if ours.get("enrolled_factor"):
        second_factor = True
    sso = {str(k): float(v) for k, v in (ours.get("sso") or {}).items() if isinstance(v, (int, float))}
    return SignIn(password=password, passkey=passkey, second_factor=second_factor, sso=sso)


def _write_ours(request, user, **changes) -> None:
    data = dict(_ours(request.session, user)) or {"user": str(user.pk)}
    data.update(changes)
    request.session[SESSION_KEY] = data


def sign_in_record_sso(request, *, user: User, organization: Organization, not_on_or_after: float | None) -> None:
    """After a verified assertion: this session is vouched for in ``organization`` until the sign-on ends.

    It ends at the assertion's SessionNotOnOrAfter, and never later than the
    session's own absolute lifetime.
    """
    until = time.time() + settings.SESSION_ABSOLUTE_TIMEOUT
    if not_on_or_after is not None:
        until = min(until, float(not_on_or_after))
    sso = dict(_ours(request.session, user).get("sso") or {})
    sso[str(organization.pk)] = until
    _write_ours(request, user, sso=sso)


def sign_in_record_password(request, *, user: User) -> None:
    """The person chose their password in this request (accepting an invitation signs them in with it)."""
    _write_ours(request, user, password=True)


def sign_in_record_enrolled_factor(request, *, user: User) -> None:
    """The person set up a factor in this session, proving it with a code: this session passed it."""
    if request is not None and getattr(request, "session", None) is not None:
        _write_ours(request, user, enrolled_factor=True)


def sso_sign_in_ended(source, *, now: float | None = None) -> bool:
    """True for a session whose only sign-in was single sign-on, all of which has ended."""
    sign_in = sign_in_of(source)
    if sign_in.own or not sign_in.sso:
        return False
    now = now or time.time()
    return all(until <= now for until in sign_in.sso.values())


# --- the organization ---------------------------------------------------------------------


def organization_lookup(value) -> Organization | None:
    """The active organization named by an Organization, its id or its slug; else None.

    [!!] The one place an organization is found for access: a terminated one
    is as absent as one that never existed.
    """
    if isinstance(value, Organization):
        return value if value.status == OrganizationStatus.ACTIVE else None
    if value is None:
        return None
    active = Organization.objects.filter(status=OrganizationStatus.ACTIVE)
    if isinstance(value, uuid.UUID):
        return active.filter(pk=value).first()
    value = str(value).strip()
    try:
        return active.filter(pk=uuid.UUID(value)).first()
    except ValueError:
        pass
    if not _SLUG.fullmatch(value):
        return None  # not a slug at all, and never sent to the database as one
    return active.filter(slug=value).first()


def sign_in_opens(sign_in: SignIn, organization: Organization, membership: Membership) -> None:
    """Raise AccessDenied unless ``sign_in`` opens ``organization`` for this member (rules in the module doc)."""
    vouched = sign_in.vouched_by_sso(organization)
    if sso_required_for(organization, membership) and not vouched:
        raise AccessDenied(
            AccessDenied.SSO_REQUIRED,
            f"{organization.name} requires you to sign in through its single sign-on.",
            organization=organization,
            membership=membership,
        )
    if vouched:
        return
    if not sign_in.own:
        raise AccessDenied(
            AccessDenied.SIGN_IN_REQUIRED,
            f"You signed in through another organization's single sign-on. Sign in to {organization.name} to open it.",
            organization=organization,
            membership=membership,
        )
    if organization.require_two_factor and not sign_in.second_factor:
        raise AccessDenied(
            AccessDenied.TWO_FACTOR_REQUIRED,
            f"{organization.name} requires two-factor sign-in. Confirm it with your authenticator app "
            "(or set one up) to continue.",
            organization=organization,
            membership=membership,
        )


def session_idle_expired(session, *, now: float | None = None) -> bool:
    """The idle and absolute timeouts of a session (the middleware enforces them for pages too)."""
    if session is None:
        return False
    now = now or time.time()
    auth_at = session.get(SESSION_AUTH_AT)
    if auth_at is None:
        return False
    seen_at = session.get(SESSION_SEEN_AT, auth_at) or auth_at
    return now - auth_at > settings.SESSION_ABSOLUTE_TIMEOUT or now - seen_at > settings.SESSION_IDLE_TIMEOUT


def member_access(user, organization) -> Membership:
    """The membership of an active ``user`` in the active ``organization`` (object, id or slug); else NOT_FOUND.

    The part of the check that a credential carrying its own proof of sign-in
    needs on every use: an OAuth token, whose consent passed
    ``organization_access`` in the person's session (and which is revoked when
    the organization tightens its sign-in rules), asks only this.
    """
    found = organization_lookup(organization)
    membership = None
    if found is not None and user is not None and getattr(user, "is_active", False):
        membership = membership_for_user(organization=found, user=user)
    if membership is None:
        raise AccessDenied(AccessDenied.NOT_FOUND, "No organization matches the given query.")
    membership.organization = found
    return membership


def organization_access(source, organization, *, permission: str | None = None, sign_in: SignIn | None = None) -> Membership:
    """The membership that lets the person behind ``source`` act in ``organization``; else AccessDenied.

    ``source`` is a request or a websocket scope (its ``user`` and ``session``).
    ``sign_in`` replaces the session's for a credential that carries its own
    (a JWT records how it was obtained); without a session and without it, the
    caller is not signed in.
    """
    user = _user_of(source)
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active:
        raise AccessDenied(AccessDenied.NOT_SIGNED_IN, "Sign in to continue.")
    session = _session_of(source)
    if sign_in is None:
        if session is None:
            raise AccessDenied(AccessDenied.NOT_SIGNED_IN, "Sign in to continue.")
        if session_idle_expired(session):
            raise AccessDenied(AccessDenied.SESSION_EXPIRED, "Your session has ended. Sign in again.")
        sign_in = sign_in_of(source)
    membership = member_access(user, organization)
    found = membership.organization
    sign_in_opens(sign_in, found, membership)
    if permission is not None and not has_permission(membership.role, permission):
        raise AccessDenied(
            AccessDenied.FORBIDDEN, "Your role does not allow this.", organization=found, membership=membership
        )
    return membership


def staff_access(source) -> None:
    """The back office: support staff whose session passed the platform's own second factor.

    [!!] Never a single sign-on: a customer's identity provider cannot open the
    back office (staff accounts are also refused at the assertion consumer).
    """
    user = _user_of(source)
    if user is None or not getattr(user, "is_authenticated", False) or not user.is_active or not user.is_staff:
        raise AccessDenied(AccessDenied.NOT_SIGNED_IN, "Sign in with a support staff account.")
    sign_in = sign_in_of(source)
    if not (sign_in.own and sign_in.second_factor):
        raise AccessDenied(
            AccessDenied.TWO_FACTOR_REQUIRED,
            "The back office needs two-factor sign-in in this session: confirm it with your authenticator app "
            "(or set one up).",
        )


def connect_signals() -> None:
    """A factor set up in this session (proved by its code or the key itself) counts as passed here."""
    from allauth.mfa import signals as mfa_signals

    def added(sender, request, user, authenticator, **kwargs):
        if authenticator.type != "recovery_codes":
            sign_in_record_enrolled_factor(request, user=user)

    mfa_signals.authenticator_added.connect(added, weak=False, dispatch_uid="jagcall-sign-in-enrolled-factor")
