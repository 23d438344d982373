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
        SamlConfiguration.objects.unscoped("the configuration behind a public SSO address, found by its slug")
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
        Membership.objects.unscoped("a person's memberships across their own organizations")
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


def password_opens_nothing(user: User) -> Organization | None:
    """When every organization of ``user`` requires its single sign-on of them, the first of those;
    else None (a password sign-in opens at least one of their organizations, or they have none).

    The access check (accounts.access) still refuses a password session in each
    organization that requires its sign-on; this only spares the person a sign-in
    that could open nothing.
    """
    memberships = list(
        Membership.objects.unscoped("a person's memberships across their own organizations")
        .filter(user=user, organization__status=OrganizationStatus.ACTIVE)
        .select_related("organization")
        .order_by("organization__name")
    )
    if not memberships:
        return None
    required = sso_required_organization(user)
    if required is None:
        return None
    if all(sso_required_for(m.organization, m) for m in memberships):
        return required
    return None


def sso_required_for(organization: Organization, membership: Membership) -> bool:
    """Does ``organization`` require its single sign-on of this member? Owners keep their own sign-in."""
    if membership.role == "owner":
        return False
    configuration = sso_configuration_for_login(slug=organization.slug)
    return configuration is not None and configuration.require_sso
