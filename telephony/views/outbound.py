"""Portal pages: placing an outbound call (/o/<slug>/calls/new/).

The page only collects the inputs; ``place_call`` decides. A refusal of the
pre-dial gate is shown at the field it concerns (the destination, the caller
number), or above the form when it concerns the organization; a call Twilio
did not take is shown with a link to the failed call.
"""

from __future__ import annotations

from django import forms
from django.conf import settings
from django.http import HttpResponseRedirect
from django.shortcuts import render
from django.urls import path, reverse
from django.views import View

from accounts.mixins import OrganizationViewMixin
from jagcall.kernel.errors import ApplicationError
from telephony.models import Agent, PhoneNumber
from telephony.services.dialing import DialRefused, destinations_open_now
from telephony.services.outbound import MAX_VARIABLE_VALUE, MAX_VARIABLES, CallNotPlaced, place_call

# Rows of variables the page shows when nothing was typed yet (up to MAX_VARIABLES are read back).
BLANK_VARIABLE_ROWS = 3
# The gate's and the service's fields -> this form's.
_FIELDS = {"to": "to", "from": "from_number", "agent": "agent", "variables": None}


class PlaceCallForm(forms.Form):
    agent = forms.ModelChoiceField(queryset=Agent.objects.none(), empty_label=None, help_text="Who talks on the call.")
    from_number = forms.ModelChoiceField(
        queryset=PhoneNumber.objects.none(), empty_label=None, label="Caller number",
        help_text="The callee sees this number.",
    )
    to = forms.CharField(
        label="Destination", max_length=40,
        help_text="International format without spaces, e.g. +14155550100. Calls are allowed 08:00-21:00 in the "
        "callee's local time, never to numbers on the do-not-call list.",
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "tel", "placeholder": "+14155550100"}),
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["agent"].queryset = Agent.objects.for_org(organization).order_by("name")
        self.fields["from_number"].queryset = (
            PhoneNumber.objects.for_org(organization)
            .filter(released_at__isnull=True, voice_enabled=True)
            .order_by("number")
        )
        self.fields["from_number"].label_from_instance = lambda n: f"{n.number} {n.friendly_name}".strip()
        self.variable_rows = self._rows()

    def _rows(self) -> list[tuple[str, str]]:
        """The (name, value) rows as typed (bound), at least BLANK_VARIABLE_ROWS, at most MAX_VARIABLES."""
        names = self.data.getlist("variable_name") if self.is_bound else []
        values = self.data.getlist("variable_value") if self.is_bound else []
        rows = list(zip(names, values + [""] * (len(names) - len(values))))[:MAX_VARIABLES]
        return rows + [("", "")] * max(0, BLANK_VARIABLE_ROWS - len(rows))

    def variables(self) -> dict[str, str]:
        """Rows with a name; a value without a name is an error (the service checks names and lengths)."""
        variables = {}
        for name, value in self.variable_rows:
            name = name.strip()
            if not name and value.strip():
                raise ApplicationError(f"The value {value[:40]!r} has no name: give it one, e.g. first_name.",
                                       field="variables")
            if name:
                if name in variables:
                    raise ApplicationError(f"The variable {name} is given twice.", field="variables")
                variables[name] = value
        return variables


class PlaceCallView(OrganizationViewMixin, View):
    """Place a call: agent, caller number, destination and the prompt's variables."""

    permission_required = "product.use"
    template_name = "telephony/outbound/place_call.html"

    def _render(self, request, form, *, status=200, failed_call=None):
        context = {
            "form": form,
            "variable_rows": form.variable_rows,
            "variables_error": getattr(form, "variables_error", ""),
            "failed_call": failed_call,
            "max_variables": MAX_VARIABLES,
            "max_variable_value": MAX_VARIABLE_VALUE,
            "has_agents": form.fields["agent"].queryset.exists(),
            "has_numbers": form.fields["from_number"].queryset.exists(),
            # Simulated mode: nobody is really called, so suggest numbers that calling hours allow right now.
            "example_destinations": destinations_open_now() if settings.SIMULATED_PROVIDERS else [],
        }
        return render(request, self.template_name, context, status=status)

    def get(self, request, org_slug):
        # Prefilled from a link (the softphone's "place the call through JagCall", a call's "call back"):
        # the destination as typed, and the caller line by its number when it is one of ours.
        initial = {"to": request.GET.get("to", "")[:40]}
        form = PlaceCallForm(initial=initial, organization=self.organization)
        line = request.GET.get("from_number", "")[:40]
        if line:
            initial["from_number"] = form.fields["from_number"].queryset.filter(number=line).values_list("pk", flat=True).first()
        return self._render(request, form)

    def post(self, request, org_slug):
        form = PlaceCallForm(request.POST, organization=self.organization)
        if not form.is_valid():
            return self._render(request, form, status=400)
        try:
            call = place_call(
                organization=self.organization,
                actor=self.principal,
                agent=form.cleaned_data["agent"],
                to_number=form.cleaned_data["to"].strip(),
                from_number=form.cleaned_data["from_number"],
                variables=form.variables(),
            )
        except CallNotPlaced as error:
            form.add_error(None, error.message)
            return self._render(request, form, status=error.status, failed_call=error.call)
        except (DialRefused, ApplicationError) as error:
            field = _FIELDS.get(error.field)
            if error.field == "variables":
                form.variables_error = error.message
                form.add_error(None, error.message)
            else:
                form.add_error(field if field in form.fields else None, error.message)
            return self._render(request, form, status=422 if isinstance(error, DialRefused) else 400)
        return HttpResponseRedirect(
            reverse("telephony:call-detail", kwargs={"org_slug": self.organization.slug, "call_id": call.id})
        )


urlpatterns = [
    path("calls/new/", PlaceCallView.as_view(), name="call-place"),
]
