"""Portal pages: the organization's messaging settings (/o/<slug>/messages/settings/).

The HELP answer, and for each number that can text: whether its agent answers texts, and its A2P 10DLC
registration with a "Check now" that asks Twilio. Owners and admins only (``numbers.manage``, as managing
numbers). A refused change shows the page again with what to fix, with a 4xx status.
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.shortcuts import redirect, render
from django.views import View

from accounts.mixins import OrganizationViewMixin
from accounts.views import apply_error
from jagcall.kernel.errors import ApplicationError
from messaging.models import A2PStatus
from messaging.services import settings as services
from telephony.selectors.numbers import phone_number_get

TEMPLATE = "messaging/settings.html"


class HelpTextForm(forms.Form):
    help_text = forms.CharField(
        label="Answer to HELP",
        required=False,
        strip=True,
        # The length is checked by the service, with a message that says what to do; browsers stop at it too.
        widget=forms.Textarea(attrs={"rows": 3, "maxlength": services.HELP_TEXT_MAX}),
        help_text=(
            f"Sent when someone texts HELP or INFO to one of your numbers. Up to {services.HELP_TEXT_MAX} "
            "characters; say who you are, how to reach you and that STOP unsubscribes. Leave it empty to send the "
            "default."
        ),
    )


def _page(request, view, *, help_form: HelpTextForm | None = None, status: int = 200):
    current = services.messaging_settings_get(organization=view.organization)
    if help_form is None:
        help_form = HelpTextForm(initial={"help_text": current.help_text})
    if current.default_help_text:
        help_form.fields["help_text"].widget.attrs["placeholder"] = current.default_help_text
    context = {"messaging_settings": current, "help_form": help_form}
    return render(request, TEMPLATE, context, status=status)


class MessagingSettingsView(OrganizationViewMixin, View):
    """The page, and saving the HELP answer."""

    permission_required = services.PERMISSION

    def get(self, request, org_slug):
        return _page(request, self)

    def post(self, request, org_slug):
        form = HelpTextForm(request.POST)
        if form.is_valid():
            try:
                profile = services.help_text_update(
                    organization=self.organization, actor=self.principal, help_text=form.cleaned_data["help_text"]
                )
            except ApplicationError as error:
                apply_error(form, error)
            else:
                if profile.help_text:
                    messages.success(request, "Saved: texting HELP now gets your answer.")
                else:
                    messages.success(request, "Saved: texting HELP now gets the default answer.")
                return redirect("messaging:settings", org_slug=self.organization.slug)
        return _page(request, self, help_form=form, status=400)


class AgentRepliesView(OrganizationViewMixin, View):
    """Turn "Agent answers texts" on or off for one number."""

    permission_required = services.PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug, number_id):
        number = phone_number_get(organization=self.organization, id=number_id)
        choice = request.POST.get("agent_replies", "")
        if choice not in ("on", "off"):
            messages.error(request, "Choose whether the agent answers texts (on or off).")
            return _page(request, self, status=400)
        enabled = choice == "on"
        try:
            services.agent_replies_set(
                organization=self.organization, actor=self.principal, phone_number=number, enabled=enabled
            )
        except ApplicationError as error:
            messages.error(request, error.message)
            return _page(request, self, status=error.status)
        if enabled:
            messages.success(request, f"{number.agent.name} now answers texts to {number.number}.")
        else:
            messages.success(request, f"Texts to {number.number} now wait for your team in the inbox.")
        return redirect("messaging:settings", org_slug=self.organization.slug)


class A2PCheckView(OrganizationViewMixin, View):
    """"Check now": ask Twilio for one number's A2P 10DLC registration."""

    permission_required = services.PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug, number_id):
        number = phone_number_get(organization=self.organization, id=number_id)
        try:
            row = services.a2p_check(organization=self.organization, actor=self.principal, phone_number=number)
        except ApplicationError as error:
            messages.error(request, error.message)
            return _page(request, self, status=error.status)
        label = A2PStatus(row.a2p_status).label
        if row.a2p_status in (A2PStatus.VERIFIED, A2PStatus.NOT_REQUIRED):
            messages.success(request, f"{number.number}: {label}.")
        else:
            messages.warning(request, f"{number.number}: {label}. See below for what to do.")
        return redirect("messaging:settings", org_slug=self.organization.slug)
