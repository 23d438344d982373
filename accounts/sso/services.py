"""Single sign-on writes: an owner's configuration and verified domains, and the sign-in an identity provider vouched for.

[!!] Assertions must be signed by the certificate in the stored metadata,
addressed to this organization's SP, fresh, answering a request this browser
started, and used once (``assertion_mark_used``).
"""

from __future__ import annotations

import logging
import secrets
from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.activity import activity_record
from accounts.entitlements import has_entitlement, limit_refusal, plan_limit, plan_of
from accounts.models import Membership, Organization, User, normalize_email
from accounts.permissions import Role
from accounts.principals import Principal
from accounts.revocation import organization_sign_ins_revoke
from accounts.security_events import emit
from accounts.selectors import membership_for_user
from accounts.services import _lock_organization, _require, seats_in_use, user_create
from accounts.sso.domains import (
    DnsUnavailable,
    domain_normalize,
    domain_of_email,
    txt_record_names,
    txt_record_published,
    txt_record_value,
)
from accounts.sso.models import SamlConfiguration, SamlIdentity, SsoDomain, SsoDomainVerification
from accounts.sso.saml import idp_metadata_parse
from accounts.sso.selectors import sso_domain_is_verified
from accounts.tenancy import get_for_org_or_404
from jagcall.kernel.errors import ApplicationError, PermissionDenied

logger = logging.getLogger(__name__)

ENTERPRISE_REQUIRED = "Single sign-on is part of the Enterprise plan. Upgrade to set it up."
REPLAY_MIN_SECONDS = 60


@transaction.atomic
def sso_configure(
    *,
    organization: Organization,
    actor,
    metadata_xml: str,
    metadata_url: str = "",
    enabled: bool,
    require_sso: bool,
    request=None,
) -> SamlConfiguration:
    """``actor``: a Principal (or a User acting for themselves), accounts.principals.as_principal.

    Turning "single sign-on required" on ends the sessions and the refresh
    tokens (JWT and OAuth) of every member it applies to (all but owners), so
    they come back through the identity provider; the session of ``request``
    (the owner making the change) stays.
    """
    principal = _require(organization, actor, "sso.manage")
    if not has_entitlement(organization, "sso"):
        raise ApplicationError(ENTERPRISE_REQUIRED, code="plan_required", status=403)
    idp_entity_id = idp_metadata_parse(metadata_xml)
    metadata_url = (metadata_url or "").strip()
    if metadata_url and not metadata_url.startswith("https://"):
        raise ApplicationError("The metadata address must start with https://.", field="metadata_url")
    if require_sso and not enabled:
        raise ApplicationError("Turn single sign-on on before requiring it.", field="require_sso")
    previous = SamlConfiguration.objects.for_org(organization).select_for_update().first()
    tightened = bool(require_sso) and not (previous is not None and previous.require_sso)
    configuration, _created = SamlConfiguration.objects.for_org(organization).select_for_update().update_or_create(
        organization=organization,
        defaults={
            "idp_entity_id": idp_entity_id,
            "idp_metadata_xml": metadata_xml.strip(),
            "idp_metadata_url": metadata_url,
            "enabled": enabled,
            "require_sso": require_sso,
        },
    )
    emit(
        "sso.configured",
        user=principal.user,
        organization=organization,
        idp_entity_id=idp_entity_id,
        enabled=enabled,
        require_sso=require_sso,
    )
    if tightened:
        # [!!] Sign-ins made under the old rule (a password, a token obtained with one) end now.
        members = [
            membership.user
            for membership in Membership.objects.for_org(organization).select_related("user").exclude(role=Role.OWNER)
        ]
        organization_sign_ins_revoke(
            organization=organization,
            users=members,
            reason="sso_required",
            keep_session_key=getattr(getattr(request, "session", None), "session_key", None),
            request=request,
        )
    return configuration


def assertion_mark_used(*, assertion_id: str, not_on_or_after: datetime | None) -> bool:
    """Record an accepted assertion id until it expires; False if it was seen before (a replay)."""
    seconds = REPLAY_MIN_SECONDS
    if not_on_or_after is not None:
        seconds = max(seconds, int((not_on_or_after - timezone.now()).total_seconds()) + settings.SAML_ACCEPTED_TIME_DIFF)
    return cache.add(f"sso:assertion:{assertion_id}", 1, timeout=seconds)


class SsoLoginRefused(ApplicationError):
    """Single sign-on will not sign this person in; ``reason`` goes to the security event only.

    [!!] The message never says whether an account exists: a removed member,
    a disabled account, an account that belongs elsewhere and a staff
    account all read the same.
    """

    def __init__(self, message: str, *, reason: str):
        super().__init__(message, code="sso_refused", status=403)
        self.reason = reason


