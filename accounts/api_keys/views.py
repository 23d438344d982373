"""The API keys page: list, create (the secret shown once), revoke."""

from __future__ import annotations

from datetime import timedelta

from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.views import View

from accounts.api_keys import selectors
from accounts.api_keys.forms import ApiKeyCreateForm
from accounts.api_keys.services import api_key_create, api_key_revoke
from accounts.mixins import OrganizationViewMixin
from accounts.scopes import scopes_for_role
from accounts.views import apply_error
from jagcall.kernel.errors import ApplicationError

# --- API keys --------------------------------------------------------------------

# [!!] The secret of a key just created waits in the session for the one
# page that shows it, and is removed from there as that page is rendered.
SESSION_NEW_API_KEY = "api_key_just_created"


class ApiKeyListView(OrganizationViewMixin, View):
    """The organization's API keys, the form to create one, and (once) the secret of the new key."""

    permission_required = "api_keys.manage"
    template_name = "accounts/api_keys.html"

    def _allowed_scopes(self):
        return scopes_for_role(self.membership.role)

    def _render(self, request, form=None, status=200):
        created = request.session.pop(SESSION_NEW_API_KEY, None)
        if created and created.get("organization_id") != str(self.organization.id):
            created = None
        context = {
            "api_keys": selectors.api_key_list(organization=self.organization),
            "form": form or ApiKeyCreateForm(allowed_scopes=self._allowed_scopes()),
            "created": created,
        }
        response = render(request, self.template_name, context, status=status)
        if created:
            response["Cache-Control"] = "no-store"
        return response

    def get(self, request, org_slug):
        return self._render(request)

    def post(self, request, org_slug):
        allowed = self._allowed_scopes()
        form = ApiKeyCreateForm(request.POST, allowed_scopes=allowed)
        if form.is_valid():
            days = form.cleaned_data.get("expires_in_days")
            try:
                api_key, raw_key = api_key_create(
                    organization=self.organization,
                    actor=self.principal,
                    name=form.cleaned_data["name"],
                    scopes=form.cleaned_data["scopes"],
                    expires_at=timezone.now() + timedelta(days=days) if days else None,
                    request=request,
                )
            except ApplicationError as error:
                apply_error(form, error)
            else:
                request.session[SESSION_NEW_API_KEY] = {
                    "organization_id": str(self.organization.id),
                    "id": str(api_key.id),
                    "name": api_key.name,
                    "key": raw_key,
                }
                return HttpResponseRedirect(reverse("accounts:api-key-list", kwargs={"org_slug": self.organization.slug}))
        return self._render(request, form=form, status=400)


class ApiKeyRevokeView(OrganizationViewMixin, View):
    permission_required = "api_keys.manage"
    http_method_names = ["post"]

    def post(self, request, org_slug, api_key_id):
        api_key = selectors.api_key_get(organization=self.organization, id=api_key_id)
        try:
            api_key_revoke(
                organization=self.organization,
                api_key=api_key,
                actor=self.principal,
                request=request,
            )
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"API key “{api_key.name}” revoked. Requests using it are refused from now on.")
        return HttpResponseRedirect(reverse("accounts:api-key-list", kwargs={"org_slug": self.organization.slug}))
