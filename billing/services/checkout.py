"""Stripe's hosted pages: Checkout to subscribe, the Customer Portal for cards, invoices and cancelling.

[!!] Card details are only ever typed on these Stripe-hosted pages: nothing of ours has a card field.
"""

from __future__ import annotations

from accounts.entitlements import PLANS
from accounts.principals import as_principal
from billing.models import SubscriptionStatus
from billing.services.customers import billing_account_ensure, stripe_customer_ensure
from billing.services.stripe_api import METERED_SUFFIXES, base_lookup_key, client, metered_lookup_key, plain, require_price_ids
from billing.services.subscriptions import LIVE, subscription_sync
from compliance.services import audit_record
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import provider_operation


def checkout_start(*, organization, actor, plan_code: str, interval: str, success_url: str, cancel_url: str) -> str:
    """The URL of a Stripe Checkout session that subscribes ``organization`` to ``plan_code``/``interval``.

    Only for an organization without a live subscription (a live one changes plan in place, with a
    proration preview). ``success_url`` may carry ``{CHECKOUT_SESSION_ID}``: Stripe puts the session's id there.
    """
    principal = as_principal(actor, organization)
    principal.require("billing.manage")
    if plan_code not in PLANS:
        raise ApplicationError(f"Choose a plan: {', '.join(PLANS)}.", field="plan", code="unknown_plan")
    if interval not in {"month", "year"}:
        raise ApplicationError("Choose monthly or yearly billing.", field="interval", code="unknown_interval")
    account = billing_account_ensure(organization)
    if account.stripe_subscription_id and account.subscription_status in LIVE:
        raise ApplicationError(
            "This organization already has a subscription: change its plan from the Billing page instead.",
            code="has_subscription",
            status=409,
        )
    keys = [base_lookup_key(plan_code, interval), *(metered_lookup_key(plan_code, kind, interval) for kind in METERED_SUFFIXES)]
    prices = require_price_ids(keys)
    customer = stripe_customer_ensure(organization)
    line_items = [{"price": prices[keys[0]], "quantity": 1}] + [{"price": prices[key]} for key in keys[1:]]
    with provider_operation("stripe", "open Checkout"):
        session = plain(
            client().v1.checkout.sessions.create(
                {
                    "mode": "subscription",
                    "customer": customer,
                    "client_reference_id": str(organization.id),
                    "line_items": line_items,
                    "success_url": success_url,
                    "cancel_url": cancel_url,
                    "metadata": {"organization_id": str(organization.id), "plan": plan_code, "interval": interval},
                    "subscription_data": {"metadata": {"organization_id": str(organization.id)}},
                }
            )
        )
    audit_record(
        action="billing.checkout_started",
        organization=organization,
        actor=principal,
        resource=account,
        metadata={"plan": plan_code, "interval": interval, "session": session["id"]},
    )
    return session["url"]


def checkout_return(*, organization, actor, session_id: str):
    """Back from Checkout: fetch the session and, once it completed, the subscription it made (the webhook may
    still be on its way). Returns the account; a session of another customer changes nothing."""
    as_principal(actor, organization).require("billing.manage")
    account = billing_account_ensure(organization)
    if not session_id or not account.stripe_customer_id:
        return account
    with provider_operation("stripe", "fetch the Checkout session"):
        session = plain(client().v1.checkout.sessions.retrieve(session_id))
    if session.get("customer") != account.stripe_customer_id or session.get("status") != "complete":
        return account
    subscription = session.get("subscription")
    if isinstance(subscription, dict):
        subscription = subscription.get("id")
    return subscription_sync(organization, subscription_id=subscription, reason="checkout completed")


def portal_url(*, organization, actor, return_url: str) -> str:
    """A Stripe Customer Portal session for the organization's cards, invoices and cancellation."""
    principal = as_principal(actor, organization)
    principal.require("billing.manage")
    account = billing_account_ensure(organization)
    if not account.stripe_customer_id or account.subscription_status == SubscriptionStatus.NONE:
        raise ApplicationError(
            "There is nothing to manage at Stripe yet: subscribe to a plan first.", code="no_customer", status=409
        )
    with provider_operation("stripe", "open the Customer Portal"):
        session = plain(
            client().v1.billing_portal.sessions.create({"customer": account.stripe_customer_id, "return_url": return_url})
        )
    audit_record(action="billing.portal_opened", organization=organization, actor=principal, resource=account)
    return session["url"]
