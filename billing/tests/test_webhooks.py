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
