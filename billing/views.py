"""Portal pages: the organization's Billing (/o/<slug>/billing/). Owners only (``billing.manage``).

- overview: the plan and subscription, the standing, the month's usage against the plan, the spend cap,
  "Manage billing" (Stripe's Customer Portal) and the plans, each with Subscribe (Stripe Checkout) or
  "Change to this plan" (a proration preview first);
- checkout / checkout-return: off to Stripe Checkout and back (the subscription is fetched from Stripe on
  return; when Stripe has not finished, the overview updates itself once it has);
- plan-change: Stripe's proration preview of a plan change, then the change as previewed;
- portal: off to Stripe's Customer Portal (cards, invoices, cancelling);
- spend-cap: set or remove the monthly cap on usage charges, in dollars.

Reads go through billing's selectors, writes through its services; a refusal (``ApplicationError``) is
shown on the page with its 4xx status, and Stripe being unreachable (``ProviderError``) with 502/503.

[!!] No card field on any of these pages: cards are typed on Stripe's hosted pages only.
"""

from __future__ import annotations

import datetime as dt
from decimal import ROUND_HALF_UP, Decimal

from django.conf import settings
from django.contrib import messages
from django.http import HttpResponseRedirect
from django.shortcuts import redirect, render
from django.urls import reverse
from django.views import View

from accounts.entitlements import (
    FEATURE_LABELS,
    GIB,
    LIMIT_LABELS,
    PLAN_ORDER,
    PLANS,
    Plan,
    Standing,
    plan_of,
)
from accounts.mixins import OrganizationViewMixin
from accounts.views import apply_error
from billing.forms import PlanChangeConfirmForm, PlanChoiceForm, SpendCapForm
from billing.models import BillingAccount, Interval, SubscriptionStatus
from billing.selectors import billing_account_of, spend_cap_reached, usage_summary
from billing.services.checkout import checkout_return, checkout_start, portal_url
from billing.services.subscriptions import LIVE, plan_change, plan_change_preview
from billing.services.usage import spend_cap_set
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import ProviderError

PERMISSION = "billing.manage"
OVERVIEW_TEMPLATE = "billing/overview.html"
PLAN_CHANGE_TEMPLATE = "billing/plan_change.html"
CURRENCY_SIGNS = {"USD": "$"}
# Limits shown in the plans table, in this order (the API's rate limits are on the API docs' page).
SHOWN_LIMITS = ["seats", "phone_numbers", "concurrent_calls", "included_minutes", "included_sms_segments",
                "knowledge_storage_bytes"]  # fmt: skip


# --- formatting ------------------------------------------------------------------------------------


