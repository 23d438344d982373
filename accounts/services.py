"""Writes for users, organizations, memberships and invitations.

Every rule about the team lives here once: the portal, the API, the admin,
the management commands and tasks all call these functions.
"""

from __future__ import annotations

import secrets
from datetime import date, timedelta

from django.conf import settings
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone
from django.utils.text import slugify

from accounts.activity import activity_record
from accounts.consumers import access_recheck_user
from accounts.entitlements import limit_refusal
from accounts.events import publish_org_event
from accounts.hashing import secret_digest
from accounts.models import Invitation, Membership, Organization, OrganizationStatus, User, normalize_email
from accounts.permissions import Role, can_manage_member
from accounts.api_keys.services import KeyDisposition, api_keys_of_member_dispose
from accounts.principals import Principal, as_principal
from accounts.revocation import organization_oauth_connections_revoke, person_sign_ins_revoke
from accounts.selectors import membership_for_user, user_email_verified
from jagcall.kernel.crypto.services import organization_keys_create
from jagcall.kernel.errors import ApplicationError, PermissionDenied

RESERVED_SLUGS = {"new", "admin", "api", "static", "media", "o", "orgs", "login", "logout", "invitations"}


# --- helpers -------------------------------------------------------------------


def _require(organization: Organization, actor, action: str) -> Principal:
    """The acting Principal, if it may do ``action`` in ``organization`` (accounts.principals)."""
    principal = as_principal(actor, organization)
    principal.require(action)
    return principal


def _clean_email(email: str) -> str:
    email = normalize_email(email)
    try:
        validate_email(email)
    except ValidationError:
        raise ApplicationError("Enter a valid email address, like name@example.com.", field="email") from None
    return email


def _clean_role(role: str) -> str:
    if role not in Role.values:
        raise ApplicationError(f"Choose a role: {', '.join(Role.values)}.", field="role")
    return role


def _lock_owners(organization: Organization) -> list[Membership]:
    # [!!] Lock every owner row so two concurrent demotions cannot both pass the
    # "at least one owner" check.
    return list(Membership.objects.for_org(organization).select_for_update().filter(role=Role.OWNER))


def _ensure_owner_remains(organization: Organization, leaving: Membership) -> None:
    owners = _lock_owners(organization)
    if leaving.role == Role.OWNER and len([m for m in owners if m.pk != leaving.pk]) == 0:
        raise ApplicationError(
            "An organization must keep at least one owner. Make someone else an owner first.",
            code="last_owner",
        )


# --- users ---------------------------------------------------------------------


def user_email_mark_verified(*, user: User) -> None:
    """Record that ``user`` controls their email address (a link sent there was used)."""
    from allauth.account.models import EmailAddress

    address = EmailAddress.objects.filter(user=user, email__iexact=user.email).first()
    if address is None:
        EmailAddress.objects.create(user=user, email=user.email, verified=True, primary=True)
    elif not address.verified:
        address.verified = True
        address.save(update_fields=["verified"])


@transaction.atomic
def user_create(
    *, email: str, password: str | None, name: str = "", is_staff: bool = False, email_verified: bool = False
) -> User:
    email = _clean_email(email)
    if User.objects.filter(email__iexact=email).exists():
        raise ApplicationError("An account with this email already exists. Sign in instead.", field="email", code="duplicate")
    user = User(email=email, name=name.strip(), is_staff=is_staff)
    if password is not None:
        try:
            validate_password(password, user=user)
        except ValidationError as exc:
            raise ApplicationError(" ".join(exc.messages), field="password", code="weak_password") from None
    user.set_password(password)
    user.save()
    if email_verified:
        user_email_mark_verified(user=user)
    return user


@transaction.atomic
def user_disable(*, user: User, actor: User | None = None) -> User:
    """Lock a person out at once: no new sign-in, and every session they have ends now."""
    from allauth.usersessions.models import UserSession

    user.is_active = False
    user.save(update_fields=["is_active"])
    sessions = list(UserSession.objects.filter(user=user))
    transaction.on_commit(lambda: [session.end() for session in sessions])
    from accounts.security_events import emit

    emit("user.disabled", user=user, actor_id=str(actor.pk) if actor else None, sessions_ended=len(sessions))
    return user


