"""Walk every URL pattern of the project, classified for tenancy tests.

Every route must be one of:
- organization-scoped: its route carries ``<org_slug>`` and its view uses
  OrganizationViewMixin; object ids in it are listed in OBJECT_KWARGS so the
  walker can fill them with a real object of either organization;
- organization-free: listed in PUBLIC_ROUTES with the reason it is safe.

A route that is neither fails the tests, so a new endpoint cannot ship
without tenancy coverage.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.api.base import OrganizationAPIView
from accounts.mixins import OrganizationViewMixin

# url name -> why it needs no organization in its route
PUBLIC_ROUTES = {
    "healthz": "liveness probe, no data",
    "readyz": "readiness probe, no data",
    "accounts:home": "redirects to one of the user's own organizations",
    "account_login": "sign in",
    "account_logout": "sign out",
    "accounts:organization-list": "lists only the user's own organizations",
    "accounts:organization-create": "creates a new organization",
    "accounts:invitation-accept": "bound to a secret single-use token, not to an id",
    "api:token-obtain": "exchanges a person's credentials for a token bound to one of their organizations",
    "api:token-refresh": "exchanges a refresh token for new tokens of the same organization",
    "api:token-revoke": "revokes the refresh token it is given",
    "api-schema": "the API's OpenAPI description, public on purpose: no organization, person or data in it",
    "api-docs": "the page that renders the public API description; static assets and the schema only",
    "sso:metadata": "public SAML service-provider metadata of an organization with SSO on; no data beyond its SSO addresses",
    "sso:login": "starts SAML sign-in at the organization's own IdP; the visitor is not signed in yet",
    "sso:acs": "receives the IdP's signed assertion; the organization's configuration decides who may sign in",
    "oauth:authorize": "OAuth consent: the signed-in person binds a code to one of their own organizations (accounts/oauth/endpoints.py)",
    "oauth:token": "OAuth token endpoint: the code or refresh token in the body is the credential, bound to one organization",
    "oauth:revoke-token": "OAuth revocation (RFC 7009): a client revokes a token issued to it",
    "oauth:connection-list": "lists only the signed-in person's own connected applications",
    "oauth:connection-revoke": "revokes only the signed-in person's own tokens for one application",
}
# The back office is cross-tenant on purpose: staff only (tested in test_admin.py).
ADMIN_PREFIX = settings.ADMIN_URL
# Account flows (django-allauth): the visitor's own identity (sign in, sign up,
# password, email, sessions); they take no organization or object ids.
IDENTITY_PREFIX = "auth/"


@dataclass(frozen=True)
class Route:
    name: str
    route: str  # e.g. "o/<slug:org_slug>/team/<uuid:membership_id>/role/"
    view_class: type | None
    kwargs: tuple[str, ...]

    @property
    def is_org_scoped(self) -> bool:
        return "org_slug" in self.kwargs


def _walk(patterns, prefix="", namespace=None, outer_kwargs=()):
    for entry in patterns:
        if isinstance(entry, URLResolver):
            ns = entry.namespace or namespace
            if entry.namespace and namespace:
                ns = f"{namespace}:{entry.namespace}"
            # An include's own converters (e.g. "o/<slug:org_slug>/audit/") belong to every route under it.
            kwargs = (*outer_kwargs, *getattr(entry.pattern, "converters", {}))
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), ns, kwargs)
        elif isinstance(entry, URLPattern):
            name = entry.name or entry.lookup_str
            full_name = f"{namespace}:{name}" if namespace and entry.name else name
            view_class = getattr(entry.callback, "view_class", None) or getattr(entry.callback, "cls", None)
            kwargs = (*outer_kwargs, *entry.pattern.converters)
            yield Route(full_name, prefix + str(entry.pattern), view_class, kwargs)


def all_routes() -> list[Route]:
    return list(_walk(get_resolver().url_patterns))


def api_routes() -> list[Route]:
    """API routes whose organization comes from the credential (OrganizationAPIView)."""
    return [r for r in all_routes() if r.view_class and issubclass(r.view_class, OrganizationAPIView)]


def classify() -> tuple[list[Route], list[Route], list[str]]:
    """(organization-scoped portal routes, public routes, problems). API routes: api_routes()."""
    scoped, public, problems = [], [], []
    for route in all_routes():
        if route.route.startswith(ADMIN_PREFIX):
            continue
        if route.route.startswith(IDENTITY_PREFIX):
            if route.is_org_scoped:
                problems.append(f"{route.name}: identity routes must not carry an organization")
            public.append(route)
            continue
        if route.view_class and issubclass(route.view_class, OrganizationAPIView):
            if route.is_org_scoped:
                problems.append(f"{route.name}: API routes take the organization from the credential, not the URL")
        elif route.is_org_scoped:
            if not (route.view_class and issubclass(route.view_class, OrganizationViewMixin)):
                problems.append(f"{route.name}: carries <org_slug> but does not use OrganizationViewMixin")
            scoped.append(route)
        elif route.name in PUBLIC_ROUTES:
            public.append(route)
        else:
            problems.append(f"{route.name} ({route.route}): neither organization-scoped nor listed in PUBLIC_ROUTES")
    return scoped, public, problems
