"""Subscribing as an owner does it, in real Chromium: the Billing page, Subscribe on Pro, the hosted Checkout
page (the Stripe stand-in's, on 127.0.0.1), Subscribe there, and back on the Billing page, which says Pro.

Served by the real ASGI application; the stand-in posts its signed webhooks to the live server's
/hooks/stripe/ as Stripe would. A screenshot of the overview is left at /tmp/billing-overview.png. Then a
failed renewal payment reaches the open page over the organization's websocket.
"""

from __future__ import annotations

import datetime as dt
import threading

import pytest
from django.db import connection
from django.utils import timezone

from accounts.tests.factories import DEFAULT_PASSWORD
from billing.models import BillingAccount, UsageEvent
from billing.selectors import month_start
from billing.services.subscriptions import subscription_sync
from billing.tests.test_portal import stripe_prices
from tests.browser.conftest import browser, shot  # noqa: F401 (fixtures)

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OVERVIEW_SHOT = "/tmp/billing-overview.png"


def sign_in(page, base, email, password):
    page.goto(f"{base}/auth/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_the_owner_subscribes_to_pro_through_checkout(asgi_live_server, browser, shot, stripe_standin, organization, owner):  # noqa: F811
    base = asgi_live_server
    stripe_prices()
    stripe_standin.webhook_url = f"{base}/hooks/stripe/"
    start = month_start(timezone.now())
    for kind, quantity in (("call_minutes", 184), ("sms_segments", 412)):
        UsageEvent.objects.create(organization=organization, kind=kind, quantity=quantity, source=f"walk:{kind}",
                                  identifier=f"walk:{kind}", occurred_at=start + dt.timedelta(minutes=5))  # fmt: skip

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, base, owner.email, DEFAULT_PASSWORD)
        page.wait_for_url(f"{base}/o/{organization.slug}/")
        page.locator("nav.org-nav").get_by_role("link", name="Billing").click()
        page.wait_for_url(f"{base}/o/{organization.slug}/billing/")
        assert page.locator("[data-empty-subscription]").is_visible()
        assert page.locator("[data-usage='call_minutes'] [data-used]").inner_text() == "184"
        shot(page, "billing-before")

        page.get_by_role("button", name="Subscribe to Pro").click()
        page.wait_for_url(f"{stripe_standin.base_url}/stand-in/checkout/**")
        assert "JagCall Pro" in page.content()
        page.get_by_role("button", name="Subscribe").click()

        page.wait_for_url(f"{base}/o/{organization.slug}/billing/")
        page.get_by_text("You are now on Pro.").wait_for()
        assert page.locator(".billing-plan .plan-name").inner_text() == "Pro"
        assert page.locator("[data-subscription-status]").inner_text() == "Active"
        assert page.locator("th[data-plan='pro'] [data-current-plan-badge]").is_visible()
        assert page.get_by_role("button", name="Manage billing").is_visible()
        assert page.get_by_role("link", name="Change to this plan: Enterprise").is_visible()
        page.screenshot(path=OVERVIEW_SHOT, full_page=True)
        shot(page, "billing-overview")

        # A renewal payment fails at Stripe; once it is applied (what the webhook's task does), the open page
        # shows itself again with the failed payment, without anyone reloading it.
        page.locator("[data-billing-page][data-live-state='live']").wait_for(state="attached", timeout=15000)
        account = BillingAccount.objects.for_org(organization).get(organization=organization)
        stripe_standin.fail_payment(account.stripe_subscription_id, deliver=False)
        # In a thread of its own: Playwright's event loop runs in this one, and the live event is sent through
        # async_to_sync, which refuses a thread with a running loop.
        def apply():
            try:
                subscription_sync(organization, reason="invoice.payment_failed")
            finally:
                connection.close()

        worker = threading.Thread(target=apply)
        worker.start()
        worker.join(timeout=30)
        page.locator("[data-billing-banner='past_due']").wait_for(timeout=15000)
        assert page.locator("[data-standing='past_due']").is_visible()
        assert "A payment failed. Update your card in Billing by" in page.locator("[data-billing-banner]").inner_text()
    finally:
        context.close()

    organization.refresh_from_db()
    assert (organization.plan_code, organization.billing_standing) == ("pro", "past_due")
    # Stripe's own notices reached the webhook, signed, and were accepted.
    assert stripe_standin.flush_deliveries()
    assert stripe_standin.deliveries and all(status == 200 for _event, status in stripe_standin.deliveries), (
        stripe_standin.deliveries
    )

