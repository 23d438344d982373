"""Billing's Celery tasks: thin wrappers around the services.

- ``stripe_event_apply_task``: a Stripe webhook event's follow-up (fetch from Stripe, apply); retried with
  backoff on a retryable provider error.
- ``usage_send_task`` (every minute): unsent usage to Stripe meter events, batch after batch.
- ``usage_reconcile_task`` (daily): yesterday's totals compared with Stripe's meter summaries.
- ``past_due_restrict_task`` (hourly): past-due organizations beyond the grace period are restricted.
- ``spend_cap_check_task`` (seconds after usage is recorded, once for a burst) and ``spend_caps_sweep_task`` (hourly, in case a check
  was lost): the cap's notices and flag.
- ``subscriptions_sync_task`` (daily): every subscription fetched again, in case an event never came.
"""

from __future__ import annotations

import datetime as dt
import logging
import random

from celery import shared_task
from django.utils import timezone

from jagcall.kernel.providers import ProviderError

logger = logging.getLogger("jagcall.billing")

EVENT_MAX_RETRIES = 5


def _organization(organization_id: str):
    from accounts.models import Organization

    return Organization.objects.filter(pk=organization_id).first()


# ignore_result: nothing reads it, and a task whose result is kept costs the webhook a subscription to it.
@shared_task(bind=True, max_retries=EVENT_MAX_RETRIES, acks_late=True, ignore_result=True)
def stripe_event_apply_task(self, organization_id: str, event_type: str, obj: dict) -> str:
    from billing.services.events import stripe_event_apply

    organization = _organization(organization_id)
    if organization is None:
        return "gone"
    try:
        stripe_event_apply(organization=organization, event_type=event_type, obj=obj)
    except ProviderError as error:
        if error.retryable and self.request.retries < EVENT_MAX_RETRIES:
            raise self.retry(countdown=2 ** self.request.retries * 10 * (1 + random.random() * 0.25)) from error  # noqa: S311
        logger.warning("billing: %s for %s given up: %s", event_type, organization_id, error.message)
        return "failed"
    return "applied"


@shared_task(acks_late=True)
def usage_send_task() -> int:
    from billing.services.metering import usage_send_all

    return usage_send_all()


@shared_task
def usage_reconcile_task(day: str | None = None) -> int:
    from billing.services.metering import usage_reconcile

    when = dt.date.fromisoformat(day) if day else (timezone.now() - dt.timedelta(days=1)).date()
    rows = usage_reconcile(day=when)
    return sum(1 for row in rows if row.difference)


@shared_task
def past_due_restrict_task() -> int:
    from billing.services.subscriptions import past_due_restrict

    return past_due_restrict()


@shared_task
def spend_cap_check_task(organization_id: str) -> str:
    from billing.services.usage import spend_cap_check

    organization = _organization(organization_id)
    return "gone" if organization is None else spend_cap_check(organization)


@shared_task
def spend_caps_sweep_task() -> int:
    from billing.models import BillingAccount
    from billing.services.usage import spend_cap_check

    accounts = (
        BillingAccount.objects.unscoped("the hourly sweep checks every capped organization")
        .filter(spend_cap_cents__isnull=False)
        .select_related("organization")
    )
    for account in accounts:
        spend_cap_check(account.organization)
    return len(accounts)


@shared_task
def subscriptions_sync_task() -> int:
    from billing.models import BillingAccount, SubscriptionStatus
    from billing.services.subscriptions import subscription_sync

    accounts = (
        BillingAccount.objects.unscoped("the daily safety net refreshes every subscription")
        .filter(stripe_customer_id__isnull=False)
        .exclude(subscription_status=SubscriptionStatus.NONE)
        .select_related("organization")
    )
    synced = 0
    for account in accounts:
        try:
            subscription_sync(account.organization, reason="daily refresh")
            synced += 1
        except ProviderError as error:
            logger.warning("billing: daily refresh of %s failed: %s", account.organization_id, error.message)
    return synced
