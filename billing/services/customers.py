"""An organization's BillingAccount, and its Stripe customer, created the first time billing needs one."""

from __future__ import annotations

from django.db import transaction

from accounts.permissions import Role
from billing.models import BillingAccount
from billing.services.stripe_api import client, plain
from jagcall.kernel.providers import provider_operation


def billing_account_ensure(organization) -> BillingAccount:
    """The organization's account row (created empty the first time), locked for this transaction."""
    account, _ = BillingAccount.objects.for_org(organization).get_or_create(
        organization=organization, defaults={"organization": organization}
    )
    return account


def _owner_email(organization) -> str:
    from accounts.models import Membership

    owner = (
        Membership.objects.for_org(organization).filter(role=Role.OWNER).select_related("user").order_by("created_at").first()
    )
    return owner.user.email if owner else ""


def stripe_customer_ensure(organization) -> str:
    """The organization's Stripe customer id, creating the customer on first need.

    [!!] The row is locked while the customer is created, so two requests racing to create it (two tabs
    opening Checkout) get one customer; Stripe is asked with an idempotency key derived from the row.
    """
    with transaction.atomic():
        account = billing_account_ensure(organization)
        account = BillingAccount.objects.for_org(organization).select_for_update().get(pk=account.pk)
        if account.stripe_customer_id:
            return account.stripe_customer_id
        with provider_operation("stripe", "create the customer"):
            customer = client().v1.customers.create(
                {
                    "name": organization.name,
                    "email": _owner_email(organization),
                    "metadata": {"organization_id": str(organization.id), "organization_slug": organization.slug},
                },
                # The same key while this row is unchanged (a retry after our commit failed); a new one once
                # the row moved on (the customer was deleted at Stripe and is being replaced).
                {"idempotency_key": f"jagcall-customer-{organization.id}-{account.updated_at.timestamp():.6f}"},
            )
        account.stripe_customer_id = plain(customer)["id"]
        account.save(update_fields=["stripe_customer_id", "updated_at"])
        return account.stripe_customer_id
