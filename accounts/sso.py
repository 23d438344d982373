"""SAML 2.0 single sign-on (Enterprise plan): services, reads and the SP configuration.

An organization's owner pastes its identity provider's metadata; JagCall is
then a service provider at ``/sso/<slug>/`` for that organization only.
People are keyed on (IdP entityID, NameID) within the organization, never on
the email the IdP sends.

[!!] Assertions must be signed by the certificate in the stored metadata,
addressed to this organization's SP, fresh, answering a request this browser
started, and used once (``assertion_mark_used``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone as dt_timezone

import saml2
from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from saml2.attribute_converter import ac_factory
from saml2.config import SPConfig
from saml2.mdstore import InMemoryMetaData

from accounts.entitlements import has_entitlement
from accounts.models import Membership, Organization, OrganizationStatus, SamlConfiguration, SamlIdentity, User, normalize_email
from accounts.permissions import Role
from accounts.security_events import emit
from accounts.selectors import membership_for_user
from accounts.services import _require, user_create
from jagcall.kernel.errors import ApplicationError

logger = logging.getLogger(__name__)

ENTERPRISE_REQUIRED = "Single sign-on is part of the Enterprise plan. Upgrade to set it up."
REPLAY_MIN_SECONDS = 60
MAX_METADATA_CHARS = 500_000

# Attribute names identity providers use for the email address and the display name.
EMAIL_ATTRIBUTES = (
    "mail",
    "email",
    "emailAddress",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress",
    "urn:oid:0.9.2342.19200300.100.1.3",
)
NAME_ATTRIBUTES = (
    "displayName",
    "cn",
    "name",
    "http://schemas.microsoft.com/identity/claims/displayname",
    "http://schemas.xmlsoap.org/ws/2005/05/identity/claims/name",
)


# --- reads -------------------------------------------------------------------------


def sso_configuration_get(*, organization: Organization) -> SamlConfiguration | None:
    return SamlConfiguration.objects.for_org(organization).first()


def sso_configuration_for_login(*, slug: str) -> SamlConfiguration | None:
    """The enabled configuration behind ``/sso/<slug>/``, or None (unknown, closed, disabled, not Enterprise)."""
    configuration = (
        SamlConfiguration.objects.unscoped()
        .select_related("organization")
        .filter(organization__slug=slug, organization__status=OrganizationStatus.ACTIVE, enabled=True)
        .first()
    )
    if configuration is None or not has_entitlement(configuration.organization, "sso"):
        return None
    return configuration


def sp_urls(organization: Organization) -> dict[str, str]:
    """The addresses an owner gives their identity provider."""
    kwargs = {"sso_slug": organization.slug}
    return {
        "entity_id": settings.SITE_URL + reverse("sso:metadata", kwargs=kwargs),
        "acs": settings.SITE_URL + reverse("sso:acs", kwargs=kwargs),
        "login": settings.SITE_URL + reverse("sso:login", kwargs=kwargs),
    }


def sso_required_organization(user: User) -> Organization | None:
    """The organization that makes ``user`` sign in through SSO, if any: one where they
    are a non-owner member and SSO is required (owners keep password sign-in as break-glass)."""
    memberships = (
        Membership.objects.unscoped()
        .filter(
            user=user,
            organization__status=OrganizationStatus.ACTIVE,
            organization__saml_configuration__enabled=True,
            organization__saml_configuration__require_sso=True,
        )
        .exclude(role=Role.OWNER)
        .select_related("organization")
        .order_by("organization__name")
    )
    return next((m.organization for m in memberships if has_entitlement(m.organization, "sso")), None)


# --- metadata ----------------------------------------------------------------------


def idp_metadata_parse(xml: str) -> str:
    """Check that ``xml`` is SAML metadata of one IdP with a signing certificate; return its entityID."""
    xml = (xml or "").strip()
    if not xml:
        raise ApplicationError("Paste your identity provider's SAML metadata (XML).", field="metadata_xml")
    if len(xml) > MAX_METADATA_CHARS:
        raise ApplicationError("This metadata is too large; paste only your identity provider's entry.", field="metadata_xml")
    try:
        metadata = InMemoryMetaData(ac_factory(), xml)
        metadata.load()  # defusedxml underneath: no entities, no external references
    except Exception:  # pysaml2 raises many kinds for malformed input
        logger.info("Unreadable IdP metadata", exc_info=True)
        raise ApplicationError(
            "This is not valid SAML metadata. Download the metadata XML from your identity provider and paste all of it.",
            field="metadata_xml",
        ) from None
    idps = [entity_id for entity_id in metadata.keys() if metadata[entity_id].get("idpsso_descriptor")]
    if len(idps) != 1:
        raise ApplicationError(
            "The metadata must describe exactly one identity provider (an IDPSSODescriptor with an entityID).",
            field="metadata_xml",
        )
    entity_id = idps[0]
    if not metadata.certs(entity_id, "idpsso", use="signing"):
        raise ApplicationError(
            "The identity provider's metadata has no signing certificate, so its sign-ins could not be verified.",
            field="metadata_xml",
        )
    if not metadata.service(entity_id, "idpsso_descriptor", "single_sign_on_service"):
        raise ApplicationError("The identity provider's metadata has no single sign-on service address.", field="metadata_xml")
    return entity_id


# --- services ----------------------------------------------------------------------


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


def _first(attributes: dict, names: tuple[str, ...]) -> str:
    for name in names:
        values = attributes.get(name) or []
        for value in values:
            if isinstance(value, str) and value.strip():
                return value.strip()
    return ""


def attributes_email_and_name(attributes: dict, name_id: str) -> tuple[str, str]:
    email = _first(attributes, EMAIL_ATTRIBUTES)
    if not email and "@" in name_id:
        email = name_id
    return normalize_email(email), _first(attributes, NAME_ATTRIBUTES)[:150]


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


# --- the service provider, per organization ---------------------------------------


class SsoUnavailable(Exception):
    """No enabled single sign-on behind this address."""


def sp_config(configuration: SamlConfiguration) -> SPConfig:
    urls = sp_urls(configuration.organization)
    conf = SPConfig()
    conf.load(
        {
            "entityid": urls["entity_id"],
            "xmlsec_binary": settings.SAML_XMLSEC_BINARY,
            "metadata": {"inline": [configuration.idp_metadata_xml]},
            "accepted_time_diff": settings.SAML_ACCEPTED_TIME_DIFF,
            "allow_unknown_attributes": True,
            "service": {
                "sp": {
                    "name": f"JagCall ({configuration.organization.name})",
                    "endpoints": {"assertion_consumer_service": [(urls["acs"], saml2.BINDING_HTTP_POST)]},
                    # Only answers to requests this browser started (djangosaml2's outstanding queries).
                    "allow_unsolicited": False,
                    "authn_requests_signed": False,
                    "want_assertions_signed": True,
                    "want_response_signed": False,
                    "only_use_keys_in_metadata": True,
                }
            },
        }
    )
    return conf


def saml_config_loader(request) -> SPConfig:
    """djangosaml2's SAML_CONFIG_LOADER: the SP of the organization named in the URL."""
    configuration = getattr(request, "saml_configuration", None)
    if configuration is None:
        match = getattr(request, "resolver_match", None)
        slug = match.kwargs.get("sso_slug") if match else None
        configuration = sso_configuration_for_login(slug=slug) if slug else None
    if configuration is None:
        raise SsoUnavailable("Single sign-on is not set up for this organization.")
    return sp_config(configuration)


def not_on_or_after(value) -> datetime | None:
    """pysaml2 gives SAML times as strings; None when absent or unreadable."""
    if not value:
        return None
    if isinstance(value, datetime):
        return value
    try:
        parsed = datetime.strptime(value.replace(".000", "").rstrip("Z"), "%Y-%m-%dT%H:%M:%S")
    except ValueError:
        try:
            parsed = datetime.fromisoformat(value.rstrip("Z"))
        except ValueError:
            return None
    return parsed.replace(tzinfo=dt_timezone.utc) if parsed.tzinfo is None else parsed
