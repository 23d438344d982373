"""Single sign-on writes: an owner's configuration, and the sign-in an identity provider vouched for.

[!!] Assertions must be signed by the certificate in the stored metadata,
addressed to this organization's SP, fresh, answering a request this browser
started, and used once (``assertion_mark_used``).
"""

from __future__ import annotations

from datetime import datetime

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from accounts.entitlements import has_entitlement
from accounts.models import Membership, Organization, User, normalize_email
from accounts.permissions import Role
from accounts.security_events import emit
from accounts.selectors import membership_for_user
from accounts.services import _require, user_create
from accounts.sso.models import SamlConfiguration, SamlIdentity
from accounts.sso.saml import idp_metadata_parse
from jagcall.kernel.errors import ApplicationError

ENTERPRISE_REQUIRED = "Single sign-on is part of the Enterprise plan. Upgrade to set it up."
REPLAY_MIN_SECONDS = 60


@transaction.atomic
def sso_configure(
    *,
    organization: Organization,
    actor: User,
    metadata_xml: str,
    metadata_url: str = "",
    enabled: bool,
    require_sso: bool,
) -> SamlConfiguration:
    _require(organization, actor, "sso.manage")
    if not has_entitlement(organization, "sso"):
        raise ApplicationError(ENTERPRISE_REQUIRED, code="plan_required", status=403)
    idp_entity_id = idp_metadata_parse(metadata_xml)
    metadata_url = (metadata_url or "").strip()
    if metadata_url and not metadata_url.startswith("https://"):
        raise ApplicationError("The metadata address must start with https://.", field="metadata_url")
    if require_sso and not enabled:
        raise ApplicationError("Turn single sign-on on before requiring it.", field="require_sso")
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
        user=actor,
        organization=organization,
        idp_entity_id=idp_entity_id,
        enabled=enabled,
        require_sso=require_sso,
    )
    return configuration


def assertion_mark_used(*, assertion_id: str, not_on_or_after: datetime | None) -> bool:
    """Record an accepted assertion id until it expires; False if it was seen before (a replay)."""
    seconds = REPLAY_MIN_SECONDS
    if not_on_or_after is not None:
        seconds = max(seconds, int((not_on_or_after - timezone.now()).total_seconds()) + settings.SAML_ACCEPTED_TIME_DIFF)
    return cache.add(f"sso:assertion:{assertion_id}", 1, timeout=seconds)


@transaction.atomic
def sso_login_complete(
    *, request, organization: Organization, idp_entity_id: str, name_id: str, email: str, name: str
) -> User:
    """The person an IdP vouched for: their linked account, else one provisioned just in time.

    [!!] An email sent by the IdP links to an existing account only if that
    account is already a member of this organization: an organization's IdP
    must not be able to sign in as someone who belongs only to other
    organizations.
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
        if not user.is_active:
            raise ApplicationError("This account is disabled.", code="user_disabled", status=403)
        if membership_for_user(organization=organization, user=user) is None:
            # Removed from the organization: signing in through its IdP does not bring them back.
            raise ApplicationError(
                f"You are no longer a member of {organization.name}. Ask an owner to invite you again.",
                code="not_a_member",
                status=403,
            )
        identity.last_login_at = timezone.now()
        identity.save(update_fields=["last_login_at"])
        emit("sso.login", request=request, user=user, organization=organization, idp_entity_id=idp_entity_id, provisioned=False)
        return user

    email = normalize_email(email)
    if not email:
        raise ApplicationError("Your identity provider did not send an email address.", code="no_email")
    provisioned = False
    user = User.objects.filter(email__iexact=email).first()
    if user is not None:
        if not user.is_active:
            raise ApplicationError("This account is disabled.", code="user_disabled", status=403)
        if membership_for_user(organization=organization, user=user) is None:
            raise ApplicationError(
                f"An account with {email} already exists. Ask an owner of {organization.name} to invite it, "
                "then sign in through single sign-on again.",
                code="account_exists",
                status=403,
            )
    else:
        user = user_create(email=email, name=name, password=None, email_verified=True)
        Membership.objects.create(organization=organization, user=user, role=Role.MEMBER)
        provisioned = True
    SamlIdentity.objects.create(
        organization=organization, user=user, idp_entity_id=idp_entity_id, name_id=name_id, last_login_at=timezone.now()
    )
    emit("sso.login", request=request, user=user, organization=organization, idp_entity_id=idp_entity_id, provisioned=provisioned)
    return user