def money(cents, currency: str = "USD", *, whole: bool = False) -> str:
    """"$1,990", "$12.50", "−$3.20" ("whole": no cents when there are none)."""
    amount = (Decimal(cents) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    sign = "−" if amount < 0 else ""
    amount = abs(amount)
    text = f"{amount:,.0f}" if whole and amount == amount.to_integral_value() else f"{amount:,.2f}"
    symbol = CURRENCY_SIGNS.get(currency.upper())
    return f"{sign}{symbol}{text}" if symbol else f"{sign}{text} {currency.upper()}"


def _rate(centicents: int) -> str:
    """A per-unit price in hundredths of a cent as dollars: 900 -> "$0.09", 150 -> "$0.015"."""
    dollars = (Decimal(centicents) / 10_000).normalize()
    text = format(dollars, "f")
    if "." not in text or len(text.split(".")[1]) < 2:
        text = f"{dollars:.2f}"
    return f"${text}"


def _limit_value(name: str, value: int) -> str:
    if name == "knowledge_storage_bytes":
        return f"{value // GIB:,} GB" if value >= GIB else f"{value // (1024 * 1024):,} MB"
    return f"{value:,}"


def _interval_words(interval: str) -> str:
    return "a year" if interval == "year" else "a month"


# --- what the overview shows -----------------------------------------------------------------------


def _plans_table(current: Plan, *, interval: str) -> dict:
    """The plans side by side: a column per plan, and rows of prices, limits, features and support."""
    plans = [PLANS[code] for code in PLAN_ORDER]
    columns = []
    for plan in plans:
        months_free = round(12 - plan.yearly_cents / plan.monthly_cents) if plan.monthly_cents else 0
        columns.append(
            {
                "plan": plan,
                "is_current": plan.code == current.code,
                "monthly": money(plan.monthly_cents, whole=True),
                "yearly": money(plan.yearly_cents, whole=True),
                "months_free": max(months_free, 0),
                # With a live subscription, "Change to this plan" previews this interval; on the current plan,
                # the other one (switching between monthly and yearly billing).
                "change_interval": ("year" if interval == "month" else "month") if plan.code == current.code else interval,
            }
        )
    return {
        "columns": columns,
        "current_index": PLAN_ORDER.index(current.code) if current.code in PLAN_ORDER else -1,
        "limits": [
            {"label": LIMIT_LABELS[name], "values": [_limit_value(name, plan.limits[name]) for plan in plans]}
            for name in SHOWN_LIMITS
        ],
        "features": [
            {"label": label, "values": [feature in plan.features for plan in plans]}
            for feature, label in FEATURE_LABELS.items()
        ],
        "overage": [
            {"label": "Each call minute beyond the included", "values": [_rate(p.minute_overage_centicents) for p in plans]},
            {"label": "Each SMS segment beyond the included", "values": [_rate(p.segment_overage_centicents) for p in plans]},
        ],
        "support": [plan.support for plan in plans],
    }


def _subscription_facts(account: BillingAccount | None, plan: Plan) -> dict:
    """The subscription in words: which kind of state the page explains, and its dates and price."""
    status = account.subscription_status if account is not None else SubscriptionStatus.NONE
    interval = (account.interval if account is not None else "") or "month"
    facts = {
        "status": status,
        "status_label": SubscriptionStatus(status).label if status in SubscriptionStatus.values else status,
        "interval": interval,
        "interval_label": Interval(interval).label.lower(),
        "price": money(plan.price_cents(interval), whole=True),
        "per": _interval_words(interval),
        "period_end": account.current_period_end if account is not None else None,
        "cancel_at_period_end": bool(account and account.cancel_at_period_end),
        "complimentary": False,
        "kind": "none",  # none | live | incomplete | ended | complimentary
    }
    if account is None:
        return facts
    if account.stripe_subscription_id and status in LIVE:
        facts["kind"] = "live"
    elif account.complimentary_plan_code:
        facts["kind"], facts["complimentary"] = "complimentary", True
    elif status == SubscriptionStatus.INCOMPLETE:
        facts["kind"] = "incomplete"
    elif account.stripe_subscription_id and status != SubscriptionStatus.NONE:
        facts["kind"] = "ended"
    return facts


def _standing_facts(organization, account: BillingAccount | None) -> dict:
    standing = getattr(organization, "billing_standing", Standing.GOOD)
    since = account.past_due_since if account is not None else None
    grace = int(settings.BILLING_GRACE_DAYS)
    return {
        "standing": standing,
        "past_due_since": since,
        "restrict_on": since + dt.timedelta(days=grace) if since else None,
        "grace_days": grace,
    }


def _cap_facts(organization, account: BillingAccount | None, charges_cents: Decimal) -> dict:
    cap = account.spend_cap_cents if account is not None else None
    if cap is None:
        return {"state": "none", "cap": None, "charges": money(charges_cents)}
    warning_percent = int(settings.BILLING_CAP_WARNING_PERCENT)
    if spend_cap_reached(organization) or charges_cents >= cap:
        state = "reached"
    elif charges_cents >= Decimal(cap) * warning_percent / 100:
        state = "warned"
    else:
        state = "under"
    return {
        "state": state,
        "cap": money(cap),
        "cap_dollars": f"{Decimal(cap) / 100:.2f}",
        "charges": money(charges_cents),
        "percent": min(100, round(100 * charges_cents / cap)) if cap else 0,
        "warning_percent": warning_percent,
    }


def _overview(request, view, *, cap_form: SpendCapForm | None = None, status: int = 200):
    organization = view.organization
    account = billing_account_of(organization)
    plan = plan_of(organization)
    subscription = _subscription_facts(account, plan)
    summary = usage_summary(organization)
    cap = _cap_facts(organization, account, summary.charges_cents)
    if cap_form is None:
        cap_form = SpendCapForm(initial={"cap": cap.get("cap_dollars", "")})
    live = subscription["kind"] == "live"
    context = {
        "account": account,
        "plan": plan,
        "subscription": subscription,
        "has_subscription": live,
        # The Customer Portal needs a Stripe customer that has had a subscription (invoices, a card to update).
        "can_manage": bool(account and account.stripe_customer_id and account.subscription_status != SubscriptionStatus.NONE),
        "standing": _standing_facts(organization, account),
        "usage": summary,
        "usage_lines": [
            {"line": line, "over": max(0, line.used - line.included), "rate": _rate(
                plan.minute_overage_centicents if line.kind == "call_minutes" else plan.segment_overage_centicents
            )}
            for line in summary.lines
        ],
        "charges": money(summary.charges_cents),
        "projected_charges": money(summary.projected_charges_cents),
        "month_last_day": summary.month_end - dt.timedelta(seconds=1),
        "cap": cap,
        "cap_form": cap_form,
        "plans": _plans_table(plan, interval=subscription["interval"]),
        "checkout_canceled": request.GET.get("checkout") == "canceled",
        # What the page's script compares with a fresh copy after (re)connecting: a change means reload.
        "billing_state": f"{organization.plan_code}:{subscription['status']}:{organization.billing_standing}",
        "live_events_url": f"/ws/o/{organization.slug}/events/",
        "interval_choices": PlanChoiceForm.base_fields["interval"].choices,
    }
    return render(request, OVERVIEW_TEMPLATE, context, status=status)


def _provider_status(error: ProviderError) -> int:
    return 503 if error.retryable or error.status is None else 502


def _provider_message(error: ProviderError) -> str:
    advice = "try again in a moment" if error.retryable else "if it happens again, contact JagCall support"
    return f"Stripe could not {error.operation}: it {error.message}. Nothing was changed; {advice}."


def _overview_url(organization) -> str:
    return reverse("billing:overview", kwargs={"org_slug": organization.slug})


class BillingOverviewView(OrganizationViewMixin, View):
    """The Billing page."""

    permission_required = PERMISSION

    def get(self, request, org_slug):
        return _overview(request, self)


class CheckoutView(OrganizationViewMixin, View):
    """Subscribe: a Stripe Checkout session for the chosen plan and interval, then off to Stripe (303)."""

    permission_required = PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug):
        form = PlanChoiceForm(request.POST)
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, error)
            return _overview(request, self, status=400)
        overview = request.build_absolute_uri(_overview_url(self.organization))
        back = request.build_absolute_uri(
            reverse("billing:checkout-return", kwargs={"org_slug": self.organization.slug})
        )
        try:
            url = checkout_start(
                organization=self.organization,
                actor=self.principal,
                plan_code=form.cleaned_data["plan"],
                interval=form.cleaned_data["interval"],
                # Stripe fills the braces in with the session's id: they must stay unescaped.
                success_url=f"{back}?session_id={{CHECKOUT_SESSION_ID}}",
                cancel_url=f"{overview}?checkout=canceled",
            )
        except ApplicationError as error:
            messages.error(request, error.message)
            return _overview(request, self, status=error.status)
        except ProviderError as error:
            messages.error(request, _provider_message(error))
            return _overview(request, self, status=_provider_status(error))
        return HttpResponseRedirect(url, status=303)