def _refuse(organization: Organization, reason: str) -> SsoLoginRefused:
    return SsoLoginRefused(
        f"{organization.name} cannot sign you in through single sign-on with this identity. "
        f"If you should have access, ask an owner of {organization.name} to invite you, "
        "then sign in through single sign-on again.",
        reason=reason,
    )


def _check_seat_free(organization: Organization) -> None:
    """Refuse to provision a member beyond the plan's ``seats`` (as accepting an invitation would)."""
    locked = _lock_organization(organization.pk)  # seats are taken one at a time (accounts.services)
    if limit_refusal(locked, "seats", used=seats_in_use(locked)) is None:
        return
    raise SsoLoginRefused(
        f"{organization.name} has used all {plan_limit(locked, 'seats')} team member seats of its "
        f"{plan_of(locked).name} plan, so single sign-on cannot add you. Ask an owner of {organization.name} to "
        "free a seat or upgrade the plan, then sign in through single sign-on again.",
        reason="seats_full",
    )


def _check_may_sign_in(*, organization: Organization, user: User) -> None:
    """[!!] Who an identity provider may sign in: an active, non-staff member of its organization."""
    if user.is_staff or user.is_superuser:
        # Support staff sign in with JagCall's own password and second factor only.
        raise _refuse(organization, "staff_account")
    if not user.is_active:
        raise _refuse(organization, "account_disabled")
    if membership_for_user(organization=organization, user=user) is None:
        # Removed from the organization, or an account that belongs only to other organizations.
        raise _refuse(organization, "not_a_member")


def sso_login_complete(
    *, request, organization: Organization, idp_entity_id: str, name_id: str, email: str, name: str
) -> User:
    """The person an IdP vouched for: their linked account, else one linked or provisioned just in time.

    A refusal (SsoLoginRefused) is recorded as ``sso.login_refused`` with its
    reason, after the sign-in's own transaction has rolled back.
    """
    try:
        return _sso_login(
            request=request, organization=organization, idp_entity_id=idp_entity_id, name_id=name_id, email=email, name=name
        )
    except SsoLoginRefused as refusal:
        emit(
            "sso.login_refused",
            request=request,
            email=normalize_email(email) or None,
            organization=organization,
            idp_entity_id=idp_entity_id,
            name_id=(name_id or "")[:200],
            reason=refusal.reason,
        )
        raise


@transaction.atomic
def _sso_login(*, request, organization: Organization, idp_entity_id: str, name_id: str, email: str, name: str) -> User:
    """[!!] Rules, in order:

    1. A person already linked by (IdP entityID, NameID) is that person
       (links made before domains were verified keep working).
    2. Otherwise the email the IdP sends must be in a domain this organization
       verified; outside them nothing is linked or created, and no address
       is marked verified on the IdP's word.
    3. An account with that email is linked only if it is already a member of
       this organization: an organization's IdP must not be able to sign in as
       someone who belongs only to other organizations. Else a new member is
       provisioned just in time.
    Staff and superuser accounts are never signed in by an identity provider.
    """
    if not name_id:
        raise ApplicationError("Your identity provider did not say who you are (no NameID).", code="no_name_id")
    identity = (
        SamlIdentity.objects.for_org(organization)
        .select_related("user")
        .filter(idp_entity_id=idp_entity_id, name_id=name_id)
        .first()
    )
    if identity is not None:
        user = identity.user
        _check_may_sign_in(organization=organization, user=user)
        identity.last_login_at = timezone.now()
        identity.save(update_fields=["last_login_at"])
        emit("sso.login", request=request, user=user, organization=organization, idp_entity_id=idp_entity_id, provisioned=False)
        return user

    email = normalize_email(email)
    if not email:
        raise ApplicationError("Your identity provider did not send an email address.", code="no_email")
    domain = domain_of_email(email)
    if not domain or not sso_domain_is_verified(organization=organization, domain=domain):
        raise SsoLoginRefused(
            f"{organization.name} has not verified the domain of {email} for single sign-on, so JagCall cannot "
            f"sign you in with it. Ask an owner of {organization.name} to verify {domain or 'that domain'} "
            "on the organization's single sign-on settings page, then sign in again.",
            reason="domain_not_verified",
        )
    provisioned = False
    user = User.objects.filter(email__iexact=email).first()
    if user is None or membership_for_user(organization=organization, user=user) is None:
        # Whoever is not a member yet would take a seat: asked first, so that a full organization gives
        # everyone the same answer, whether an account exists or not.
        _check_seat_free(organization)
    if user is not None:
        _check_may_sign_in(organization=organization, user=user)
    else:
        try:
            user = user_create(email=email, name=name, password=None, email_verified=True)
        except ApplicationError:  # created by a concurrent sign-in: refuse like any existing account
            raise _refuse(organization, "not_a_member") from None
        Membership.objects.create(organization=organization, user=user, role=Role.MEMBER)
        provisioned = True
    SamlIdentity.objects.create(
        organization=organization, user=user, idp_entity_id=idp_entity_id, name_id=name_id, last_login_at=timezone.now()
    )
    emit("sso.login", request=request, user=user, organization=organization, idp_entity_id=idp_entity_id, provisioned=provisioned)
    return user