# --- organizations -------------------------------------------------------------


def _slug_from_name(name: str) -> str:
    base = slugify(name)[:50] or "org"
    if base in RESERVED_SLUGS:
        base = f"{base}-org"
    slug, n = base, 2
    while Organization.objects.filter(slug=slug).exists():
        slug, n = f"{base}-{n}", n + 1
    return slug


@transaction.atomic
def organization_create(*, name: str, owner: User, slug: str | None = None, plan_code: str = "starter") -> Organization:
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the organization a name.", field="name")
    if len(name) > 120:
        raise ApplicationError("Keep the name under 120 characters.", field="name")
    if slug:
        slug = slug.strip().lower()
        if slugify(slug) != slug or len(slug) > 60:
            raise ApplicationError(
                "The short name may use lowercase letters, digits and hyphens only (up to 60).", field="slug"
            )
        if slug in RESERVED_SLUGS:
            raise ApplicationError(f"“{slug}” is reserved; choose another short name.", field="slug", code="duplicate")
        if Organization.objects.filter(slug=slug).exists():
            raise ApplicationError(
                f"The short name “{slug}” is already taken; choose another.", field="slug", code="duplicate"
            )
    else:
        slug = _slug_from_name(name)
    try:
        with transaction.atomic():
            organization = Organization.objects.create(name=name, slug=slug, plan_code=plan_code)
    except IntegrityError:
        raise ApplicationError(
            f"The short name “{slug}” is already taken; choose another.", field="slug", code="duplicate"
        ) from None
    Membership.objects.create(organization=organization, user=owner, role=Role.OWNER)
    organization_keys_create(organization_id=organization.id)  # its data keys, wrapped by the master
    activity_record(
        "organization.created", organization=organization, actor=owner, resource_type="organization", resource=organization,
        after={"name": organization.name, "slug": organization.slug, "plan_code": organization.plan_code},
    )
    return organization


@transaction.atomic
def organization_update(*, organization: Organization, actor, name: str) -> Organization:
    actor = _require(organization, actor, "organization.update")
    name = (name or "").strip()
    if not name:
        raise ApplicationError("Give the organization a name.", field="name")
    if len(name) > 120:
        raise ApplicationError("Keep the name under 120 characters.", field="name")
    before = {"name": organization.name}
    organization.name = name
    organization.save(update_fields=["name", "updated_at"])
    activity_record(
        "organization.updated", organization=organization, actor=actor, resource_type="organization", resource=organization,
        before=before, after={"name": name},
    )
    publish_org_event(organization.id, "organization.updated", {"name": name})
    return organization


@transaction.atomic
def organization_require_two_factor(*, organization: Organization, actor, required: bool, request=None) -> Organization:
    """Owners may require two-factor sign-in of every member (members without it enrol at their next visit).

    Turning it on ends the organization's OAuth connections (their consent was
    given under the old rule); JWTs say how they were obtained and are checked
    on every request.
    """
    principal = _require(organization, actor, "security.manage")
    from accounts.mfa import user_has_two_factor

    if required and principal.user is not None and not user_has_two_factor(principal.user):
        raise ApplicationError(
            "Set up two-factor sign-in for yourself first, so the rule cannot lock you out.", code="actor_without_2fa"
        )
    before = {"require_two_factor": organization.require_two_factor}
    tightened = bool(required) and not organization.require_two_factor
    organization.require_two_factor = bool(required)
    organization.save(update_fields=["require_two_factor", "updated_at"])
    activity_record(
        "organization.security_changed", organization=organization, actor=principal, resource_type="organization", resource=organization,
        before=before, after={"require_two_factor": bool(required)},
    )
    if tightened:
        organization_oauth_connections_revoke(organization=organization, reason="two_factor_required", request=request)
        for user_id in Membership.objects.for_org(organization).values_list("user_id", flat=True):
            access_recheck_user(user_id)
    publish_org_event(organization.id, "organization.security_changed", {"require_two_factor": bool(required)})
    return organization


