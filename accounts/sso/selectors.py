"""Single sign-on reads: an organization's configuration and domains, and who must sign in through it."""

from __future__ import annotations

from accounts.entitlements import has_entitlement
from accounts.models import Membership, Organization, OrganizationStatus, User
from accounts.permissions import Role
from accounts.sso.models import SamlConfiguration, SsoDomain


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


def sso_domain_list(*, organization: Organization):
    return SsoDomain.objects.for_org(organization).select_related("verified_by").order_by("domain")


def sso_domain_is_verified(*, organization: Organization, domain: str) -> bool:
    """[!!] Exact match on the normalized domain: a verified acme.com does not cover eu.acme.com or evil-acme.com."""
    return (
        SsoDomain.objects.for_org(organization).filter(domain=domain, verified_at__isnull=False).exists()
        if domain
        else False
    )
