"""Reads of billing: an organization's account, its month's usage, what that usage costs, the cap's state."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import Sum
from django.utils import timezone

from accounts.entitlements import Plan, plan_limit, plan_of
from billing.models import BillingAccount, UsageEvent, UsageKind

INCLUDED = {UsageKind.CALL_MINUTES: "included_minutes", UsageKind.SMS_SEGMENTS: "included_sms_segments"}


def month_start(now: dt.datetime) -> dt.datetime:
    """The first instant of ``now``'s calendar month in UTC (usage and caps count per calendar month)."""
    now = now.astimezone(dt.UTC)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month_start(now: dt.datetime) -> dt.datetime:
    start = month_start(now)
    return (start + dt.timedelta(days=32)).replace(day=1)


def billing_account_of(organization) -> BillingAccount | None:
    return BillingAccount.objects.for_org(organization).filter(organization=organization).first()


def organization_for_customer(customer_id: str):
    """The organization whose Stripe customer this is, or None (webhooks: the customer says whose event it is).

    One statement that builds the organization straight from its row: every Stripe event asks it, and the
    ORM's query building for the join costs more than PostgreSQL's answer.
    """
    from accounts.models import Organization

    if not customer_id:
        return None
    found = list(
        Organization.objects.raw(
            f"SELECT o.* FROM {Organization._meta.db_table} o "  # noqa: S608 (the models' own tables)
            f"JOIN {BillingAccount._meta.db_table} b ON b.organization_id = o.id WHERE b.stripe_customer_id = %s",
            [customer_id],
        )
    )
    return found[0] if found else None


def month_usage(organization, *, now: dt.datetime | None = None) -> dict[str, int]:
    """Call minutes and SMS segments used this calendar month (UTC), by kind."""
    now = now or timezone.now()
    rows = (
        UsageEvent.objects.for_org(organization)
        .filter(occurred_at__gte=month_start(now), occurred_at__lt=next_month_start(now))
        .values("kind")
        .annotate(total=Sum("quantity"))
    )
    totals = {kind: 0 for kind in UsageKind.values}
    for row in rows:
        totals[row["kind"]] = int(row["total"] or 0)
    return totals


def _overage_cents(plan: Plan, organization, usage: dict[str, int]) -> Decimal:
    minutes = max(0, usage.get(UsageKind.CALL_MINUTES, 0) - plan_limit(organization, "included_minutes"))
    segments = max(0, usage.get(UsageKind.SMS_SEGMENTS, 0) - plan_limit(organization, "included_sms_segments"))
    centicents = minutes * plan.minute_overage_centicents + segments * plan.segment_overage_centicents
    return (Decimal(centicents) / 100).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class UsageLine:
    kind: str
    label: str
    used: int
    included: int
    projected: int

    @property
    def percent(self) -> int:
        return min(100, round(100 * self.used / self.included)) if self.included else 0

    @property
    def projected_over(self) -> bool:
        return self.projected > self.included


@dataclass(frozen=True)
class UsageSummary:
    lines: list[UsageLine]
    charges_cents: Decimal  # usage beyond what the plan includes, this month so far
    projected_charges_cents: Decimal
    month_start: dt.datetime
    month_end: dt.datetime
    elapsed_fraction: float


def usage_summary(organization, *, now: dt.datetime | None = None) -> UsageSummary:
    """The month's usage against the plan, with a straight-line projection to the month's end."""
    now = now or timezone.now()
    start, end = month_start(now), next_month_start(now)
    elapsed = max((now - start).total_seconds(), 3600.0) / (end - start).total_seconds()
    elapsed = min(elapsed, 1.0)
    usage = month_usage(organization, now=now)
    plan = plan_of(organization)
    lines = []
    projected_usage = {}
    for kind, limit_name in INCLUDED.items():
        used = usage.get(kind, 0)
        projected = round(used / elapsed)
        projected_usage[kind] = projected
        lines.append(UsageLine(kind, UsageKind(kind).label, used, plan_limit(organization, limit_name), projected))
    return UsageSummary(
        lines=lines,
        charges_cents=_overage_cents(plan, organization, usage),
        projected_charges_cents=_overage_cents(plan, organization, projected_usage),
        month_start=start,
        month_end=end,
        elapsed_fraction=elapsed,
    )


def spend_cap_reached(organization, *, now: dt.datetime | None = None) -> bool:
    """Has this month's usage reached the owner's spend cap? Read from the organization row the caller holds
    (``Organization.spend_cap_reached_month``, which usage sets and clears): every text and every call asks
    this, so it costs no query."""
    reached = organization.spend_cap_reached_month
    return reached is not None and reached == month_start(now or timezone.now()).date()
