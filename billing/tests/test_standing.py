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
