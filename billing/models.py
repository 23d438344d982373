"""Billing's records: an organization's Stripe customer and subscription, its usage ledger, reconciliations.

What a plan includes lives in accounts (accounts/entitlements.py) and an organization's plan and standing on
the organization itself; these rows are what Stripe told us (``BillingAccount``, refreshed from the objects
fetched from Stripe, never from an event's snapshot), what we owe Stripe a report of (``UsageEvent``: one
row per billable source, sent once as a meter event), and what the daily comparison found
(``UsageReconciliation``).

[!!] No card data: no model here (or anywhere) has a field for a card number, expiry or CVC; cards are only
ever typed on Stripe's hosted pages (billing/tests/test_no_card_data.py scans the schema and templates).
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone

from accounts.tenancy import OrganizationOwned


class SubscriptionStatus(models.TextChoices):
    NONE = "none", "No subscription"
    TRIALING = "trialing", "Trial"
    ACTIVE = "active", "Active"
    PAST_DUE = "past_due", "Past due"
    UNPAID = "unpaid", "Unpaid"
    CANCELED = "canceled", "Canceled"
    INCOMPLETE = "incomplete", "Incomplete"
    INCOMPLETE_EXPIRED = "incomplete_expired", "Incomplete (expired)"
    PAUSED = "paused", "Paused"


class Interval(models.TextChoices):
    MONTH = "month", "Monthly"
    YEAR = "year", "Yearly"


class BillingAccount(OrganizationOwned):
    """An organization's side of Stripe: its customer, its subscription as last fetched, its spend cap."""

    organization = models.OneToOneField(
        "accounts.Organization", on_delete=models.PROTECT, related_name="billing_account"
    )
    stripe_customer_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    stripe_subscription_id = models.CharField(max_length=255, blank=True, db_index=True)
    subscription_status = models.CharField(
        max_length=30, choices=SubscriptionStatus.choices, default=SubscriptionStatus.NONE
    )
    # The plan and interval the subscription's price stands for ("" without a subscription).
    subscribed_plan_code = models.CharField(max_length=40, blank=True)
    interval = models.CharField(max_length=10, choices=Interval.choices, blank=True)
    current_period_start = models.DateTimeField(null=True, blank=True)
    current_period_end = models.DateTimeField(null=True, blank=True)
    cancel_at_period_end = models.BooleanField(default=False)
    # When the subscription first became past due (the grace period counts from here); None when paid.
    past_due_since = models.DateTimeField(null=True, blank=True)
    # A plan support staff granted free of charge ("" for none): it applies while no subscription is active.
    complimentary_plan_code = models.CharField(max_length=40, blank=True)
    # The owner's monthly cap on usage charges (beyond the plan's included minutes and texts), in cents.
    spend_cap_cents = models.PositiveIntegerField(null=True, blank=True)
    # The month (its first day) for which owners were told of the cap's warning share: once a month. The month
    # the cap was reached is on the organization (``spend_cap_reached_month``), where the gates read it.
    cap_warned_month = models.DateField(null=True, blank=True)
    synced_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self) -> str:
        return f"Billing of {self.organization.name}"


class UsageKind(models.TextChoices):
    CALL_MINUTES = "call_minutes", "Call minutes"
    SMS_SEGMENTS = "sms_segments", "SMS segments"


class UsageEvent(OrganizationOwned):
    """One billable quantity, from one source (a call, a text), reported to Stripe once as a meter event.

    ``identifier`` is derived from the kind and the source, so the same source can never be recorded twice
    here (unique) nor counted twice by Stripe (its meter events are unique by identifier): a batch retried
    after a worker died re-sends what it had sent, and Stripe keeps one.
    """

    kind = models.CharField(max_length=20, choices=UsageKind.choices)
    quantity = models.PositiveIntegerField()
    source = models.CharField(max_length=100, help_text='What it comes from, e.g. "call:<uuid>".')
    identifier = models.CharField(max_length=100, unique=True)
    occurred_at = models.DateTimeField()
    sent_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    last_error = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["occurred_at"]
        indexes = [
            models.Index(fields=["organization", "kind", "occurred_at"], name="billing_usage_org_kind_time"),
            # The sender's queue: what is still to send, oldest first.
            models.Index(
                fields=["occurred_at"], name="billing_usage_unsent", condition=models.Q(sent_at__isnull=True)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} {self.get_kind_display().lower()} ({self.source})"


class UsageReconciliation(OrganizationOwned):
    """One day's comparison of our usage totals with Stripe's meter summaries, per kind."""

    kind = models.CharField(max_length=20, choices=UsageKind.choices)
    day = models.DateField()
    ours = models.BigIntegerField()
    stripes = models.DecimalField(max_digits=20, decimal_places=4)
    difference = models.DecimalField(max_digits=20, decimal_places=4)
    checked_at = models.DateTimeField(default=timezone.now)
    # Staff mark a difference they looked into.
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolution_note = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-day", "kind"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "kind", "day"], name="billing_reconciliation_once_a_day"),
        ]

    @property
    def matches(self) -> bool:
        return self.difference == 0

    def __str__(self) -> str:
        return f"{self.get_kind_display()} on {self.day}: ours {self.ours}, Stripe {self.stripes}"


class BillingCredit(OrganizationOwned):
    """A credit support staff granted (it becomes a Stripe customer balance transaction)."""

    amount_cents = models.PositiveIntegerField()
    reason = models.CharField(max_length=300)
    granted_by = models.ForeignKey("accounts.User", on_delete=models.PROTECT, related_name="+", null=True)
    stripe_transaction_id = models.CharField(max_length=255, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"${self.amount_cents / 100:.2f} credit"
