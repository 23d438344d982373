"""Portal pages for organizations and teams. Each view calls one service or selector."""

from __future__ import annotations

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View
from django.views.generic import TemplateView

from accounts import selectors, services
from accounts.forms import (
    InvitationForm,
    InvitationSignupForm,
    MembershipRemoveForm,
    OrganizationCreateForm,
    OrganizationSettingsForm,
    RoleChangeForm,
)
from accounts.access import sign_in_record_password
from accounts.api_keys.selectors import api_key_live_counts_by_creator
from accounts.api_keys.services import KeyDisposition
from accounts.entitlements import plan_limit, plan_of
from accounts.mixins import SESSION_LAST_ORG, OrganizationViewMixin
from accounts.permissions import Role, has_permission, permission_table
from jagcall.kernel.errors import ApplicationError


def apply_error(form, error: ApplicationError) -> None:
    form.add_error(error.field if error.field in form.fields else None, error.message)


# --- organizations ---------------------------------------------------------------


class HomeView(LoginRequiredMixin, View):
    """Land on the organization used last, else the first one, else create one."""

    def get(self, request):
        organizations = list(selectors.organization_list_for_user(user=request.user))
        if not organizations:
            return redirect("accounts:organization-create")
        last = request.session.get(SESSION_LAST_ORG)
        chosen = next((o for o in organizations if o.slug == last), organizations[0])
        return redirect("accounts:dashboard", org_slug=chosen.slug)


class OrganizationListView(LoginRequiredMixin, TemplateView):
    template_name = "accounts/organization_list.html"

    def get_context_data(self, **kwargs):
        return {**super().get_context_data(**kwargs), "organizations": selectors.organization_list_for_user(user=self.request.user)}


class OrganizationCreateView(LoginRequiredMixin, View):
    template_name = "accounts/organization_create.html"

    def get(self, request):
        return render(request, self.template_name, {"form": OrganizationCreateForm()})

    def post(self, request):
        form = OrganizationCreateForm(request.POST)
        if form.is_valid():
            try:
                organization = services.organization_create(
                    name=form.cleaned_data["name"], slug=form.cleaned_data["slug"] or None, owner=request.user
                )
            except ApplicationError as error:
                apply_error(form, error)
            else:
                messages.success(request, f"{organization.name} is ready. Invite your team to get started.")
                return redirect("accounts:team", org_slug=organization.slug)
        return render(request, self.template_name, {"form": form}, status=400)


class DashboardView(OrganizationViewMixin, TemplateView):
    template_name = "accounts/dashboard.html"

    def get_context_data(self, **kwargs):
        return {
            **super().get_context_data(**kwargs),
            "stats": selectors.organization_dashboard_stats(organization=self.organization),
            "recent_members": selectors.membership_list(organization=self.organization).order_by("-created_at")[:5],
        }


class OrganizationSettingsView(OrganizationViewMixin, View):
    permission_required = "organization.update"
    template_name = "accounts/organization_settings.html"

    def get(self, request, org_slug):
        return render(request, self.template_name, {"form": OrganizationSettingsForm(initial={"name": self.organization.name})})

    def post(self, request, org_slug):
        form = OrganizationSettingsForm(request.POST)
        if form.is_valid():
            try:
                services.organization_update(organization=self.organization, actor=self.principal, name=form.cleaned_data["name"])
            except ApplicationError as error:
                apply_error(form, error)
            else:
                messages.success(request, "Settings saved.")
                return redirect("accounts:organization-settings", org_slug=self.organization.slug)
        return render(request, self.template_name, {"form": form}, status=400)


class OrganizationSecurityView(OrganizationViewMixin, View):
    """Owners turn "require two-factor sign-in" on or off."""

    permission_required = "security.manage"
    http_method_names = ["post"]

    def post(self, request, org_slug):
        required = request.POST.get("require_two_factor") == "on"
        try:
            services.organization_require_two_factor(organization=self.organization, actor=self.principal, required=required)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(
                request,
                "Two-factor sign-in is now required for everyone." if required else "Two-factor sign-in is now optional.",
            )
        return redirect("accounts:organization-settings", org_slug=self.organization.slug)


# --- team ----------------------------------------------------------------------


class TeamView(OrganizationViewMixin, View):
    permission_required = "members.view"
    template_name = "accounts/team.html"

    def context(self, invite_form=None):
        role = self.membership.role
        memberships = list(selectors.membership_list(organization=self.organization))
        key_counts = api_key_live_counts_by_creator(organization=self.organization)
        for membership in memberships:
            membership.live_api_keys = key_counts.get(membership.user_id, 0)
        return {
            "memberships": memberships,
            "key_dispositions": KeyDisposition.CHOICES,
            "invitations": selectors.invitation_list_pending(organization=self.organization)
            if has_permission(role, "members.invite")
            else [],
            "invite_form": invite_form or InvitationForm(allow_owner=role == Role.OWNER),
            "role_choices": [c for c in Role.choices if role == Role.OWNER or c[0] != Role.OWNER],
            "permission_rows": permission_table(),
            "roles": Role,
            "seats": {"limit": plan_limit(self.organization, "seats"), "plan": plan_of(self.organization).name},
        }

    def get(self, request, org_slug):
        return render(request, self.template_name, self.context())


