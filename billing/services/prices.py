"""The plans' products and prices at Stripe, created from the plan table (accounts/entitlements.py).

``prices_sync`` makes Stripe hold, for each plan: a product; a licensed price per interval (lookup key
``jagcall_<plan>_monthly`` / ``_yearly``); and per interval two metered prices (``jagcall_<plan>_minutes``,
``jagcall_<plan>_segments``, with ``_yearly`` appended for the yearly plan, which bills usage once a year with
twelve months included) on the usage meters, graduated so the plan's included quantity is free and the rest
costs the plan's overage rate. It also makes the two meters. It only adds what is missing (by lookup key
and event name), so it can run at every deploy: `manage.py billing_prices_sync`.

A price's amount cannot change at Stripe; to change a plan's price, create the new price with the same lookup
key and ``transfer_lookup_key`` (this command does so when the amount differs), and existing subscriptions
keep theirs until they change plan.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.core.cache import cache

from accounts.entitlements import INTERVALS, PLAN_ORDER, PLANS
from billing.services.stripe_api import client, metered_lookup_key, plain
from jagcall.kernel.providers import provider_operation

CURRENCY = "usd"
METER_NAMES = {"call_minutes": "Call minutes", "sms_segments": "SMS segments"}
INCLUDED = {"call_minutes": "included_minutes", "sms_segments": "included_sms_segments"}


def _meters(stripe) -> dict[str, str]:
    """Our usage kinds -> Stripe meter ids, creating the meters that are missing."""
    event_names = settings.BILLING_METER_EVENT_NAMES
    with provider_operation("stripe", "list the meters"):
        existing = {m["event_name"]: m["id"] for m in (plain(m) for m in stripe.v1.billing.meters.list({"limit": 100}).data)}
    meters = {}
    for kind, event_name in event_names.items():
        if event_name not in existing:
            with provider_operation("stripe", "create a meter"):
                meter = plain(
                    stripe.v1.billing.meters.create(
                        {
                            "display_name": f"JagCall {METER_NAMES[kind].lower()}",
                            "event_name": event_name,
                            "default_aggregation": {"formula": "sum"},
                            "customer_mapping": {"type": "by_id", "event_payload_key": "stripe_customer_id"},
                            "value_settings": {"event_payload_key": "value"},
                        }
                    )
                )
            existing[event_name] = meter["id"]
        meters[kind] = existing[event_name]
    return meters


def _unit_amount_decimal(centicents: int) -> str:
    """Stripe's unit_amount_decimal is in cents, with up to 12 decimals: 900 centicents -> "9"."""
    return format((Decimal(centicents) / 100).normalize(), "f")


def prices_sync() -> dict[str, str]:
    """Create the plans' products, prices and meters that Stripe lacks; every lookup key -> its price id."""
    stripe = client()
    meters = _meters(stripe)
    wanted: dict[str, dict] = {}
    for code in PLAN_ORDER:
        plan = PLANS[code]
        for interval in INTERVALS:
            wanted[plan.stripe_lookup_key(interval)] = {
                "plan": plan,
                "params": {
                    "currency": CURRENCY,
                    "unit_amount": plan.price_cents(interval),
                    "recurring": {"interval": interval},
                    "nickname": f"{plan.name} ({interval}ly)",
                },
            }
        for kind, limit in INCLUDED.items():
            rate = plan.minute_overage_centicents if kind == "call_minutes" else plan.segment_overage_centicents
            for interval in INTERVALS:
                # A yearly subscription bills its usage once a year, so a year includes twelve months' worth.
                included = plan.limits[limit] * (12 if interval == "year" else 1)
                wanted[metered_lookup_key(code, kind, interval)] = {
                    "plan": plan,
                    "params": {
                        "currency": CURRENCY,
                        "recurring": {"interval": interval, "usage_type": "metered", "meter": meters[kind]},
                        "billing_scheme": "tiered",
                        "tiers_mode": "graduated",
                        "tiers": [
                            {"up_to": included, "unit_amount": 0},
                            {"up_to": "inf", "unit_amount_decimal": _unit_amount_decimal(rate)},
                        ],
                        "nickname": f"{plan.name}: {METER_NAMES[kind].lower()} beyond the included ({interval}ly)",
                    },
                }
    keys = list(wanted)
    existing: dict[str, dict] = {}
    for start in range(0, len(keys), 10):  # Stripe takes up to 10 lookup keys a request
        with provider_operation("stripe", "look up prices"):
            listed = stripe.v1.prices.list({"lookup_keys": keys[start:start + 10], "active": True, "limit": 100})
        existing.update({p["lookup_key"]: p for p in (plain(p) for p in listed.data)})
    products: dict[str, str] = {}
    found = {}
    for key, spec in wanted.items():
        price = existing.get(key)
        plan = spec["plan"]
        if price is not None and (price.get("unit_amount") in (None, spec["params"].get("unit_amount"))):
            found[key] = price["id"]
            continue
        if plan.code not in products:
            products[plan.code] = _product(stripe, plan)
        with provider_operation("stripe", "create a price"):
            created = plain(
                stripe.v1.prices.create(
                    {**spec["params"], "product": products[plan.code], "lookup_key": key, "transfer_lookup_key": True,
                     "metadata": {"plan": plan.code}},
                )
            )
        found[key] = created["id"]
        cache.delete(f"billing:price:{key}")
    return found


def _product(stripe, plan) -> str:
    with provider_operation("stripe", "find the product"):
        listed = stripe.v1.products.list({"limit": 100})
    for product in (plain(p) for p in listed.data):
        if (product.get("metadata") or {}).get("jagcall_plan") == plan.code:
            return product["id"]
    with provider_operation("stripe", "create a product"):
        product = plain(
            stripe.v1.products.create(
                {"name": f"JagCall {plan.name}", "description": plan.summary, "metadata": {"jagcall_plan": plan.code}},
                {"idempotency_key": f"jagcall-product-{plan.code}"},
            )
        )
    return product["id"]
