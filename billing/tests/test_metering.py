"""Usage metering: the usage ledger records each source once (billing/services/usage.py)."""

from __future__ import annotations

import datetime as dt

import pytest
from django.utils import timezone

from billing.models import UsageEvent
from billing.services.usage import usage_record

pytestmark = pytest.mark.django_db


def test_recording_the_same_source_twice_keeps_one_usage_event(organization):
    when = timezone.now()
    first = usage_record(organization=organization, kind="call_minutes", quantity=3, source="call:abc", occurred_at=when)
    again = usage_record(organization=organization, kind="call_minutes", quantity=3, source="call:abc", occurred_at=when)
    assert first is not None and again is None
    events = list(UsageEvent.objects.for_org(organization).filter(source="call:abc"))
    assert len(events) == 1
    assert events[0].identifier == "jc:call_minutes:call:abc"


def test_a_batch_sends_every_unsent_event_and_stripes_totals_equal_ours(organization, owner, stripe_standin):
    from django.conf import settings as dj_settings

    from billing.models import BillingAccount
    from billing.services.metering import usage_send_all
    from billing.tests.test_portal import client_for, subscribe

    subscribe(client_for(owner), organization, stripe_standin)
    account = BillingAccount.objects.for_org(organization).get()
    when = timezone.now()
    for i in range(7):
        usage_record(organization=organization, kind="call_minutes", quantity=i + 1, source=f"call:{i}", occurred_at=when)
    assert usage_send_all() == 7
    name = dj_settings.BILLING_METER_EVENT_NAMES["call_minutes"]
    assert stripe_standin.meter_total(name, account.stripe_customer_id) == 28
    assert not UsageEvent.objects.for_org(organization).filter(sent_at__isnull=True).exists()


def test_a_batch_retried_after_a_crash_counts_each_event_once_at_stripe(organization, owner, stripe_standin):
    from django.conf import settings as dj_settings

    from billing.models import BillingAccount
    from billing.services.metering import _send_one, usage_send_all
    from billing.services.stripe_api import client
    from billing.tests.test_portal import client_for, subscribe

    subscribe(client_for(owner), organization, stripe_standin)
    account = BillingAccount.objects.for_org(organization).get()
    when = timezone.now()
    for i in range(6):
        usage_record(organization=organization, kind="call_minutes", quantity=2, source=f"call:{i}", occurred_at=when)
    name = dj_settings.BILLING_METER_EVENT_NAMES["call_minutes"]
    # The dead worker: Stripe accepted half the batch, the marking never committed.
    stripe = client()
    for event in UsageEvent.objects.for_org(organization).order_by("occurred_at", "source")[:3]:
        assert _send_one(stripe, name, event, account.stripe_customer_id) is None
    assert UsageEvent.objects.for_org(organization).filter(sent_at__isnull=True).count() == 6
    assert usage_send_all() == 6
    assert stripe_standin.duplicate_meter_events == 3
    assert stripe_standin.meter_total(name, account.stripe_customer_id) == 12
    assert not UsageEvent.objects.for_org(organization).filter(sent_at__isnull=True).exists()


def test_reconciliation_flags_a_difference_with_both_figures(organization, owner, stripe_standin):
    from django.conf import settings as dj_settings

    from billing.models import BillingAccount
    from billing.services.metering import usage_reconcile, usage_send_all
    from billing.services.stripe_api import client
    from billing.tests.test_portal import client_for, subscribe

    subscribe(client_for(owner), organization, stripe_standin)
    account = BillingAccount.objects.for_org(organization).get()
    when = timezone.now()
    for i in range(4):
        usage_record(organization=organization, kind="call_minutes", quantity=5, source=f"call:{i}", occurred_at=when)
    assert usage_send_all() == 4
    day = when.astimezone(dt.UTC).date()
    rows = {row.kind: row for row in usage_reconcile(day=day)}
    assert rows["call_minutes"].ours == 20 and rows["call_minutes"].difference == 0
    client().v1.billing.meter_events.create(
        {
            "event_name": dj_settings.BILLING_METER_EVENT_NAMES["call_minutes"],
            "identifier": "not-ours-1",
            "timestamp": int(when.timestamp()),
            "payload": {"stripe_customer_id": account.stripe_customer_id, "value": "3"},
        }
    )
    rows = {row.kind: row for row in usage_reconcile(day=day)}
    row = rows["call_minutes"]
    assert row.ours == 20 and row.stripes == 23 and row.difference == 3


