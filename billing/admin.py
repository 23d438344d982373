"""Billing in the back office: each organization's plan, subscription, usage and invoices; complimentary
plans and credits (each audited, through billing's services); the usage ledger and its reconciliation.

Everything is read-only but for those two grants and marking a reconciliation difference as looked into:
plans change through Stripe (or a grant), usage only through the services that record it.
"""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.shortcuts import get_object_or_404, redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from accounts.entitlements import PLANS, plan_of
from billing.models import BillingAccount, BillingCredit, UsageEvent, UsageReconciliation
from billing.selectors import spend_cap_reached, usage_summary
from jagcall.kernel.admin import ReadOnlyModelAdmin, back_office_queryset
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import ProviderError

STRIPE_DASHBOARD = "https://dashboard.stripe.com"


class ComplimentaryPlanForm(forms.Form):
    plan_code = forms.ChoiceField(
        label="Plan",
        choices=[("", "None (take the complimentary plan back)")] + [(code, plan.name) for code, plan in PLANS.items()],
        required=False,
    )
    reason = forms.CharField(max_length=300, help_text="Kept in the audit log, e.g. the ticket or the agreement.")


class CreditForm(forms.Form):
    amount = forms.DecimalField(label="Amount (USD)", min_value=0.01, max_value=10000, decimal_places=2)
    reason = forms.CharField(max_length=300, help_text="Shown to the customer on the invoice the credit applies to.")


@admin.register(BillingAccount)
class BillingAccountAdmin(ReadOnlyModelAdmin):
    list_display = ("organization", "plan", "standing", "subscription_status", "interval", "current_period_end",
                    "spend_cap", "stripe_customer")  # fmt: skip
    list_filter = ("subscription_status", "organization__billing_standing", "organization__plan_code", "interval")
    list_select_related = ("organization",)
    search_fields = ("organization__name", "organization__slug", "stripe_customer_id", "stripe_subscription_id")
    ordering = ("organization__name",)
    fields = (
        "organization", "plan", "standing", "subscription_status", "subscribed_plan_code", "interval",
        "current_period_start", "current_period_end", "cancel_at_period_end", "past_due_since",
        "complimentary_plan_code", "spend_cap", "stripe_customer", "stripe_subscription", "month_usage",
        "invoices", "credits", "synced_at", "created_at",
    )  # fmt: skip
    readonly_fields = fields

    @admin.display(description="Plan", ordering="organization__plan_code")
    def plan(self, obj):
        return plan_of(obj.organization).name

    @admin.display(description="Standing", ordering="organization__billing_standing")
    def standing(self, obj):
        return obj.organization.get_billing_standing_display()

    @admin.display(description="Spend cap")
    def spend_cap(self, obj):
        if obj.spend_cap_cents is None:
            return "—"
        shown = f"${obj.spend_cap_cents / 100:,.2f} a month"
        return f"{shown}: reached this month, outbound paused" if spend_cap_reached(obj.organization) else shown

    @admin.display(description="Stripe customer")
    def stripe_customer(self, obj):
        if not obj.stripe_customer_id:
            return "—"
        return format_html('<a href="{}/customers/{}" rel="noopener" target="_blank">{}</a>',
                           STRIPE_DASHBOARD, obj.stripe_customer_id, obj.stripe_customer_id)  # fmt: skip

    @admin.display(description="Stripe subscription")
    def stripe_subscription(self, obj):
        if not obj.stripe_subscription_id:
            return "—"
        return format_html('<a href="{}/subscriptions/{}" rel="noopener" target="_blank">{}</a>',
                           STRIPE_DASHBOARD, obj.stripe_subscription_id, obj.stripe_subscription_id)  # fmt: skip

    @admin.display(description="Usage this month")
    def month_usage(self, obj):
        summary = usage_summary(obj.organization)
        rows = format_html_join(
            "", "<li>{}: {} of {} included (projected {})</li>",
            ((line.label, line.used, line.included, line.projected) for line in summary.lines),
        )  # fmt: skip
        return format_html("<ul>{}</ul><p>Charges beyond the plan so far: ${}</p>", rows,
                           f"{summary.charges_cents / 100:,.2f}")  # fmt: skip

    @admin.display(description="Invoices (from Stripe)")
    def invoices(self, obj):
        if not obj.stripe_customer_id:
            return "No Stripe customer yet."
        from billing.services.stripe_api import client, plain

        try:
            listed = client().v1.invoices.list({"customer": obj.stripe_customer_id, "limit": 12})
        except Exception as error:  # the page must open even when Stripe does not answer
            return f"Stripe could not be reached: {getattr(error, 'user_message', None) or type(error).__name__}"
        invoices = [plain(invoice) for invoice in listed.data]
        if not invoices:
            return "No invoices yet."
        return format_html(
            "<ul>{}</ul>",
            format_html_join(
                "", '<li><a href="{}" rel="noopener" target="_blank">{}</a> — ${} — {}</li>',
                ((i.get("hosted_invoice_url") or f"{STRIPE_DASHBOARD}/invoices/{i['id']}", i.get("number") or i["id"],
                  f"{int(i.get('amount_due') or 0) / 100:,.2f}", i.get("status") or "") for i in invoices),
            ),
        )  # fmt: skip

    @admin.display(description="Credits granted")
    def credits(self, obj):
        credits = back_office_queryset(BillingCredit.objects.all()).filter(organization=obj.organization)[:20]
        if not credits:
            return "None."
        return format_html("<ul>{}</ul>", format_html_join(
            "", "<li>{}: ${} — {}</li>",
            ((c.created_at.date(), f"{c.amount_cents / 100:,.2f}", c.reason) for c in credits),
        ))  # fmt: skip

    # --- the two grants ----------------------------------------------------------------------

    def get_urls(self):
        return [
            path("<uuid:pk>/complimentary-plan/", self.admin_site.admin_view(self.complimentary_plan_view),
                 name="billing_billingaccount_complimentary"),
            path("<uuid:pk>/credit/", self.admin_site.admin_view(self.credit_view), name="billing_billingaccount_credit"),
        ] + super().get_urls()  # fmt: skip

    def change_view(self, request, object_id, form_url="", extra_context=None):
        extra_context = {
            **(extra_context or {}),
            "grant_links": [
                ("Grant a complimentary plan", reverse("admin:billing_billingaccount_complimentary", args=[object_id])),
                ("Grant a credit", reverse("admin:billing_billingaccount_credit", args=[object_id])),
            ],
        }
        return super().change_view(request, object_id, form_url, extra_context)

    def _grant(self, request, pk, form_class, title, apply):
        account = get_object_or_404(back_office_queryset(BillingAccount.objects.select_related("organization")), pk=pk)
        form = form_class(request.POST or None)
        if request.method == "POST" and form.is_valid():
            try:
                message = apply(account, form.cleaned_data)
            except (ApplicationError, ProviderError) as error:
                form.add_error(getattr(error, "field", None) if getattr(error, "field", None) in form.fields else None,
                               error.message)  # fmt: skip
            else:
                self.message_user(request, message, messages.SUCCESS)
                return redirect("admin:billing_billingaccount_change", account.pk)
        context = {
            **self.admin_site.each_context(request),
            "title": f"{title}: {account.organization.name}",
            "form": form,
            "account": account,
            "opts": self.model._meta,
        }
        return TemplateResponse(request, "admin/billing/grant.html", context, status=400 if form.errors else 200)

    def complimentary_plan_view(self, request, pk):
        from billing.services.subscriptions import complimentary_plan_grant

        def apply(account, data):
            complimentary_plan_grant(organization=account.organization, staff_user=request.user,
                                     plan_code=data["plan_code"], reason=data["reason"])  # fmt: skip
            plan = PLANS[data["plan_code"]].name if data["plan_code"] else "none"
            return f"Complimentary plan of {account.organization.name}: {plan}."

        return self._grant(request, pk, ComplimentaryPlanForm, "Grant a complimentary plan", apply)

    def credit_view(self, request, pk):
        from billing.services.subscriptions import credit_grant

        def apply(account, data):
            cents = int((data["amount"] * 100).to_integral_value())
            credit_grant(organization=account.organization, staff_user=request.user, amount_cents=cents,
                         reason=data["reason"])  # fmt: skip
            return f"${cents / 100:,.2f} credited to {account.organization.name}."

        return self._grant(request, pk, CreditForm, "Grant a credit", apply)


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyModelAdmin):
    list_display = ("occurred_at", "organization", "kind", "quantity", "source", "sent_at", "attempts", "last_error")
    list_filter = ("kind", ("sent_at", admin.EmptyFieldListFilter))
    list_select_related = ("organization",)
    search_fields = ("source", "identifier", "organization__name", "organization__slug")
    ordering = ("-occurred_at",)
    date_hierarchy = "occurred_at"
    fields = ("id", "organization", "kind", "quantity", "source", "identifier", "occurred_at", "sent_at", "attempts",
              "last_error")  # fmt: skip
    readonly_fields = fields


