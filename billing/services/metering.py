"""Usage to Stripe: meter events in batches, and the daily reconciliation of our totals with Stripe's.

``usage_send_batch`` takes up to BILLING_METER_BATCH_SIZE unsent usage events of subscribed organizations
(locked with SKIP LOCKED, so two workers take different rows), sends each as a Stripe meter event with
BILLING_METER_CONCURRENCY requests in flight, and marks what Stripe accepted, all in one transaction.

[!!] A worker killed mid-batch rolls the whole batch back: the events it had sent are sent again by the
next batch. Each meter event carries the identifier derived from its source (``usage_identifier``), and
Stripe keeps one event per identifier, so nothing is billed twice; Stripe's refusal of a repeated
identifier counts as sent.
"""

from __future__ import annotations

import datetime as dt
import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from billing.models import BillingAccount, SubscriptionStatus, UsageEvent, UsageKind, UsageReconciliation
from billing.services.stripe_api import client, plain
from jagcall.kernel.providers import ProviderError, provider_operation

logger = logging.getLogger("jagcall.billing")

# Subscriptions whose usage is billed (a canceled one's last usage is billed too: Stripe invoices it).
METERED_STATUSES = ("active", "trialing", "past_due", "unpaid", "canceled")
# Stripe accepts meter events up to 35 days old.
MAX_EVENT_AGE = dt.timedelta(days=35)


@dataclass(frozen=True)
class BatchResult:
    taken: int
    sent: int
    failed: int


def _duplicate(error: ProviderError) -> bool:
    """Stripe's answer to an identifier it has seen: the event is already counted."""
    return error.status == 400 and (
        error.code == "resource_already_exists" or "already exists" in (error.message or "").lower()
    )


def _send_one(stripe, event_name: str, event: UsageEvent, customer: str) -> str | None:
    """None when Stripe has the event (now or from before); else the error to keep."""
    try:
        with provider_operation("stripe", "send a meter event"):
            stripe.v1.billing.meter_events.create(
                {
                    "event_name": event_name,
                    "identifier": event.identifier,
                    "timestamp": int(event.occurred_at.timestamp()),
                    "payload": {"stripe_customer_id": customer, "value": str(event.quantity)},
                }
            )
    except ProviderError as error:
        if _duplicate(error):
            return None
        return error.message[:300]
    return None


def usage_send_batch(*, limit: int | None = None, concurrency: int | None = None, now=None) -> BatchResult:
    """Send one batch of unsent usage to Stripe; what was taken, sent and failed."""
    limit = int(limit or settings.BILLING_METER_BATCH_SIZE)
    concurrency = max(1, int(concurrency or settings.BILLING_METER_CONCURRENCY))
    now = now or timezone.now()
    names = settings.BILLING_METER_EVENT_NAMES
    with transaction.atomic():
        customers = dict(
            BillingAccount.objects.unscoped("the meter sender serves every subscribed organization")
            .filter(stripe_customer_id__isnull=False, subscription_status__in=METERED_STATUSES)
            .values_list("organization_id", "stripe_customer_id")
        )
        if not customers:
            return BatchResult(0, 0, 0)
        events = list(
            UsageEvent.objects.unscoped("the meter sender serves every subscribed organization")
            .select_for_update(skip_locked=True)
            .filter(sent_at__isnull=True, organization_id__in=list(customers), occurred_at__gte=now - MAX_EVENT_AGE)
            .order_by("occurred_at")[:limit]
        )
        if not events:
            return BatchResult(0, 0, 0)
        stripe = client()
        with ThreadPoolExecutor(max_workers=min(concurrency, len(events))) as pool:
            errors = list(
                pool.map(lambda e: _send_one(stripe, names[e.kind], e, customers[e.organization_id]), events)
            )
        sent = [event.pk for event, error in zip(events, errors, strict=True) if error is None]
        if sent:
            UsageEvent.objects.unscoped("marking the batch just sent").filter(pk__in=sent).update(
                sent_at=now, last_error=""
            )
        failed = [(event, error) for event, error in zip(events, errors, strict=True) if error is not None]
        for event, error in failed:
            UsageEvent.objects.unscoped("marking the batch just sent").filter(pk=event.pk).update(
                attempts=event.attempts + 1, last_error=error
            )
        if failed:
            logger.warning("billing: %s of %s meter events were refused; first: %s", len(failed), len(events), failed[0][1])
        return BatchResult(len(events), len(sent), len(failed))


def usage_send_all(*, now=None, max_batches: int = 1000) -> int:
    """Send batches until nothing is left to send (or a batch sends nothing); how many events were sent."""
    total = 0
    for _ in range(max_batches):
        result = usage_send_batch(now=now)
        total += result.sent
        if result.taken == 0 or result.sent == 0:
            break
    return total


# --- reconciliation ----------------------------------------------------------------------------------


def _meter_ids(stripe) -> dict[str, str]:
    """Stripe meter ids by our usage kind (by their event names)."""
    names = {name: kind for kind, name in settings.BILLING_METER_EVENT_NAMES.items()}
    with provider_operation("stripe", "list the meters"):
        meters = stripe.v1.billing.meters.list({"limit": 100})
    return {names[m["event_name"]]: m["id"] for m in (plain(m) for m in meters.data) if m.get("event_name") in names}


def usage_reconcile(*, day: dt.date, now=None) -> list[UsageReconciliation]:
    """Compare, for ``day`` (UTC), each subscribed organization's sent usage with Stripe's meter summaries.

    One row per organization and kind (the check can run again: the row is updated). A difference is
    logged as a warning and listed for staff in the back office ("Usage reconciliations", differing).
    """
    now = now or timezone.now()
    start = dt.datetime.combine(day, dt.time(0), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=1)
    stripe = client()
    meters = _meter_ids(stripe)
    accounts = (
        BillingAccount.objects.unscoped("the daily reconciliation covers every subscribed organization")
        .select_related("organization")
        .filter(stripe_customer_id__isnull=False)
        .exclude(subscription_status=SubscriptionStatus.NONE)
    )
    rows = []
    for account in accounts:
        ours_by_kind = dict(
            UsageEvent.objects.for_org(account.organization)
            .filter(sent_at__isnull=False, occurred_at__gte=start, occurred_at__lt=end)
            .values_list("kind")
            .annotate(total=Sum("quantity"))
        )
        for kind in UsageKind.values:
            meter = meters.get(kind)
            if meter is None:
                continue
            with provider_operation("stripe", "read the meter summary"):
                summaries = stripe.v1.billing.meters.event_summaries.list(
                    meter,
                    {
                        "customer": account.stripe_customer_id,
                        "start_time": int(start.timestamp()),
                        "end_time": int(end.timestamp()),
                        "limit": 100,
                    },
                )
            stripes = sum((Decimal(str(s["aggregated_value"])) for s in (plain(s) for s in summaries.data)), Decimal(0))
            ours = int(ours_by_kind.get(kind) or 0)
            row, _ = UsageReconciliation.objects.for_org(account.organization).update_or_create(
                organization=account.organization,
                kind=kind,
                day=day,
                defaults={"ours": ours, "stripes": stripes, "difference": stripes - ours, "checked_at": now},
            )
            if row.difference:
                logger.warning(
                    "billing: %s of %s on %s differ: ours %s, Stripe %s",
                    kind, account.organization_id, day, ours, stripes,
                    extra={"organization_id": str(account.organization_id), "kind": kind, "day": day.isoformat()},
                )
            rows.append(row)
    return rows
