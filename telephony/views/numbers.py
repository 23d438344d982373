"""Portal pages: phone numbers (list, search and buy, assign an agent, release, import from an own account).

Everyone who uses the product sees the numbers; buying, assigning, releasing
and importing need ``numbers.manage`` (owners and admins).
"""

from __future__ import annotations

import time

from django import forms
from django.contrib import messages
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import path
from django.views import View

from accounts.mixins import OrganizationViewMixin
from accounts.tenancy import get_for_org_or_404
from accounts.views import apply_error
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import simulated_mode
from telephony.models import Agent
from telephony.selectors.calls import call_for_org_by_twilio_sid
from telephony.selectors.numbers import number_agent_choices, phone_number_get, phone_number_list
from telephony.services import numbers as services
from telephony.services import simulated_calls
from telephony.services.twilio_accounts import twilio_for_import_available


class NumberSearchForm(forms.Form):
    country = forms.CharField(
        label="Country", max_length=2, initial="US", help_text="Two-letter ISO code: US, CA, GB…",
        widget=forms.TextInput(attrs={"autocomplete": "off", "size": 3}),
    )  # fmt: skip
    area_code = forms.CharField(
        label="Area code", max_length=5, required=False, help_text="Optional, e.g. 415",
        widget=forms.TextInput(attrs={"inputmode": "numeric", "autocomplete": "off"}),
    )  # fmt: skip
    contains = forms.CharField(
        label="Contains", max_length=16, required=False, help_text="Optional digits the number should contain",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )  # fmt: skip


def _search_form(data=None) -> NumberSearchForm:
    return NumberSearchForm(data, auto_id="id_search_%s")


class NumberListView(OrganizationViewMixin, View):
    """The organization's numbers; managers also search Twilio's numbers here and buy one."""

    permission_required = "product.use"
    template_name = "telephony/numbers/list.html"

    def get(self, request, org_slug):
        can_manage = self.principal.can(services.PERMISSION)
        form, results, status = _search_form(), None, 200
        if can_manage and "country" in request.GET:
            form = _search_form(request.GET)
            if form.is_valid():
                try:
                    results = services.number_search(
                        organization=self.organization, actor=self.principal, **form.cleaned_data
                    )
                except ApplicationError as error:
                    apply_error(form, error)
                    status = 400
            else:
                status = 400
        context = {
            "numbers": list(phone_number_list(organization=self.organization)),
            "agents": number_agent_choices(organization=self.organization),
            "can_manage": can_manage,
            "can_import": can_manage and twilio_for_import_available(self.organization),
            "can_simulate": simulated_mode() and self.principal.can(simulated_calls.PERMISSION),
            "search_form": form,
            "results": results,
        }
        return render(request, self.template_name, context, status=status)


class NumberBuyView(OrganizationViewMixin, View):
    permission_required = services.PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug):
        try:
            number = services.number_buy(
                organization=self.organization, actor=self.principal,
                phone_number=request.POST.get("phone_number", ""), area_code=request.POST.get("area_code", ""),
                country=request.POST.get("country", "US"),
            )  # fmt: skip
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"{number.number} is yours. Choose the agent that answers it below.")
        return redirect("telephony:number-list", org_slug=self.organization.slug)


class NumberAssignView(OrganizationViewMixin, View):
    permission_required = services.PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug, number_id):
        number = phone_number_get(organization=self.organization, id=number_id)
        agent_id = request.POST.get("agent", "")
        agent = get_for_org_or_404(Agent, organization=self.organization, id=agent_id) if agent_id else None
        try:
            services.number_assign(organization=self.organization, actor=self.principal, number=number, agent=agent)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            if agent:
                messages.success(request, f"{agent.name} now answers {number.number}.")
            else:
                messages.success(request, f"No agent answers {number.number} now; callers hear that it is not in use.")
        return redirect("telephony:number-list", org_slug=self.organization.slug)


