"""The portal's tenancy mixin: every page under /o/<org_slug>/ uses it."""

from __future__ import annotations

from django.contrib.auth.mixins import LoginRequiredMixin
from django.core.exceptions import ImproperlyConfigured, PermissionDenied
from django.http import Http404

from accounts.models import Organization, OrganizationStatus
from accounts.permissions import has_permission
from accounts.selectors import membership_for_user

SESSION_LAST_ORG = "last_organization_slug"


class OrganizationViewMixin(LoginRequiredMixin):
    """Resolve the organization from the URL once, before the handler runs.

    Contract:
    - ``org_slug`` comes from the URL; a user who is not a member gets 404,
      exactly as for an organization that does not exist.
    - ``permission_required`` names an action of accounts.permissions; a
      member whose role lacks it gets 403.
    - Sets ``self.organization``, ``self.membership``, and the same on the
      request for templates.
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
        organization = Organization.objects.filter(
            slug=kwargs.get("org_slug"), status=OrganizationStatus.ACTIVE
        ).first()
        membership = membership_for_user(organization=organization, user=request.user) if organization else None
        if membership is None:
            raise Http404("No organization matches the given query.")
        if not has_permission(membership.role, self.permission_required):
            raise PermissionDenied("Your role does not allow this.")
        if organization.require_two_factor:
            from accounts.mfa import user_has_two_factor

            if not user_has_two_factor(request.user):
                from django.contrib import messages
                from django.shortcuts import redirect

                messages.warning(
                    request,
                    f"{organization.name} requires two-factor sign-in. Set up an authenticator app to continue.",
                )
                return redirect("mfa_activate_totp")
        self.organization = request.organization = organization
        self.membership = request.membership = membership
        request.session[SESSION_LAST_ORG] = organization.slug  # only to pick where "/" lands
        return super().dispatch(request, *args, **kwargs)