# --- verified email domains ------------------------------------------------------------------

MAX_DOMAINS = 50


def _sso_entitled(organization: Organization) -> None:
    if not has_entitlement(organization, "sso"):
        raise ApplicationError(ENTERPRISE_REQUIRED, code="plan_required", status=403)


@transaction.atomic
def sso_domain_add(*, organization: Organization, actor, domain: str) -> SsoDomain:
    """An owner claims an email domain; it verifies once its TXT record is published."""
    principal = _require(organization, actor, "sso.manage")
    _sso_entitled(organization)
    domain = domain_normalize(domain)
    existing = SsoDomain.objects.for_org(organization).select_for_update()
    if existing.filter(domain=domain).exists():
        raise ApplicationError(f"{domain} is already in the list below.", field="domain", code="duplicate")
    if existing.count() >= MAX_DOMAINS:
        raise ApplicationError(
            f"An organization can have at most {MAX_DOMAINS} domains. Remove one you no longer use first.", field="domain"
        )
    row = SsoDomain.objects.create(
        organization=organization, domain=domain, token=secrets.token_urlsafe(24), created_by=principal.user
    )
    activity_record("sso_domain.added", organization=organization, actor=principal, resource_type="sso_domain", resource=row, after={"domain": domain})
    return row


def sso_domain_verify(*, organization: Organization, actor, domain_id) -> SsoDomain:
    """Look for the domain's TXT record in DNS; verified when it carries this row's token.

    Not one transaction: the DNS question can take seconds and holds no row.
    """
    principal = _require(organization, actor, "sso.manage")
    _sso_entitled(organization)
    row = get_for_org_or_404(SsoDomain, organization=organization, pk=domain_id)
    if row.is_verified:
        return row
    try:
        published = txt_record_published(row.domain, row.token)
    except DnsUnavailable:
        logger.warning("DNS lookup for domain verification of %s failed", row.domain, exc_info=True)
        raise ApplicationError(
            f"JagCall could not ask DNS about {row.domain} just now. Try again in a few minutes.",
            code="dns_unavailable",
            status=503,
        ) from None
    SsoDomain.objects.for_org(organization).filter(pk=row.pk).update(last_checked_at=timezone.now())
    if not published:
        raise ApplicationError(
            f"No TXT record {txt_record_value(row.token)} was found at {txt_record_names(row.domain)[0]} or at "
            f"{row.domain}. Publish it with your DNS provider; changes can take up to an hour to show, "
            "then press Verify again.",
            code="dns_record_missing",
        )
    return _sso_domain_mark_verified(row=row, actor=principal, method=SsoDomainVerification.DNS)


@transaction.atomic
def sso_domain_approve(*, domain: SsoDomain, actor: User) -> SsoDomain:
    """Support staff vouch for a domain in the back office (the customer showed ownership another way).

    ``actor``: the staff member (a User), or their support Principal.
    """
    staff = actor.user if isinstance(actor, Principal) else actor
    if not (staff is not None and staff.is_active and staff.is_staff):
        raise PermissionDenied("Only JagCall support staff can approve a domain.")
    if domain.is_verified:
        return domain
    return _sso_domain_mark_verified(row=domain, actor=Principal.support(staff), method=SsoDomainVerification.STAFF)


@transaction.atomic
def _sso_domain_mark_verified(*, row: SsoDomain, actor: Principal, method: str) -> SsoDomain:
    row = SsoDomain.objects.for_org(row.organization).select_for_update().get(pk=row.pk)
    if row.is_verified:
        return row
    row.verified_at = timezone.now()
    row.verification_method = method
    row.verified_by = actor.user
    row.save(update_fields=["verified_at", "verification_method", "verified_by"])
    activity_record(
        "sso_domain.verified",
        organization=row.organization,
        actor=actor,
        resource_type="sso_domain", resource=row,
        before={"verified": False},
        after={"verified": True, "method": method},
        metadata={"domain": row.domain},
    )
    return row


@transaction.atomic
def sso_domain_remove(*, organization: Organization, actor, domain_id) -> None:
    """No more provisioning or linking by email for this domain; people already linked keep signing in."""
    principal = _require(organization, actor, "sso.manage")
    row = get_for_org_or_404(SsoDomain.objects.select_for_update(), organization=organization, pk=domain_id)
    activity_record(
        "sso_domain.removed",
        organization=organization,
        actor=principal,
        resource_type="sso_domain", resource=row,
        before={"domain": row.domain, "verified": row.is_verified},
    )
    row.delete()
