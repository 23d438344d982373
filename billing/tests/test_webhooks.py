"""Stripe's webhook (/hooks/stripe/): signed events are applied from Stripe's present state; forged,
malformed and foreign events change nothing."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from unittest import mock

import pytest
from django.test import Client, TestCase
from django.urls import reverse

from accounts.entitlements import Standing
from billing.tasks import stripe_event_apply_task
from billing.tests.test_portal import client_for, hosted_id, stripe_prices, url

pytestmark = pytest.mark.django_db


def post(body: bytes, secret: str, *, timestamp: int | None = None):
    timestamp = int(time.time()) if timestamp is None else timestamp
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    run_now = mock.patch.object(stripe_event_apply_task, "delay",
                                side_effect=lambda *args: stripe_event_apply_task.apply(args=args))
    with run_now as delay, TestCase.captureOnCommitCallbacks(execute=True):
        response = Client().post(reverse("stripe-hooks:stripe"), body, content_type="application/json",
                                 headers={"Stripe-Signature": f"t={timestamp},v1={digest}"})
    return response, delay


def checkout_done(organization, owner, standin) -> dict:
    """Checkout completed at Stripe, but the return page not visited: only the webhook can tell us."""
    stripe_prices()
    response = client_for(owner).post(url("billing:checkout", organization), {"plan": "pro", "interval": "month"})
    assert response.status_code == 303
    standin.complete_checkout(hosted_id(response["Location"]))
    return next(e for e in standin.events if e["type"] == "customer.subscription.created")


def test_signed_event_is_applied_from_stripe(organization, owner, stripe_standin):
    event = checkout_done(organization, owner, stripe_standin)
    organization.refresh_from_db()
    assert organization.plan_code == "starter"
    response, delay = post(json.dumps(event).encode(), stripe_standin.webhook_secret)
    assert response.status_code == 200
    assert delay.call_count == 1
    organization.refresh_from_db()
    assert organization.plan_code == "pro" and organization.billing_standing == Standing.GOOD


def test_forged_signature_is_refused_and_nothing_applied(organization, owner, stripe_standin):
    event = checkout_done(organization, owner, stripe_standin)
    response, delay = post(json.dumps(event).encode(), "whsec_not_ours")
    assert 400 <= response.status_code < 500
    assert delay.call_count == 0
    organization.refresh_from_db()
    assert organization.plan_code == "starter"


def test_stale_signature_is_refused(organization, owner, stripe_standin):
    event = checkout_done(organization, owner, stripe_standin)
    response, delay = post(json.dumps(event).encode(), stripe_standin.webhook_secret, timestamp=int(time.time()) - 600)
    assert 400 <= response.status_code < 500
    assert delay.call_count == 0
    organization.refresh_from_db()
    assert organization.plan_code == "starter"


@pytest.mark.parametrize("body", [b"not json", b'{"id": "x", "data": {"object": {}}}', b'{"id": "evt_1", "data": {}}'])
def test_malformed_signed_body_is_400_never_500(stripe_standin, body):
    response, delay = post(body, stripe_standin.webhook_secret)
    assert response.status_code == 400
    assert response.content
    assert delay.call_count == 0


def test_unknown_customer_is_acknowledged_and_ignored(organization, stripe_standin):
    event = {"id": "evt_foreign1", "type": "customer.subscription.updated",
             "data": {"object": {"object": "subscription", "id": "sub_x", "customer": "cus_not_ours"}}}
    response, delay = post(json.dumps(event).encode(), stripe_standin.webhook_secret)
    assert response.status_code == 200
    assert delay.call_count == 0
    organization.refresh_from_db()
    assert organization.plan_code == "starter"


def test_duplicate_delivery_is_applied_once(organization, owner, stripe_standin):
    from billing.tests.test_portal import audit_actions

    body = json.dumps(checkout_done(organization, owner, stripe_standin)).encode()
    first, first_delay = post(body, stripe_standin.webhook_secret)
    again, again_delay = post(body, stripe_standin.webhook_secret)
    assert first.status_code == 200 and 200 <= again.status_code < 300
    assert first_delay.call_count == 1 and again_delay.call_count == 0
    assert audit_actions(organization).count("organization.plan_changed") == 1


def test_an_older_snapshot_delivered_late_leaves_the_present_state(organization, owner, stripe_standin):
    created = checkout_done(organization, owner, stripe_standin)
    subscription = created["data"]["object"]["id"]
    assert post(json.dumps(created).encode(), stripe_standin.webhook_secret)[0].status_code == 200
    organization.refresh_from_db()
    assert organization.plan_code == "pro"
    # An earlier event, redelivered after the active one: its snapshot says incomplete, on no plan.
    late = {"id": "evt_late_incomplete", "object": "event", "type": "customer.subscription.updated",
            "created": created["created"] - 60,
            "data": {"object": {**created["data"]["object"], "status": "incomplete", "items": {"data": []}}}}
    response, delay = post(json.dumps(late).encode(), stripe_standin.webhook_secret)
    assert response.status_code == 200 and delay.call_count == 1
    organization.refresh_from_db()
    assert organization.plan_code == "pro" and organization.billing_standing == Standing.GOOD
    assert account_of(organization).subscription_status == "active"
    assert account_of(organization).stripe_subscription_id == subscription


def test_customer_deleted_at_stripe_cancels_and_restricts(organization, owner, stripe_standin):
    from billing.services.stripe_api import client

    apply_checkout(organization, owner, stripe_standin)
    customer = account_of(organization).stripe_customer_id
    client().v1.customers.delete(customer)
    deleted = next(e for e in stripe_standin.events if e["type"] == "customer.deleted")
    response, delay = post(json.dumps(deleted).encode(), stripe_standin.webhook_secret)
    assert response.status_code == 200 and delay.call_count == 1
    account = account_of(organization)
    assert account.stripe_customer_id is None and account.subscription_status == "canceled"
    organization.refresh_from_db()
    assert organization.billing_standing == Standing.RESTRICTED
    from billing.tests.test_portal import audit_actions

    assert "billing.customer_deleted" in audit_actions(organization)


def test_a_stale_customer_deleted_event_changes_nothing(organization, owner, stripe_standin):
    apply_checkout(organization, owner, stripe_standin)
    customer = account_of(organization).stripe_customer_id
    forged_story = {"id": "evt_stale_deleted", "type": "customer.deleted",
                    "data": {"object": {"object": "customer", "id": customer, "deleted": True}}}
    response, delay = post(json.dumps(forged_story).encode(), stripe_standin.webhook_secret)
    assert response.status_code == 200 and delay.call_count == 1
    # Stripe still has the customer: the event's snapshot is not believed.
    assert account_of(organization).stripe_customer_id == customer
    organization.refresh_from_db()
    assert organization.plan_code == "pro" and organization.billing_standing == Standing.GOOD


def test_an_event_type_we_do_not_handle_is_acknowledged_and_queues_nothing(organization, owner, stripe_standin):
    apply_checkout(organization, owner, stripe_standin)
    customer = account_of(organization).stripe_customer_id
    event = {"id": "evt_charge1", "type": "charge.succeeded",
             "data": {"object": {"object": "charge", "id": "ch_1", "customer": customer, "amount": 9900}}}
    response, delay = post(json.dumps(event).encode(), stripe_standin.webhook_secret)
    assert response.status_code == 200 and b"Ignored" in response.content
    assert delay.call_count == 0


def test_a_delivery_without_the_signature_header_is_refused(organization, owner, stripe_standin):
    event = checkout_done(organization, owner, stripe_standin)
    with mock.patch.object(stripe_event_apply_task, "delay") as delay:
        response = Client().post(reverse("stripe-hooks:stripe"), json.dumps(event), content_type="application/json")
    assert 400 <= response.status_code < 500 and response.content
    assert delay.call_count == 0
    organization.refresh_from_db()
    assert organization.plan_code == "starter"


def test_payment_failed_through_the_webhook_marks_past_due_and_emails_the_owners(
    organization, owner, stripe_standin, mailoutbox
):
    apply_checkout(organization, owner, stripe_standin)
    mailoutbox.clear()
    stripe_standin.fail_payment(account_of(organization).stripe_subscription_id, deliver=False)
    failed = next(e for e in reversed(stripe_standin.events) if e["type"] == "invoice.payment_failed")
    response, delay = post(json.dumps(failed).encode(), stripe_standin.webhook_secret)
    assert response.status_code == 200 and delay.call_count == 1
    organization.refresh_from_db()
    assert organization.billing_standing == Standing.PAST_DUE and organization.plan_code == "pro"
    account = account_of(organization)
    assert account.subscription_status == "past_due" and account.past_due_since is not None
    assert [m.to for m in mailoutbox] == [[owner.email]]
    assert "payment to JagCall failed" in mailoutbox[0].subject


def test_a_flood_of_unsigned_deliveries_ends_in_429_and_writes_nothing(
    organization, owner, settings, stripe_standin, monkeypatch
):
    import django_ratelimit.core

    from compliance.models import AuditEvent
    from compliance.services import sources
    from jagcall.kernel.webhooks.models import ReceivedWebhook

    now = float(int(time.time()) // 300 * 300 + 5)
    clock = type("Clock", (), {"time": staticmethod(lambda: now)})
    monkeypatch.setattr(django_ratelimit.core, "time", clock)
    monkeypatch.setattr(sources, "time", clock)
    settings.SENSITIVE_RATE_LIMITS = {**settings.SENSITIVE_RATE_LIMITS, "hooks": "5/m"}
    body = json.dumps({"id": "evt_flood", "type": "customer.subscription.updated",
                       "data": {"object": {"object": "subscription", "id": "sub_x", "customer": "cus_x"}}})
    with mock.patch.object(stripe_event_apply_task, "delay") as delay:
        statuses = [
            Client(REMOTE_ADDR="198.51.100.70").post(
                reverse("stripe-hooks:stripe"), body, content_type="application/json",
                headers={"Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}"} if turn % 2 else {},
            ).status_code
            for turn in range(30)
        ]  # fmt: skip
    assert all(400 <= status < 500 for status in statuses[:5]) and set(statuses[5:]) == {429}
    assert delay.call_count == 0
    assert not ReceivedWebhook.objects.filter(provider="stripe").exists()
    # Bounded however long the flood: one refusal recorded per kind (no signature, a bad one) and a few of
    # the 429s per window.
    platform = AuditEvent.objects.platform()
    assert platform.filter(action="webhook.signature_refused").count() == 2
    assert platform.count() <= 2 + settings.AUDIT_FAILURES_RECORDED_PER_WINDOW
    # Stripe, from its own address (the test client's), still gets through with a signed event.
    event = checkout_done(organization, owner, stripe_standin)
    assert post(json.dumps(event).encode(), stripe_standin.webhook_secret)[0].status_code == 200
    organization.refresh_from_db()
    assert organization.plan_code == "pro"


def apply_checkout(organization, owner, standin) -> None:
    """Checkout completed and its subscription.created event applied: Pro, in good standing."""
    event = checkout_done(organization, owner, standin)
    assert post(json.dumps(event).encode(), standin.webhook_secret)[0].status_code == 200
    organization.refresh_from_db()
    assert organization.plan_code == "pro"


def account_of(organization):
    from billing.models import BillingAccount

    return BillingAccount.objects.for_org(organization).get()
