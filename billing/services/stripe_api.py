"""Small helpers around the Stripe SDK shared by billing's services: plain dicts, prices by lookup key."""

from __future__ import annotations

from typing import Any

from django.core.cache import cache

from accounts.entitlements import INTERVALS, PLANS
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import provider_operation, stripe_client

PRICE_CACHE_SECONDS = 600
# Metered prices of each plan, by lookup key suffix (the base price's key ends "_monthly" or "_yearly").
METERED_SUFFIXES = {"call_minutes": "minutes", "sms_segments": "segments"}


def plain(obj: Any) -> Any:
    """A Stripe object as plain dicts and lists (the SDK's objects are not dicts)."""
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    return obj


def client():
    return stripe_client()


def base_lookup_key(plan_code: str, interval: str) -> str:
    return PLANS[plan_code].stripe_lookup_key(interval)


def metered_lookup_key(plan_code: str, kind: str, interval: str = "month") -> str:
    """A plan's metered price for ``kind``: billed monthly (``jagcall_pro_minutes``), or yearly for the yearly
    plan (``jagcall_pro_minutes_yearly``), since every price of one subscription shares its interval."""
    key = f"jagcall_{plan_code}_{METERED_SUFFIXES[kind]}"
    return key if interval == "month" else f"{key}_yearly"


def metered_kind_of_lookup_key(lookup_key: str | None) -> str | None:
    """The usage kind a metered price's lookup key bills ("call_minutes", "sms_segments"), or None."""
    for code in PLANS:
        for interval in INTERVALS:
            for kind in METERED_SUFFIXES:
                if metered_lookup_key(code, kind, interval) == lookup_key:
                    return kind
    return None


def plan_of_lookup_key(lookup_key: str | None) -> tuple[str, str] | None:
    """(plan code, interval) of a base price's lookup key, or None (a metered price, or not ours)."""
    for code, plan in PLANS.items():
        for interval in INTERVALS:
            if plan.stripe_lookup_key(interval) == lookup_key:
                return code, interval
    return None


def price_ids(lookup_keys: list[str]) -> dict[str, str]:
    """Stripe price ids by lookup key (cached); a key Stripe does not know is missing from the result."""
    found: dict[str, str] = {}
    missing = []
    for key in lookup_keys:
        cached = cache.get(f"billing:price:{key}")
        if cached:
            found[key] = cached
        else:
            missing.append(key)
    if missing:
        with provider_operation("stripe", "look up prices"):
            prices = client().v1.prices.list({"lookup_keys": missing, "active": True, "limit": 100})
        for price in (plain(price) for price in prices.data):
            key = price.get("lookup_key")
            found[key] = price["id"]
            cache.set(f"billing:price:{key}", price["id"], PRICE_CACHE_SECONDS)
    return found


def require_price_ids(lookup_keys: list[str]) -> dict[str, str]:
    found = price_ids(lookup_keys)
    absent = [key for key in lookup_keys if key not in found]
    if absent:
        raise ApplicationError(
            f"Stripe has no price with the lookup key {', '.join(absent)}: run `manage.py billing_prices_sync` "
            "to create the plans' prices.",
            code="prices_missing",
            status=503,
        )
    return found