class DiffersFilter(admin.SimpleListFilter):
    title = "result"
    parameter_name = "differs"

    def lookups(self, request, model_admin):
        return [("yes", "Differs, not looked into"), ("no", "Matches")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.exclude(difference=0).filter(resolved_at__isnull=True)
        if self.value() == "no":
            return queryset.filter(difference=0)
        return queryset


@admin.register(UsageReconciliation)
class UsageReconciliationAdmin(ReadOnlyModelAdmin):
    list_display = ("day", "organization", "kind", "ours", "stripes", "difference", "checked_at", "resolved_at")
    list_filter = (DiffersFilter, "kind", "day")
    list_select_related = ("organization",)
    search_fields = ("organization__name", "organization__slug")
    ordering = ("-day",)
    fields = ("organization", "kind", "day", "ours", "stripes", "difference", "checked_at", "resolved_at",
              "resolution_note")  # fmt: skip
    readonly_fields = fields
    actions = ["mark_looked_into"]

    @admin.action(description="Mark the selected differences as looked into")
    def mark_looked_into(self, request, queryset):
        from compliance.services import audit_record

        count = 0
        for row in queryset.filter(resolved_at__isnull=True):
            row.resolved_at = timezone.now()
            row.resolution_note = f"Looked into by {request.user.email}"
            row.save(update_fields=["resolved_at", "resolution_note"])
            audit_record(action="billing.reconciliation_resolved", organization=row.organization, actor=request.user,
                         resource=row, metadata={"kind": row.kind, "day": row.day.isoformat()})  # fmt: skip
            count += 1
        self.message_user(request, f"{count} marked as looked into.", messages.SUCCESS)


@admin.register(BillingCredit)
class BillingCreditAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "organization", "amount", "reason", "granted_by", "stripe_transaction_id")
    list_select_related = ("organization", "granted_by")
    search_fields = ("organization__name", "organization__slug", "reason")
    ordering = ("-created_at",)
    fields = ("organization", "amount_cents", "reason", "granted_by", "stripe_transaction_id", "created_at")
    readonly_fields = fields

    @admin.display(description="Amount")
    def amount(self, obj):
        return f"${obj.amount_cents / 100:,.2f}"