class InvitationCreateView(TeamView):
    permission_required = "members.invite"

    def get(self, request, org_slug):
        # A reload after a failed invitation lands here: show the team page.
        return redirect("accounts:team", org_slug=self.organization.slug)

    def post(self, request, org_slug):
        form = InvitationForm(request.POST, allow_owner=self.membership.role == Role.OWNER)
        if form.is_valid():
            try:
                invitation, _token = services.invitation_create(
                    organization=self.organization,
                    actor=self.principal,
                    email=form.cleaned_data["email"],
                    role=form.cleaned_data["role"],
                )
            except ApplicationError as error:
                apply_error(form, error)
            else:
                hours = settings.INVITATION_TTL_HOURS
                messages.success(request, f"Invitation sent to {invitation.email}. It works once and expires in {hours} hours.")
                return redirect("accounts:team", org_slug=self.organization.slug)
        return render(request, self.template_name, self.context(invite_form=form), status=400)


class _TeamActionView(OrganizationViewMixin, View):
    """POST-only team actions: run one service, report its outcome, go back to the team page."""

    http_method_names = ["post"]

    def done(self, text: str):
        messages.success(self.request, text)
        return HttpResponseRedirect(reverse("accounts:team", kwargs={"org_slug": self.organization.slug}))

    def failed(self, error: ApplicationError):
        messages.error(self.request, error.message)
        return HttpResponseRedirect(reverse("accounts:team", kwargs={"org_slug": self.organization.slug}))


class InvitationRevokeView(_TeamActionView):
    permission_required = "members.invite"

    def post(self, request, org_slug, invitation_id):
        invitation = selectors.invitation_get(organization=self.organization, id=invitation_id)
        try:
            services.invitation_revoke(organization=self.organization, actor=self.principal, invitation=invitation)
        except ApplicationError as error:
            return self.failed(error)
        return self.done(f"Invitation to {invitation.email} withdrawn.")


class MembershipRoleChangeView(_TeamActionView):
    permission_required = "members.change_role"

    def post(self, request, org_slug, membership_id):
        membership = selectors.membership_get(organization=self.organization, id=membership_id)
        form = RoleChangeForm(request.POST)
        if not form.is_valid():
            return self.failed(ApplicationError("Choose a role: owner, admin or member."))
        try:
            services.membership_role_change(
                organization=self.organization,
                actor=self.principal,
                membership=membership,
                role=form.cleaned_data["role"],
                api_keys=form.cleaned_data["api_keys"] or KeyDisposition.REVOKE,
            )
        except ApplicationError as error:
            return self.failed(error)
        return self.done(f"{membership.user.email} now has the {Role(form.cleaned_data['role']).label} role.")


class MembershipRemoveView(_TeamActionView):
    permission_required = "members.remove"

    def post(self, request, org_slug, membership_id):
        membership = selectors.membership_get(organization=self.organization, id=membership_id)
        form = MembershipRemoveForm(request.POST)
        if not form.is_valid():
            return self.failed(ApplicationError("Choose whether their API keys are revoked or kept in your name."))
        try:
            services.membership_remove(
                organization=self.organization,
                actor=self.principal,
                membership=membership,
                api_keys=form.cleaned_data["api_keys"] or KeyDisposition.REVOKE,
                request=request,
            )
        except ApplicationError as error:
            return self.failed(error)
        return self.done(f"{membership.user.email} was removed from {self.organization.name}.")


class OrganizationLeaveView(_TeamActionView):
    permission_required = "organization.view"

    def post(self, request, org_slug):
        try:
            services.membership_leave(organization=self.organization, user=request.user, request=request)
        except ApplicationError as error:
            return self.failed(error)
        request.session.pop(SESSION_LAST_ORG, None)
        messages.success(request, f"You left {self.organization.name}.")
        return redirect("accounts:home")


# --- invitations (the invitee's side) --------------------------------------------


class InvitationAcceptView(View):
    """``/invitations/<token>/``: accept as the signed-in user, or create an account."""

    template_name = "accounts/invitation_accept.html"

    def _render(self, request, invitation, form=None, error=None, status=200):
        from accounts.models import User

        return render(
            request,
            self.template_name,
            {
                "invitation": invitation,
                "error": error,
                "form": form or InvitationSignupForm(),
                "account_exists": invitation is not None and User.objects.filter(email__iexact=invitation.email).exists(),
            },
            status=status,
        )

    def get(self, request, token):
        try:
            invitation = services.invitation_find(token=token)
            services._check_usable(invitation)
        except ApplicationError as error:
            return self._render(request, None, error=error.message, status=error.status)
        return self._render(request, invitation)

    def post(self, request, token):
        try:
            invitation = services.invitation_find(token=token)
        except ApplicationError as error:
            return self._render(request, None, error=error.message, status=error.status)
        form = None
        try:
            if request.user.is_authenticated:
                membership = services.invitation_accept(token=token, user=request.user)
            else:
                form = InvitationSignupForm(request.POST)
                if not form.is_valid():
                    return self._render(request, invitation, form=form, status=400)
                membership = services.invitation_accept(
                    token=token, name=form.cleaned_data["name"], password=form.cleaned_data["password"]
                )
                login(request, membership.user, backend="allauth.account.auth_backends.AuthenticationBackend")
                sign_in_record_password(request, user=membership.user)
        except ApplicationError as error:
            if form is not None and error.field in ("password", "email"):
                apply_error(form, error)
                return self._render(request, invitation, form=form, status=400)
            return self._render(request, invitation, form=form, error=error.message, status=error.status)
        messages.success(request, f"Welcome to {membership.organization.name}.")
        return redirect("accounts:dashboard", org_slug=membership.organization.slug)
