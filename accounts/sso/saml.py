"""SAML 2.0 single sign-on (Enterprise plan): the protocol side (metadata, the per-organization SP, assertion values).

An organization's owner pastes its identity provider's metadata; JagCall is
then a service provider at ``/sso/<slug>/`` for that organization only.
People are keyed on (IdP entityID, NameID) within the organization, never on
the email the IdP sends.

[!!] Assertions must be signed by the certificate in the stored metadata,
addressed to this organization's SP, fresh, answering a request this browser
started, and used once (``assertion_mark_used``).
"""

from __future__ import annotations

import calendar
import logging
from datetime import datetime, timezone as dt_timezone

import saml2
from django.conf import settings
from django.urls import reverse
from saml2 import time_util
from saml2.attribute_converter import ac_factory
from saml2.config import SPConfig
from saml2.mdstore import InMemoryMetaData

from accounts.models import Organization, normalize_email
from accounts.sso.models import SamlConfiguration
from accounts.sso.selectors import sso_configuration_for_login
from jagcall.kernel.errors import ApplicationError

logger = logging.getLogger(__name__)

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


def sp_urls(organization: Organization) -> dict[str, str]:
    """The addresses an owner gives their identity provider."""
    kwargs = {"sso_slug": organization.slug}
    return {
        "entity_id": settings.SITE_URL + reverse("sso:metadata", kwargs=kwargs),
        "acs": settings.SITE_URL + reverse("sso:acs", kwargs=kwargs),
        "login": settings.SITE_URL + reverse("sso:login", kwargs=kwargs),
    }



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


def session_not_on_or_after(response) -> float | None:
    """The AuthnStatement's SessionNotOnOrAfter (epoch seconds): when the IdP says this sign-on ends.

    Not the SubjectConfirmation's or the Conditions' NotOnOrAfter, which only
    bound when the assertion may be presented. None when the IdP set no end.
    pysaml2 has already refused an assertion whose session end has passed.
    """
    assertion = getattr(response, "assertion", None)
    for statement in getattr(assertion, "authn_statement", None) or []:
        value = getattr(statement, "session_not_on_or_after", None)
        if value:
            try:
                return float(calendar.timegm(time_util.str_to_time(value)))
            except (TypeError, ValueError):
                logger.info("Unreadable SessionNotOnOrAfter %r", value)
                return None
    return None
