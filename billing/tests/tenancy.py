"""billing's cases for the cross-tenant walk (accounts/tests/urlwalk.py): one section per area."""

from __future__ import annotations

# kwarg -> how to make an object of that kind inside an organization
OBJECT_KWARGS: dict = {}

# url name -> why it needs no organization in its route
PUBLIC_ROUTES: dict = {}

# url name -> how to reach a signed inbound route (the walk posts unsigned and forged requests to each)
SIGNED_INBOUND: dict = {}

# --- the Billing pages (/o/<slug>/billing/...): the organization is their only object, from the URL ------

# --- Stripe's webhooks: events about our customers' subscriptions and invoices ---------------------------

SIGNED_INBOUND["stripe-hooks:stripe"] = {"kwargs": {}, "provider": "stripe"}
