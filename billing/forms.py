"""The Billing pages' forms: choosing a plan, confirming a plan change, the monthly spend cap.

[!!] No card field here or anywhere: cards are typed on Stripe's hosted pages only.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

from django import forms

from accounts.entitlements import INTERVALS, PLAN_ORDER, PLANS
from billing.models import Interval

PLAN_CHOICES = [(code, PLANS[code].name) for code in PLAN_ORDER]
INTERVAL_CHOICES = [(value, Interval(value).label) for value in INTERVALS]


class PlanChoiceForm(forms.Form):
    """A plan and how often it is billed (Subscribe, and the plan change preview's query)."""

    plan = forms.ChoiceField(choices=PLAN_CHOICES, error_messages={"invalid_choice": "Choose one of the plans."})
    interval = forms.ChoiceField(
        choices=INTERVAL_CHOICES,
        initial="month",
        label="Billed",
        error_messages={"invalid_choice": "Choose monthly or yearly billing."},
    )


class PlanChangeConfirmForm(PlanChoiceForm):
    """The confirmation of a previewed change: the preview's moment makes Stripe bill exactly what was shown."""

    proration_date = forms.IntegerField(min_value=0, widget=forms.HiddenInput)


# "50", "50.5", "1250.00", "$1,250.50": digits with optional thousands commas, at most one decimal point.
_AMOUNT = re.compile(r"^\d{1,3}(,\d{3})+(\.\d*)?$|^\d*(\.\d*)?$")


class SpendCapForm(forms.Form):
    """The monthly cap on usage charges, in dollars; empty removes it."""

    cap = forms.CharField(
        label="Monthly spend cap (USD)",
        required=False,
        max_length=20,
        strip=True,
        widget=forms.TextInput(attrs={"inputmode": "decimal", "placeholder": "No cap", "autocomplete": "off"}),
        help_text=(
            "Caps what usage beyond your plan's included minutes and texts may cost in a month (the plan's own "
            "price is not counted). Leave it empty for no cap."
        ),
    )

    def clean_cap(self) -> int | None:
        """The cap in cents, or None to remove it. The service checks the allowed range."""
        raw = (self.cleaned_data.get("cap") or "").replace(" ", "")
        if raw.startswith("$"):
            raw = raw[1:]
        if not raw:
            return None
        if raw.startswith("-"):
            raise forms.ValidationError("A spend cap cannot be negative: enter an amount such as 50, or leave it empty for no cap.")
        if not _AMOUNT.match(raw) or raw in (".", ""):
            raise forms.ValidationError("Enter an amount in dollars, such as 50 or 125.50.")
        try:
            dollars = Decimal(raw.replace(",", ""))
        except InvalidOperation:
            raise forms.ValidationError("Enter an amount in dollars, such as 50 or 125.50.") from None
        if not dollars.is_finite():
            raise forms.ValidationError("Enter an amount in dollars, such as 50 or 125.50.")
        if dollars != dollars.quantize(Decimal("0.01")):
            raise forms.ValidationError("Use at most two decimals (whole cents), such as 125.50.")
        return int(dollars * 100)