class NumberReleaseView(OrganizationViewMixin, View):
    permission_required = services.PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug, number_id):
        number = phone_number_get(organization=self.organization, id=number_id)
        try:
            services.number_release(organization=self.organization, actor=self.principal, number=number)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"{number.number} was released.")
        return redirect("telephony:number-list", org_slug=self.organization.slug)


class NumberImportView(OrganizationViewMixin, View):
    """The numbers of the organization's own Twilio account that can be brought to JagCall."""

    permission_required = services.PERMISSION
    template_name = "telephony/numbers/import.html"

    def get(self, request, org_slug):
        importable, error = [], None
        try:
            importable = services.number_importable_list(organization=self.organization, actor=self.principal)
        except ApplicationError as refused:
            error = refused.message
        return render(request, self.template_name, {"importable": importable, "error": error}, status=409 if error else 200)

    def post(self, request, org_slug):
        try:
            number = services.number_import(
                organization=self.organization, actor=self.principal, twilio_sid=request.POST.get("twilio_sid", "")
            )
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("telephony:number-import", org_slug=self.organization.slug)
        messages.success(request, f"{number.number} now rings on JagCall. Choose the agent that answers it.")
        return redirect("telephony:number-list", org_slug=self.organization.slug)


# How long "Simulate a caller" waits for the stand-in's ring to reach our voice webhook (the Call row).
SIMULATED_CALL_WAIT_SECONDS = 5.0
SIMULATED_CALL_POLL_SECONDS = 0.1
SIMULATED_CALL_NOTICE = (
    "This is a simulated call: no phone rings and no provider key is used. A scripted caller (a patient asking "
    "about your opening hours) talks with your agent through the local stand-ins; the conversation appears below "
    "as it happens."
)


class NumberSimulateCallView(OrganizationViewMixin, View):
    """Simulated mode only: a scripted caller rings the number, then the new call's page follows the conversation."""

    permission_required = simulated_calls.PERMISSION  # as placing a call
    http_method_names = ["post"]

    def post(self, request, org_slug, number_id):
        if not simulated_mode():
            raise Http404("Simulated callers exist only in simulated mode.")
        number = phone_number_get(organization=self.organization, id=number_id)
        try:
            call_sid = simulated_calls.simulated_call_ring(
                organization=self.organization, actor=self.principal, number=number
            )
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("telephony:number-list", org_slug=self.organization.slug)
        call = self._wait_for_call(call_sid)
        if call is None:
            messages.info(
                request,
                f"The simulated caller is ringing {number.number}; the call appears in this list in a moment. "
                "Open it to follow the conversation.",
            )
            return redirect("telephony:call-list", org_slug=self.organization.slug)
        messages.info(request, SIMULATED_CALL_NOTICE)
        return redirect("telephony:call-detail", org_slug=self.organization.slug, call_id=call.id)

    def _wait_for_call(self, call_sid: str):
        """The Call our voice webhook makes when the stand-in's ring reaches it, if within a few seconds."""
        deadline = time.monotonic() + SIMULATED_CALL_WAIT_SECONDS
        while True:
            call = call_for_org_by_twilio_sid(organization=self.organization, call_sid=call_sid)
            if call is not None or time.monotonic() >= deadline:
                return call
            time.sleep(SIMULATED_CALL_POLL_SECONDS)


urlpatterns = [
    path("numbers/", NumberListView.as_view(), name="number-list"),
    path("numbers/buy/", NumberBuyView.as_view(), name="number-buy"),
    path("numbers/import/", NumberImportView.as_view(), name="number-import"),
    path("numbers/<uuid:number_id>/assign/", NumberAssignView.as_view(), name="number-assign"),
    path("numbers/<uuid:number_id>/release/", NumberReleaseView.as_view(), name="number-release"),
    path("numbers/<uuid:number_id>/simulate-call/", NumberSimulateCallView.as_view(), name="number-simulate-call"),
]