@transaction.atomic
def organization_terminate(*, organization: Organization, actor: User | None) -> Organization:
    """Close an organization (owners; staff act with actor=None). Its data is kept until purge."""
    if actor is not None:
        actor = _require(organization, actor, "organization.delete")
    before = {"status": organization.status}
    organization.status = OrganizationStatus.TERMINATED
    organization.terminated_at = timezone.now()
    organization.save(update_fields=["status", "terminated_at", "updated_at"])
    activity_record(
        "organization.terminated", organization=organization, actor=actor, resource_type="organization", resource=organization,
        before=before, after={"status": organization.status},
    )
    return organization


# --- memberships ---------------------------------------------------------------


ROLE_RANK = {Role.MEMBER: 0, Role.ADMIN: 1, Role.OWNER: 2}


@transaction.atomic
def membership_role_change(
    *, organization: Organization, actor, membership: Membership, role: str, api_keys: str = KeyDisposition.REVOKE
) -> Membership:
    """Change a member's role. On a demotion, their API keys are revoked or handed to the actor (``api_keys``)."""
    role = _clean_role(role)
    principal = _require(organization, actor, "members.change_role")
    membership = Membership.objects.for_org(organization).select_for_update().get(pk=membership.pk)
    if not can_manage_member(actor_role=principal.role, target_role=membership.role, new_role=role):
        raise PermissionDenied("Only an owner can change an owner's role or make someone an owner.")
    if membership.role == role:
        return membership
    if membership.role == Role.OWNER:
        _ensure_owner_remains(organization, membership)
    before = {"role": membership.role}
    demoted = ROLE_RANK[role] < ROLE_RANK[membership.role]
    keys = []
    if demoted:
        keys = api_keys_of_member_dispose(organization=organization, member=membership.user, disposition=api_keys, actor=principal)
    membership.role = role
    membership.save(update_fields=["role", "updated_at"])
    activity_record(
        "member.role_changed", organization=organization, actor=principal, resource_type="membership", resource=membership,
        before=before, after={"role": role},
        metadata={"email": membership.user.email, **({"api_keys": keys, "api_keys_disposition": api_keys} if demoted else {})},
    )
    publish_org_event(organization.id, "member.role_changed", {"email": membership.user.email, "role": role})
    access_recheck_user(membership.user_id)
    return membership


@transaction.atomic
def membership_remove(
    *, organization: Organization, actor, membership: Membership, api_keys: str = KeyDisposition.REVOKE, request=None
) -> None:
    """Remove a member. Their API keys are revoked or handed to the actor (``api_keys``); their
    refresh tokens for this organization and their sessions end (accounts.revocation)."""
    principal = _require(organization, actor, "members.remove")
    membership = Membership.objects.for_org(organization).select_for_update().get(pk=membership.pk)
    if principal.user is not None and membership.user_id == principal.user.pk:
        raise ApplicationError("To remove yourself, use “Leave organization”.", code="use_leave")
    if not can_manage_member(actor_role=principal.role, target_role=membership.role):
        raise PermissionDenied("Only an owner can remove an owner.")
    _ensure_owner_remains(organization, membership)
    user = membership.user
    keys = api_keys_of_member_dispose(organization=organization, member=user, disposition=api_keys, actor=principal)
    activity_record(
        "member.removed", organization=organization, actor=principal, resource_type="membership", resource=membership,
        before={"role": membership.role},
        metadata={"email": user.email, "api_keys": keys, "api_keys_disposition": api_keys},
    )
    membership.delete()
    person_sign_ins_revoke(
        user=user, reason="removed_from_organization", organization=organization, request=request, actor=principal
    )
    publish_org_event(organization.id, "member.removed", {"email": user.email})
    access_recheck_user(user.pk)


