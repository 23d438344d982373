"""Portal pages: Settings, Provider accounts (owners and admins)."""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.views import View

from accounts.mixins import OrganizationViewMixin
from accounts.views import apply_error
from integrations import selectors, services
from integrations.forms import ProviderCredentialForm
from integrations.models import Provider
from jagcall.kernel.errors import ApplicationError

# What an own account changes, in the page's words.
USES = {
    Provider.TWILIO: "Phone numbers, calls and recordings",
    Provider.OPENAI: "Agents that think with OpenAI models",
    Provider.ANTHROPIC: "Agents that think with Anthropic models",
    Provider.DEEPGRAM: "Speech-to-text of calls and transcripts",
    Provider.ELEVENLABS: "Agents' voices",
}


class ProviderAccountListView(OrganizationViewMixin, View):
    """Each provider: JagCall's account or the organization's own; connect, replace or disconnect."""

    permission_required = services.PERMISSION
    template_name = "integrations/provider_accounts.html"

    def _render(self, request, bound: ProviderCredentialForm | None = None, status: int = 200):
        rows = []
        for account in selectors.provider_account_list(organization=self.organization):
            form = bound if bound is not None and bound.provider == account.provider else None
            rows.append(
                {
                    "account": account,
                    "uses": USES[account.provider],
                    "form": form or ProviderCredentialForm(provider=account.provider),
                    "open": form is not None,
                }
            )
        return render(request, self.template_name, {"rows": rows}, status=status)

    def get(self, request, org_slug):
        return self._render(request)

    def post(self, request, org_slug):
        provider = request.POST.get("provider", "")
        if provider not in Provider.values:
            raise Http404("No such provider.")
        form = ProviderCredentialForm(request.POST, provider=provider)
        if form.is_valid():
            try:
                credential = services.credential_save(
                    organization=self.organization, actor=self.principal, provider=provider, values=form.values()
                )
            except ApplicationError as error:
                apply_error(form, error)
            else:
                messages.success(
                    request,
                    f"Your {credential.get_provider_display()} account …{credential.last4} is connected and verified.",
                )
                return redirect("integrations:provider-list", org_slug=self.organization.slug)
        return self._render(request, bound=form, status=400)


class ProviderAccountDisconnectView(OrganizationViewMixin, View):
    """Go back to JagCall's account for one provider."""

    permission_required = services.PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug):
        provider = request.POST.get("provider", "")
        if provider not in Provider.values:
            raise Http404("No such provider.")
        try:
            services.credential_delete(organization=self.organization, actor=self.principal, provider=provider)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"{Provider(provider).label}: JagCall's account is used from now on.")
        return redirect("integrations:provider-list", org_slug=self.organization.slug)