def test_the_spend_cap_warns_once_at_80_percent_and_once_when_reached(organization, owner, mailoutbox, settings,
                                                                       django_capture_on_commit_callbacks):  # fmt: skip
    from billing.models import BillingAccount
    from billing.services.subscriptions import billing_account_ensure
    from billing.services.usage import spend_cap_check

    settings.BILLING_CAP_WARNING_PERCENT = 80
    now = dt.datetime(2026, 11, 16, 12, 0, tzinfo=dt.UTC)  # mid-month: the month's usage is what was recorded here
    billing_account_ensure(organization)
    BillingAccount.objects.for_org(organization).update(spend_cap_cents=5_000)  # $50 of usage charges
    # Starter includes 500 minutes, then 9 cents a minute: 450 more minutes are $40.50, 81% of the cap.
    usage_record(organization=organization, kind="call_minutes", quantity=950, source="call:a", occurred_at=now)

    def check():
        with django_capture_on_commit_callbacks(execute=True):
            return spend_cap_check(organization, now=now)

    assert check() == "warned"
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [owner.email] and "80% of the monthly spend cap used" in mailoutbox[0].subject
    assert "$40.50 of your $50.00 cap" in mailoutbox[0].body
    assert check() == "warned" and len(mailoutbox) == 1  # once a month
    usage_record(organization=organization, kind="call_minutes", quantity=106, source="call:b", occurred_at=now)
    assert check() == "reached"  # 556 minutes over: $50.04
    assert len(mailoutbox) == 2 and "spend cap is reached" in mailoutbox[1].subject
    assert check() == "reached" and len(mailoutbox) == 2
    organization.refresh_from_db()
    assert organization.spend_cap_reached_month == dt.date(2026, 11, 1)  # what the gates read
    # The next month starts under the cap, and may warn again.
    assert spend_cap_check(organization, now=now + dt.timedelta(days=30)) == "under"
    organization.refresh_from_db()
    assert organization.spend_cap_reached_month is None


def test_a_spend_cap_check_that_could_not_be_queued_is_asked_for_again_by_the_next_usage(
    organization, settings, monkeypatch
):
    """A burst costs one queued check (the worker's side is in test_metering_worker.py); but a check the broker
    refused is not counted as queued, so the next usage of the organization asks again."""
    from celery import current_app

    from billing.services.usage import CAP_CHECK_TASK, _cap_checks

    settings.BILLING_CAP_CHECK_SECONDS = 30
    _cap_checks.forget()
    asked, broker_up = [], False

    def send_task(name, args=None, countdown=None, **options):
        asked.append((name, args, countdown))
        if not broker_up:
            raise ConnectionRefusedError("the broker is away")

    monkeypatch.setattr(current_app, "send_task", send_task)
    _cap_checks.soon(organization.id)
    _cap_checks.soon(organization.id)
    assert len(asked) == 2  # refused twice: nothing pending, each usage asked
    broker_up = True
    for _ in range(3):
        _cap_checks.soon(organization.id)
    assert asked[2:] == [(CAP_CHECK_TASK, [str(organization.id)], 31.0)]  # one check, run after the window
    settings.BILLING_CAP_CHECK_SECONDS = 0  # no window: a check per usage, at once
    _cap_checks.soon(organization.id)
    assert asked[3:] == [(CAP_CHECK_TASK, [str(organization.id)], None)]