@transaction.atomic
def membership_leave(*, organization: Organization, user: User, request=None) -> None:
    """Leave an organization: the keys one made there are revoked (nobody chose to keep them)."""
    membership = membership_for_user(organization=organization, user=user)
    if membership is None:
        raise PermissionDenied("You are not a member of this organization.")
    membership = Membership.objects.for_org(organization).select_for_update().get(pk=membership.pk)
    _ensure_owner_remains(organization, membership)
    membership.organization = organization
    principal = Principal.member(membership)
    keys = api_keys_of_member_dispose(organization=organization, member=user, disposition=KeyDisposition.REVOKE, actor=principal)
    activity_record(
        "member.left", organization=organization, actor=principal, resource_type="membership", resource=membership,
        before={"role": membership.role}, metadata={"email": user.email, "api_keys": keys},
    )
    membership.delete()
    keep = getattr(getattr(request, "session", None), "session_key", None)
    person_sign_ins_revoke(user=user, reason="left_organization", organization=organization, keep_session_key=keep, request=request)
    publish_org_event(organization.id, "member.removed", {"email": user.email})
    access_recheck_user(user.pk)


# --- invitations -----------------------------------------------------------


@transaction.atomic
def invitation_create(*, organization: Organization, actor: User, email: str, role: str = Role.MEMBER) -> tuple[Invitation, str]:
    """Invite ``email``; returns the invitation and its token (sent by email, never stored)."""
    principal = _require(organization, actor, "members.invite")
    if principal.user is None:
        raise PermissionDenied("Invitations are sent by a person; sign in to invite someone.")
    actor_membership, actor = principal, principal.user
    if not user_email_verified(user=actor):
        raise ApplicationError(
            f"Verify your email address first: open the link we sent to {actor.email}. "
            "Invitations are sent only by verified accounts.",
            code="email_unverified",
            status=403,
        )
    email = _clean_email(email)
    role = _clean_role(role)
    if role == Role.OWNER and actor_membership.role != Role.OWNER:
        raise PermissionDenied("Only an owner can invite another owner.")
    if Membership.objects.for_org(organization).filter(user__email__iexact=email).exists():
        raise ApplicationError(f"{email} is already a member of {organization.name}.", field="email", code="duplicate")
    _check_seats(_lock_organization(organization.pk), resending_to=email)
    # A new invitation replaces an open one to the same address (resending).
    Invitation.objects.for_org(organization).filter(
        email__iexact=email, accepted_at__isnull=True, revoked_at__isnull=True
    ).update(revoked_at=timezone.now())
    token = secrets.token_urlsafe(32)
    invitation = Invitation.objects.create(
        organization=organization,
        email=email,
        role=role,
        token_hash=secret_digest(token),
        invited_by=actor,
        expires_at=timezone.now() + timedelta(hours=settings.INVITATION_TTL_HOURS),
    )
    url = f"{settings.SITE_URL}/invitations/{token}/"
    context = {"invitation": invitation, "organization": organization, "inviter": actor, "url": url}
    subject = f"{actor.get_full_name()} invited you to {organization.name} on JagCall"
    body = render_to_string("accounts/email/invitation.txt", context)
    transaction.on_commit(lambda: send_mail(subject=subject, message=body, from_email=None, recipient_list=[email]))
    activity_record(
        "invitation.created", organization=organization, actor=principal, resource_type="invitation", resource=invitation,
        after={"email": email, "role": role, "expires_at": invitation.expires_at.isoformat()},
    )
    publish_org_event(organization.id, "invitation.created", {"email": email, "role": role})
    return invitation, token


@transaction.atomic
def invitation_revoke(*, organization: Organization, actor, invitation: Invitation) -> Invitation:
    actor = _require(organization, actor, "members.invite")
    if invitation.status != "pending":
        raise ApplicationError(f"This invitation is already {invitation.status}.", code="not_pending")
    invitation.revoked_at = timezone.now()
    invitation.save(update_fields=["revoked_at"])
    activity_record(
        "invitation.revoked", organization=organization, actor=actor, resource_type="invitation", resource=invitation,
        metadata={"email": invitation.email},
    )
    return invitation