class CheckoutReturnView(OrganizationViewMixin, View):
    """Back from Stripe Checkout: fetch the session and its subscription, then the overview with the outcome."""

    permission_required = PERMISSION

    def get(self, request, org_slug):
        session_id = request.GET.get("session_id", "").strip()
        if not session_id:  # not from Checkout: nothing to confirm
            return redirect("billing:overview", org_slug=self.organization.slug)
        try:
            account = checkout_return(organization=self.organization, actor=self.principal, session_id=session_id)
        except ApplicationError as error:
            messages.error(request, error.message)
            return _overview(request, self, status=error.status)
        except ProviderError as error:
            messages.error(request, _provider_message(error))
            return _overview(request, self, status=_provider_status(error))
        if account.stripe_subscription_id and account.subscription_status in LIVE and account.subscribed_plan_code in PLANS:
            messages.success(request, f"You are now on {PLANS[account.subscribed_plan_code].name}.")
        else:
            messages.info(request, "Stripe is confirming your payment; this page updates in a moment.")
        return redirect("billing:overview", org_slug=self.organization.slug)


def _plan_change_page(request, view, *, preview=None, error: str = "", target=None, status: int = 200):
    organization = view.organization
    account = billing_account_of(organization)
    current = plan_of(organization)
    interval = (account.interval if account is not None else "") or "month"
    context = {
        "preview": preview,
        "error": error,
        "current_plan": current,
        "current_interval_label": Interval(interval).label.lower(),
        "target": target,
    }
    if preview is not None:
        target = PLANS[preview.plan_code]
        context.update(
            target=target,
            target_interval_label=Interval(preview.interval).label.lower(),
            target_price=money(target.price_cents(preview.interval), whole=True),
            target_per=_interval_words(preview.interval),
            other_interval="year" if preview.interval == "month" else "month",
            lines=[{"description": text, "amount": money(cents, preview.currency), "credit": cents < 0}
                   for text, cents in preview.lines],  # fmt: skip
            amount_due=money(preview.amount_due_cents, preview.currency),
            # A new billing interval starts a new period now, invoiced at once; the same interval adds the
            # prorations to the next invoice, at the period's end (with the new plan's next period).
            charged_now=preview.interval != interval,
            next_invoice_on=account.current_period_end if account is not None else None,
            valid_until=dt.datetime.fromtimestamp(preview.proration_date, tz=dt.UTC) + dt.timedelta(minutes=30),
            confirm_form=PlanChangeConfirmForm(
                initial={"plan": preview.plan_code, "interval": preview.interval, "proration_date": preview.proration_date}
            ),
        )
    return render(request, PLAN_CHANGE_TEMPLATE, context, status=status)


