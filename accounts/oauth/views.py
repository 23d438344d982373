"""Portal pages: an organization's OAuth applications, the applications acting in it, and a person's
connected applications."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.mixins import LoginRequiredMixin
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.views import View

from accounts.mixins import OrganizationViewMixin
from jagcall.kernel.errors import ApplicationError
from accounts.oauth import selectors, services
from accounts.oauth.forms import ApplicationCreateForm, ApplicationUpdateForm

# [!!] The secret of a confidential client just registered (or rotated) waits in the
# session for the one page that shows it, and is removed from there as that page is rendered.
SESSION_NEW_CLIENT_SECRET = "oauth_client_secret_just_created"


def _list_url(organization) -> str:
    return reverse("oauth:application-list", kwargs={"org_slug": organization.slug})


def _detail_url(organization, application) -> str:
    return reverse("oauth:application-detail", kwargs={"org_slug": organization.slug, "application_id": application.id})


def _keep_secret_for_display(request, organization, application, secret: str) -> None:
    request.session[SESSION_NEW_CLIENT_SECRET] = {
        "organization_id": str(organization.id),
        "application_id": str(application.id),
        "secret": secret,
    }


def _render_detail(request, application, *, form=None, secret=None, error=None, status=200):
    context = {
        "application": application,
        "client_secret": secret,
        "form": form or ApplicationUpdateForm.for_application(application),
        "error": error,
        "authorize_url": request.build_absolute_uri(reverse("oauth:authorize")),
        "token_url": request.build_absolute_uri(reverse("oauth:token")),
        "revoke_url": request.build_absolute_uri(reverse("oauth:revoke-token")),
    }
    response = render(request, "oauth/application_detail.html", context, status=status)
    if secret:
        response["Cache-Control"] = "no-store"
    return response


class ApplicationListView(OrganizationViewMixin, View):
    permission_required = "oauth_apps.manage"
    template_name = "oauth/application_list.html"

    def get(self, request, org_slug):
        applications = selectors.oauth_application_list(organization=self.organization)
        return render(request, self.template_name, {"applications": applications})


class ApplicationCreateView(OrganizationViewMixin, View):
    permission_required = "oauth_apps.manage"
    template_name = "oauth/application_create.html"

    def get(self, request, org_slug):
        return render(request, self.template_name, {"form": ApplicationCreateForm()})

    def post(self, request, org_slug):
        form = ApplicationCreateForm(request.POST)
        if form.is_valid():
            try:
                application, secret = services.oauth_application_create(
                    organization=self.organization,
                    actor=self.principal,
                    name=form.cleaned_data["name"],
                    client_type=form.cleaned_data["client_type"],
                    redirect_uris=form.cleaned_data["redirect_uris"],
                    request=request,
                )
            except ApplicationError as error:
                form.add_error(error.field if error.field in form.fields else None, error.message)
            else:
                if secret:
                    _keep_secret_for_display(request, self.organization, application, secret)
                messages.success(request, f"“{application.name}” is registered.")
                return HttpResponseRedirect(_detail_url(self.organization, application))
        return render(request, self.template_name, {"form": form}, status=400)


class ApplicationDetailView(OrganizationViewMixin, View):
    permission_required = "oauth_apps.manage"

    def get(self, request, org_slug, application_id):
        application = selectors.oauth_application_get(organization=self.organization, id=application_id)
        created = request.session.get(SESSION_NEW_CLIENT_SECRET)
        secret = None
        if created and created.get("application_id") == str(application.id):
            secret = request.session.pop(SESSION_NEW_CLIENT_SECRET)["secret"]
        return _render_detail(request, application, secret=secret)


class ApplicationUpdateView(OrganizationViewMixin, View):
    """The edit form on the detail page posts here; its errors come back on that page (400)."""

    permission_required = "oauth_apps.manage"
    http_method_names = ["post"]

    def post(self, request, org_slug, application_id):
        application = selectors.oauth_application_get(organization=self.organization, id=application_id)
        form = ApplicationUpdateForm(request.POST)
        if form.is_valid():
            try:
                services.oauth_application_update(
                    organization=self.organization,
                    application=application,
                    actor=self.principal,
                    name=form.cleaned_data["name"],
                    redirect_uris=form.cleaned_data["redirect_uris"],
                    request=request,
                )
            except ApplicationError as error:
                form.add_error(error.field if error.field in form.fields else None, error.message)
            else:
                messages.success(request, f"“{application.name}” is saved.")
                return HttpResponseRedirect(_detail_url(self.organization, application))
        # The page shows what is stored (the transaction was rolled back), beside the form with what was typed.
        application.refresh_from_db()
        return _render_detail(request, application, form=form, status=400)


class ApplicationRotateSecretView(OrganizationViewMixin, View):
    permission_required = "oauth_apps.manage"
    http_method_names = ["post"]

    def post(self, request, org_slug, application_id):
        application = selectors.oauth_application_get(organization=self.organization, id=application_id)
        try:
            secret = services.oauth_application_rotate_secret(
                organization=self.organization, application=application, actor=self.principal, request=request
            )
        except ApplicationError as error:
            return _render_detail(request, application, error=error.message, status=error.status)
        _keep_secret_for_display(request, self.organization, application, secret)
        messages.success(
            request, f"“{application.name}” has a new client secret. The previous one no longer works."
        )
        return HttpResponseRedirect(_detail_url(self.organization, application))


class ApplicationRevokeTokensView(OrganizationViewMixin, View):
    permission_required = "oauth_apps.manage"
    http_method_names = ["post"]

    def post(self, request, org_slug, application_id):
        application = selectors.oauth_application_get(organization=self.organization, id=application_id)
        ended = services.oauth_application_revoke_tokens(
            organization=self.organization, application=application, actor=self.principal, request=request
        )
        messages.success(
            request,
            f"Every token of “{application.name}” is revoked ({ended} connection(s) ended). "
            "People must connect it again to use it.",
        )
        return HttpResponseRedirect(_detail_url(self.organization, application))


class ApplicationDeleteView(OrganizationViewMixin, View):
    permission_required = "oauth_apps.manage"
    http_method_names = ["post"]

    def post(self, request, org_slug, application_id):
        application = selectors.oauth_application_get(organization=self.organization, id=application_id)
        services.oauth_application_delete(
            organization=self.organization, application=application, actor=self.principal, request=request
        )
        messages.success(request, f"“{application.name}” is deleted. Its tokens no longer work.")
        return HttpResponseRedirect(_list_url(self.organization))


# --- the applications acting in the organization ------------------------------------------


def _connection_list_url(organization) -> str:
    return reverse("oauth:organization-connection-list", kwargs={"org_slug": organization.slug})


class OrganizationConnectionListView(OrganizationViewMixin, View):
    permission_required = "oauth_apps.manage"
    template_name = "oauth/organization_connection_list.html"

    def get(self, request, org_slug):
        connections = selectors.oauth_organization_connection_list(organization=self.organization)
        return render(request, self.template_name, {"connections": connections})


class OrganizationConnectionRevokeView(OrganizationViewMixin, View):
    permission_required = "oauth_apps.manage"
    http_method_names = ["post"]

    def post(self, request, org_slug, application_id):
        application = selectors.oauth_organization_connected_application_get(
            organization=self.organization, id=application_id
        )
        services.oauth_organization_connection_revoke(
            organization=self.organization, application=application, actor=self.principal, request=request
        )
        messages.success(
            request,
            f"“{application.name}” is disconnected from {self.organization.name}. "
            "Its tokens here no longer work; people must connect it again to use it here.",
        )
        return HttpResponseRedirect(_connection_list_url(self.organization))


# --- the person's own connections -----------------------------------------------------


class ConnectionListView(LoginRequiredMixin, View):
    template_name = "oauth/connection_list.html"

    def get(self, request):
        return render(request, self.template_name, {"connections": selectors.oauth_connection_list(user=request.user)})


class ConnectionRevokeView(LoginRequiredMixin, View):
    http_method_names = ["post"]

    def post(self, request, application_id):
        application = selectors.oauth_connected_application_get(user=request.user, id=application_id)
        if application is None:
            raise Http404("No connected application matches the given query.")
        services.oauth_authorization_revoke(user=request.user, application=application, request=request)
        messages.success(request, f"“{application.name}” is disconnected. It can no longer act for you.")
        return HttpResponseRedirect(reverse("oauth:connection-list"))