def seats_in_use(organization: Organization) -> int:
    """The plan's ``seats`` in use: the members (the counter the plan change checks)."""
    return Membership.objects.for_org(organization).count()


def _lock_organization(organization_id) -> Organization:
    """The organization's row, locked: seats are counted and taken one invitation or acceptance at a time."""
    return Organization.objects.select_for_update().get(pk=organization_id)


def _check_seats(organization: Organization, *, resending_to: str | None = None, accepting: bool = False) -> None:
    """Refuse a new seat beyond the plan's ``seats`` (the caller holds ``_lock_organization``).

    Inviting counts the members and the open invitations (each holds a seat until it is accepted, withdrawn
    or expires; one being resent replaces itself); accepting counts the members only, so whoever accepts
    first while seats remain gets one.
    """
    used = seats_in_use(organization)
    if not accepting:
        pending = Invitation.objects.for_org(organization).pending()
        if resending_to:
            pending = pending.exclude(email__iexact=resending_to)
        used += pending.count()
    refusal = limit_refusal(organization, "seats", used=used)
    if refusal:
        if not accepting:
            refusal = f"{refusal} Open invitations count as seats until they are accepted, withdrawn or expire."
        raise ApplicationError(refusal, field=None if accepting else "email", code="plan_limit", status=409)


def invitation_find(*, token: str) -> Invitation:
    """The invitation behind a token, whatever its state; ApplicationError if unknown."""
    invitation = (
        Invitation.objects.unscoped("an invitation found by its secret token names its own organization").select_related("organization", "invited_by").filter(token_hash=secret_digest(token or "")).first()
    )
    if invitation is None:
        raise ApplicationError("This invitation link is not valid. Ask for a new invitation.", code="not_found", status=404)
    return invitation


def _check_usable(invitation: Invitation) -> None:
    messages = {
        "accepted": "This invitation has already been used. Sign in to reach the organization.",
        "revoked": "This invitation was withdrawn. Ask the person who invited you for a new one.",
        "expired": "This invitation has expired. Ask the person who invited you to send a new one.",
    }
    if invitation.status in messages:
        raise ApplicationError(messages[invitation.status], code=f"invitation_{invitation.status}", status=410)
    if not invitation.organization.is_active:
        raise ApplicationError("This organization is closed.", code="organization_terminated", status=410)


@transaction.atomic
def invitation_accept(
    *, token: str, user: User | None = None, name: str = "", password: str | None = None
) -> Membership:
    """Accept an invitation: as the signed-in ``user``, or by creating the account.

    [!!] Single use: the invitation row is locked and marked accepted in the
    same transaction that creates the membership.
    """
    invitation = invitation_find(token=token)
    # The organization's row before the invitation's: the order invitation_create locks them in.
    organization = _lock_organization(invitation.organization_id)
    invitation = Invitation.objects.unscoped("the invitation's own row, locked while it is accepted").select_for_update().select_related("organization").get(pk=invitation.pk)
    _check_usable(invitation)
    if user is not None:
        if normalize_email(user.email) != normalize_email(invitation.email):
            raise ApplicationError(
                f"This invitation is for {invitation.email}, but you are signed in as {user.email}. "
                "Sign out and open the link again.",
                code="wrong_account",
                status=403,
            )
    elif User.objects.filter(email__iexact=invitation.email).exists():
        raise ApplicationError(
            f"An account for {invitation.email} already exists. Sign in to accept.", code="sign_in_required", status=409
        )
    if user is None or not Membership.objects.for_org(invitation.organization).filter(user=user).exists():
        # The organization may have filled up since the invitation was sent.
        _check_seats(organization, accepting=True)
    if user is None:
        # The link arrived at this address: it is verified.
        user = user_create(email=invitation.email, password=password, name=name, email_verified=True)
    user_email_mark_verified(user=user)
    membership, created = Membership.objects.get_or_create(
        organization=invitation.organization, user=user, defaults={"role": invitation.role}
    )
    invitation.accepted_at = timezone.now()
    invitation.accepted_by = user
    invitation.save(update_fields=["accepted_at", "accepted_by"])
    activity_record(
        "invitation.accepted", organization=invitation.organization, actor=user, resource_type="invitation", resource=invitation,
        metadata={"email": user.email, "role": membership.role, "membership_id": str(membership.pk), "joined": created},
    )
    if created:
        publish_org_event(invitation.organization_id, "member.joined", {"email": user.email, "role": membership.role})
    return membership