class PlanChangeView(OrganizationViewMixin, View):
    """GET ?plan=&interval=: Stripe's proration preview of the change; POST: the change, as previewed."""

    permission_required = PERMISSION

    def _preview(self, plan_code: str, interval: str):
        return plan_change_preview(
            organization=self.organization, actor=self.principal, plan_code=plan_code, interval=interval
        )

    def get(self, request, org_slug):
        form = PlanChoiceForm(request.GET)
        if not form.is_valid():
            message = " ".join(error for errors in form.errors.values() for error in errors)
            return _plan_change_page(request, self, error=message, status=400)
        target = PLANS[form.cleaned_data["plan"]]
        try:
            preview = self._preview(form.cleaned_data["plan"], form.cleaned_data["interval"])
        except ApplicationError as error:
            return _plan_change_page(request, self, error=error.message, target=target, status=error.status)
        except ProviderError as error:
            return _plan_change_page(
                request, self, error=_provider_message(error), target=target, status=_provider_status(error)
            )
        return _plan_change_page(request, self, preview=preview)

    def post(self, request, org_slug):
        form = PlanChangeConfirmForm(request.POST)
        if not form.is_valid():
            message = " ".join(error for errors in form.errors.values() for error in errors)
            return _plan_change_page(request, self, error=message, status=400)
        plan_code, interval = form.cleaned_data["plan"], form.cleaned_data["interval"]
        try:
            account = plan_change(
                organization=self.organization,
                actor=self.principal,
                plan_code=plan_code,
                interval=interval,
                proration_date=form.cleaned_data["proration_date"],
            )
        except ApplicationError as error:
            # Show the change again with a fresh preview where there can be one (an expired preview, a refusal).
            preview = None
            if error.code not in {"same_plan", "no_subscription", "unknown_plan", "unknown_interval"}:
                try:
                    preview = self._preview(plan_code, interval)
                except (ApplicationError, ProviderError):
                    preview = None
            return _plan_change_page(
                request, self, preview=preview, error=error.message, target=PLANS[plan_code], status=error.status
            )
        except ProviderError as error:
            return _plan_change_page(
                request, self, error=_provider_message(error), target=PLANS[plan_code], status=_provider_status(error)
            )
        now_on = PLANS.get(account.subscribed_plan_code, PLANS[plan_code])
        billed = Interval(account.interval or interval).label.lower()
        messages.success(request, f"Your plan is now {now_on.name}, billed {billed}. Stripe prorates the difference.")
        return redirect("billing:overview", org_slug=self.organization.slug)


class PortalView(OrganizationViewMixin, View):
    """Manage billing: a Stripe Customer Portal session (cards, invoices, cancelling), then off to Stripe (303)."""

    permission_required = PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug):
        try:
            url = portal_url(
                organization=self.organization,
                actor=self.principal,
                return_url=request.build_absolute_uri(_overview_url(self.organization)),
            )
        except ApplicationError as error:
            messages.error(request, error.message)
            return _overview(request, self, status=error.status)
        except ProviderError as error:
            messages.error(request, _provider_message(error))
            return _overview(request, self, status=_provider_status(error))
        return HttpResponseRedirect(url, status=303)


class SpendCapView(OrganizationViewMixin, View):
    """Set the monthly spend cap (dollars), or remove it (empty)."""

    permission_required = PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug):
        form = SpendCapForm(request.POST)
        if form.is_valid():
            cap_cents = form.cleaned_data["cap"]
            try:
                spend_cap_set(organization=self.organization, actor=self.principal, cap_cents=cap_cents)
            except ApplicationError as error:
                apply_error(form, error)
                return _overview(request, self, cap_form=form, status=error.status)
            if cap_cents is None:
                messages.success(request, "The spend cap is removed: usage beyond your plan is billed without a limit.")
            else:
                messages.success(request, f"The monthly spend cap is now {money(cap_cents)}.")
            return redirect(f"{_overview_url(self.organization)}#spend-cap")
        return _overview(request, self, cap_form=form, status=400)

