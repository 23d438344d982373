"""Walk every URL pattern of the project, classified for tenancy tests.

Every route must be one of:
- organization-scoped: its route carries ``<org_slug>`` and its view uses
  OrganizationViewMixin; object ids in it are listed in OBJECT_KWARGS so the
  walker can fill them with a real object of either organization;
- organization-free: listed in PUBLIC_ROUTES with the reason it is safe;
- signed inbound: its route starts with ``hooks/``, its view derives from
  jagcall.kernel.webhooks.SignedWebhookView (the signature is its
  credential; the organization comes from the signed request), and it is
  listed in SIGNED_INBOUND (test_signed_inbound.py posts unsigned and forged
  requests to each and expects 403 and no writes).

A route that is neither fails the tests, so a new endpoint cannot ship
without tenancy coverage.

Each app registers its own cases in ``<app>/tests/tenancy.py`` (the wiring's
in ``jagcall/tests/tenancy.py``): ``OBJECT_KWARGS`` (a URL kwarg -> how to
make such an object in a given organization), ``PUBLIC_ROUTES`` (a route
name -> why it needs no organization) and ``SIGNED_INBOUND`` (a webhook's
route name -> ``{"kwargs": {...}, "provider": "twilio"}``). The walk collects them from every app
of the project, so a new app's pages and endpoints are walked without
touching accounts' tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import importlib
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.urls import URLPattern, URLResolver, get_resolver

from accounts.api.base import OrganizationAPIView
from accounts.mixins import OrganizationViewMixin

# The back office is cross-tenant on purpose: staff only (tested in test_admin.py).
ADMIN_PREFIX = settings.ADMIN_URL
# Account flows (django-allauth): the visitor's own identity (sign in, sign up,
# password, email, sessions); they take no organization or object ids.
IDENTITY_PREFIX = "auth/"


def _case_modules():
    base = Path(settings.BASE_DIR).resolve()
    names = ["jagcall"] + [c.name for c in apps.get_app_configs() if Path(c.path).resolve().is_relative_to(base)]
    for name in dict.fromkeys(names):
        try:
            yield importlib.import_module(f"{name}.tests.tenancy")
        except ModuleNotFoundError as error:
            if error.name not in (f"{name}.tests", f"{name}.tests.tenancy"):
                raise


def tenancy_cases() -> tuple[dict, dict]:
    """(OBJECT_KWARGS, PUBLIC_ROUTES) merged from every app's tests/tenancy.py; a kwarg or route twice is an error."""
    object_kwargs, public_routes = {}, {}
    for module in _case_modules():
        for mine, theirs in ((object_kwargs, getattr(module, "OBJECT_KWARGS", {})), (public_routes, getattr(module, "PUBLIC_ROUTES", {}))):
            clash = set(mine) & set(theirs)
            if clash:
                raise AssertionError(f"{module.__name__} registers {sorted(clash)} again")
            mine.update(theirs)
    return object_kwargs, public_routes


def signed_inbound_cases() -> dict:
    """SIGNED_INBOUND merged from every app's tests/tenancy.py; a route twice is an error."""
    cases: dict = {}
    for module in _case_modules():
        theirs = getattr(module, "SIGNED_INBOUND", {})
        clash = set(cases) & set(theirs)
        if clash:
            raise AssertionError(f"{module.__name__} registers {sorted(clash)} again")
        cases.update(theirs)
    return cases


# Where providers' webhooks are mounted (/hooks/<provider>/...).
HOOKS_PREFIX = "hooks/"


def _is_signed_inbound_view(view_class) -> bool:
    from jagcall.kernel.webhooks.views import SignedWebhookView

    return bool(view_class) and isinstance(view_class, type) and issubclass(view_class, SignedWebhookView)


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


def signed_inbound_routes(signed_inbound: dict | None = None) -> tuple[list[Route], list[str]]:
    """(the routes under hooks/ listed in SIGNED_INBOUND with a signed view, problems)."""
    cases = signed_inbound_cases() if signed_inbound is None else signed_inbound
    routes, problems = [], []
    for route in all_routes():
        under_hooks = route.route.startswith(HOOKS_PREFIX)
        signed = _is_signed_inbound_view(route.view_class)
        if not under_hooks:
            if signed:
                problems.append(f"{route.name} ({route.route}): a signed webhook is mounted under /{HOOKS_PREFIX} only")
            continue
        if not signed:
            problems.append(
                f"{route.name} ({route.route}): every route under /{HOOKS_PREFIX} derives from SignedWebhookView"
            )
        elif route.name not in cases:
            problems.append(
                f"{route.name} ({route.route}): a webhook not listed in SIGNED_INBOUND of its app's tests/tenancy.py"
            )
        elif cases[route.name].get("provider") != route.view_class.provider:
            problems.append(f"{route.name}: SIGNED_INBOUND says provider {cases[route.name].get('provider')!r}, "
                            f"its view says {route.view_class.provider!r}")
        else:
            routes.append(route)
    return routes, problems


def classify(*, signed_inbound: dict | None = None) -> tuple[list[Route], list[Route], list[str]]:
    """(organization-scoped portal routes, public routes (signed inbound webhooks included), problems).

    API routes: api_routes().
    """
    _object_kwargs, public_routes = tenancy_cases()
    signed, problems = signed_inbound_routes(signed_inbound)
    scoped, public = [], list(signed)
    for route in all_routes():
        if route.route.startswith(ADMIN_PREFIX) or route.route.startswith(HOOKS_PREFIX):
            continue  # the back office: staff only; hooks/: signed_inbound_routes
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
        elif route.name in public_routes:
            public.append(route)
        else:
            problems.append(
                f"{route.name} ({route.route}): neither organization-scoped nor listed in PUBLIC_ROUTES "
                "of its app's tests/tenancy.py"
            )
    return scoped, public, problems