@transaction.atomic
def invitation_purge_expired(*, older_than_days: int = 30) -> int:
    """Delete invitations that expired or were revoked long ago; accepted ones stay as history."""
    cutoff = timezone.now() - timedelta(days=older_than_days)
    deleted, _ = (
        Invitation.objects.unscoped("the purge of expired invitations, every organization")
        .filter(accepted_at__isnull=True)
        .filter(expires_at__lt=cutoff)
        .delete()
    )
    return deleted


# --- plan and standing (billing's one way in) -------------------------------------


@transaction.atomic
def organization_billing_update(
    *, organization: Organization, plan_code: str | None = None, standing: str | None = None, actor=None, reason: str = ""
) -> Organization:
    """Set ``organization``'s plan and/or billing standing: the only write of either (billing calls it).

    ``actor``: the person or key behind the change (a support agent granting a plan), or None for the
    system (a Stripe event). Audited with the before and after values and the ``reason``; the
    organization's pages hear of it live. A change to nothing writes nothing.
    """
    from accounts.entitlements import PLANS, Standing

    if plan_code is not None and plan_code not in PLANS:
        raise ApplicationError(f"Unknown plan {plan_code!r}: choose one of {', '.join(PLANS)}.", field="plan_code")
    if standing is not None and standing not in {code for code, _ in Standing.CHOICES}:
        raise ApplicationError(f"Unknown billing standing {standing!r}.", field="standing")
    locked = Organization.objects.select_for_update().get(pk=organization.pk)
    before = {"plan_code": locked.plan_code, "billing_standing": locked.billing_standing}
    after = {
        "plan_code": plan_code if plan_code is not None else locked.plan_code,
        "billing_standing": standing if standing is not None else locked.billing_standing,
    }
    if after == before:
        return locked
    locked.plan_code, locked.billing_standing = after["plan_code"], after["billing_standing"]
    locked.save(update_fields=["plan_code", "billing_standing", "updated_at"])
    organization.plan_code, organization.billing_standing = locked.plan_code, locked.billing_standing
    activity_record(
        "organization.plan_changed", organization=locked, actor=actor, resource_type="organization", resource=locked,
        before=before, after=after, metadata={"reason": reason[:200]} if reason else None,
    )
    publish_org_event(locked.id, "organization.plan_changed", after)
    return locked


def organization_spend_cap_mark(*, organization: Organization, reached_month: date | None) -> bool:
    """Record the month in which the spend cap was reached (None: not reached), which the gates read from the
    organization row they already hold. Billing is the only caller; it audits the cap's events itself.

    Returns whether anything changed. ``organization`` is updated in place.
    """
    rows = Organization.objects.filter(pk=organization.pk)
    if reached_month is None:
        rows = rows.filter(spend_cap_reached_month__isnull=False)
    else:
        rows = rows.filter(Q(spend_cap_reached_month__isnull=True) | ~Q(spend_cap_reached_month=reached_month))
    # One conditional UPDATE: no write (and no lock) when nothing changes, and of two racing callers only one
    # sees the change (the second re-reads the row after the first commits).
    changed = rows.update(spend_cap_reached_month=reached_month, updated_at=timezone.now()) == 1
    organization.spend_cap_reached_month = reached_month
    return changed
