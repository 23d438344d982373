"""A subscription's status at Stripe becomes the organization's standing (subscription_sync)."""

from __future__ import annotations

import pytest

from accounts.entitlements import Standing
from billing.services.subscriptions import subscription_sync
from billing.tests.test_portal import account_of, client_for, subscribe

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("status,standing", [
    ("active", Standing.GOOD),
    ("trialing", Standing.GOOD),
    ("past_due", Standing.PAST_DUE),
    ("unpaid", Standing.RESTRICTED),
])
def test_subscription_status_sets_standing(organization, owner, stripe_standin, status, standing):
    subscribe(client_for(owner), organization, stripe_standin)
    assert organization.plan_code == "pro"
    stripe_standin.set_subscription_status(account_of(organization).stripe_subscription_id, status, deliver=False)
    subscription_sync(organization, reason="test")
    organization.refresh_from_db()
    assert organization.billing_standing == standing


def test_payment_failed_emails_the_owners(organization, owner, stripe_standin, mailoutbox):
    from billing.services.events import stripe_event_apply

    subscribe(client_for(owner), organization, stripe_standin)
    account = account_of(organization)
    mailoutbox.clear()
    stripe_event_apply(organization=organization, event_type="invoice.payment_failed",
                       obj={"object": "invoice", "customer": account.stripe_customer_id,
                            "subscription": account.stripe_subscription_id, "amount_due": 19900})
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [owner.email] and "$199.00" in mailoutbox[0].body


def test_past_due_becomes_restricted_only_after_the_grace_period(organization, owner, stripe_standin, settings):
    import datetime as dt

    from django.utils import timezone

    from billing.services.subscriptions import past_due_restrict

    settings.BILLING_GRACE_DAYS = 7
    subscribe(client_for(owner), organization, stripe_standin)
    stripe_standin.fail_payment(account_of(organization).stripe_subscription_id, deliver=False)
    subscription_sync(organization, reason="test")
    organization.refresh_from_db()
    assert organization.billing_standing == Standing.PAST_DUE
    since = account_of(organization).past_due_since
    assert since is not None
    assert past_due_restrict(now=since + dt.timedelta(days=6, hours=23)) == 0
    organization.refresh_from_db()
    assert organization.billing_standing == Standing.PAST_DUE
    assert past_due_restrict(now=since + dt.timedelta(days=7, minutes=1)) == 1
    organization.refresh_from_db()
    assert organization.billing_standing == Standing.RESTRICTED and organization.plan_code == "pro"
    assert past_due_restrict(now=since + dt.timedelta(days=8)) == 0  # once
    # Paid at last: in good standing again, without waiting for anything.
    stripe_standin.pay_invoice(account_of(organization).stripe_subscription_id, deliver=False)
    subscription_sync(organization, reason="test", now=timezone.now())
    organization.refresh_from_db()
    assert organization.billing_standing == Standing.GOOD
    assert account_of(organization).past_due_since is None


def test_a_canceled_subscription_restricts_and_a_complimentary_plan_outlives_it(organization, owner, stripe_standin):
    subscribe(client_for(owner), organization, stripe_standin)
    stripe_standin.set_subscription_status(account_of(organization).stripe_subscription_id, "canceled", deliver=False)
    subscription_sync(organization, reason="test")
    organization.refresh_from_db()
    assert account_of(organization).subscription_status == "canceled"
    assert organization.billing_standing == Standing.RESTRICTED
    account = account_of(organization)
    account.complimentary_plan_code = "enterprise"
    account.save()
    subscription_sync(organization, reason="test")
    organization.refresh_from_db()
    assert organization.plan_code == "enterprise" and organization.billing_standing == Standing.GOOD
