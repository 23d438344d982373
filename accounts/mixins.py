"""The portal's tenancy mixin: every page under /o/<org_slug>/ uses it."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse

from accounts.access import AccessDenied, organization_access, sign_in_of
from accounts.principals import Principal

SESSION_LAST_ORG = "last_organization_slug"


def _with_next(url: str, request) -> str:
    return f"{url}?{urlencode({'next': request.get_full_path()})}"


def access_denied_response(request, denial: AccessDenied):
    """What a page answers for each reason ``organization_access`` gives.

    A stranger learns nothing (404, as for an organization that does not
    exist); a member is told what to do and sent where they can do it.
    """
    if denial.reason == AccessDenied.NOT_FOUND:
        raise Http404(denial.message)
    if denial.reason == AccessDenied.FORBIDDEN:
        raise PermissionDenied(denial.message)
    if denial.reason in (AccessDenied.NOT_SIGNED_IN, AccessDenied.SESSION_EXPIRED):
        return redirect(_with_next(reverse("account_login"), request))
    messages.warning(request, denial.message)
    if denial.reason == AccessDenied.SSO_REQUIRED:
        return redirect(_with_next(reverse("sso:login", kwargs={"sso_slug": denial.organization.slug}), request))
    if denial.reason == AccessDenied.SIGN_IN_REQUIRED:
        return redirect(_with_next(reverse("account_reauthenticate"), request))
    # Two-factor: confirm a factor the person has, or set one up.
    from accounts.mfa import user_has_two_factor

    if user_has_two_factor(request.user):
        return redirect(_with_next(reverse("mfa_reauthenticate"), request))
    return redirect(_with_next(reverse("mfa_activate_totp"), request))


class OrganizationViewMixin(LoginRequiredMixin):
    """Resolve the organization from the URL once, before the handler runs.

    Contract:
    - ``org_slug`` comes from the URL; ``accounts.access.organization_access``
      decides (membership, role, how this session was signed in, second
      factor, single sign-on, timeouts). A non-member gets 404, exactly as for
      an organization that does not exist.
    - ``permission_required`` names an action of accounts.permissions; a
      member whose role lacks it gets 403.
    - Sets ``self.organization``, ``self.membership``, ``self.principal`` (the
      actor services are given), and the same on the request for templates.
    - [!!] Subclasses must not override ``dispatch``; they read data only
      through selectors scoped to ``self.organization``.
    """

    permission_required: str = "organization.view"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "dispatch" in cls.__dict__:
            raise ImproperlyConfigured(f"{cls.__name__} must not override dispatch(); tenancy is resolved there.")

    def dispatch(self, request, *args, **kwargs):
        if not request.user.is_authenticated:
            return self.handle_no_permission()
        try:
            membership = organization_access(request, kwargs.get("org_slug"), permission=self.permission_required)
        except AccessDenied as denial:
            return access_denied_response(request, denial)
        organization = membership.organization
        self.organization = request.organization = organization
        self.membership = request.membership = membership
        # [!!] Who acts on this page, built once here and handed to services as ``actor=``.
        self.principal = request.principal = Principal.member(membership, via="session", sign_in=sign_in_of(request))
        request.session[SESSION_LAST_ORG] = organization.slug  # only to pick where "/" lands
        return super().dispatch(request, *args, **kwargs)
