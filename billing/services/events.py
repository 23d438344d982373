"""What a Stripe event sets going. The webhook only records it and queues ``stripe_event_apply``; this fetches
what the event is about from Stripe and applies that (never the event's snapshot)."""

from __future__ import annotations

import logging

from django.core.mail import send_mail
from django.db import transaction

from accounts.permissions import Role
from billing.models import BillingAccount, SubscriptionStatus
from billing.services.stripe_api import client, plain
from billing.services.subscriptions import subscription_sync
from compliance.services import audit_record
from jagcall.kernel.providers import provider_operation

logger = logging.getLogger("jagcall.billing")

# The events the Stripe endpoint is registered for (README.md, "Billing (Stripe)"); any other is acknowledged and ignored.
HANDLED_EVENTS = frozenset({
    "checkout.session.completed",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.deleted",
})


def _subscription_of(event_type: str, obj: dict) -> str | None:
    if event_type.startswith("customer.subscription."):
        return obj.get("id")
    subscription = obj.get("subscription")
    if subscription is None and event_type.startswith("invoice."):
        parent = (obj.get("parent") or {}).get("subscription_details") or {}
        subscription = parent.get("subscription")
    if isinstance(subscription, dict):
        subscription = subscription.get("id")
    return subscription


def customer_of(obj: dict) -> str | None:
    """The Stripe customer an event's object belongs to."""
    if obj.get("object") == "customer":
        return obj.get("id")
    customer = obj.get("customer")
    return customer.get("id") if isinstance(customer, dict) else customer


def stripe_event_apply(*, organization, event_type: str, obj: dict) -> None:
    """Bring the organization up to date with Stripe after ``event_type`` (whose object is ``obj``)."""
    if event_type == "customer.deleted":
        _customer_deleted(organization, customer_of(obj))
        return
    subscription_sync(organization, subscription_id=_subscription_of(event_type, obj), reason=event_type)
    if event_type == "invoice.payment_failed":
        _tell_owners_payment_failed(organization, obj)


def _customer_deleted(organization, customer_id: str | None) -> None:
    with provider_operation("stripe", "fetch the customer"):
        customer = plain(client().v1.customers.retrieve(customer_id))
    if not customer.get("deleted"):
        return  # the event is stale: the customer exists
    with transaction.atomic():
        account = BillingAccount.objects.for_org(organization).select_for_update().get(organization=organization)
        if account.stripe_customer_id != customer_id:
            return
        account.stripe_customer_id = None
        had_subscription = bool(account.stripe_subscription_id)
        if had_subscription:
            account.subscription_status = SubscriptionStatus.CANCELED
        account.save()
        audit_record(
            action="billing.customer_deleted", organization=organization, actor=None, resource=account,
            metadata={"customer": customer_id},
        )
    if had_subscription:
        subscription_sync(organization, reason="customer deleted")


def _tell_owners_payment_failed(organization, invoice: dict) -> None:
    from accounts.models import Membership

    emails = list(
        Membership.objects.for_org(organization).filter(role=Role.OWNER).values_list("user__email", flat=True)
    )
    if not emails:
        return
    amount = int(invoice.get("amount_due") or 0) / 100
    send_mail(
        f"{organization.name}: a payment to JagCall failed",
        f"We could not collect ${amount:,.2f} for {organization.name}'s JagCall subscription. Service continues "
        "for a grace period; update the card on the Billing page (Manage billing) to keep it.",
        None,
        emails,
        fail_silently=True,
    )
