"""What each plan includes: one table, asked through ``has_entitlement``."""

from __future__ import annotations

PLAN_ENTITLEMENTS: dict[str, set[str]] = {
    "starter": set(),
    "pro": set(),
    "enterprise": {"sso"},
}


def has_entitlement(organization, name: str) -> bool:
    """Does ``organization``'s plan include ``name``? An unknown plan includes nothing."""
    if organization is None:
        return False
    return name in PLAN_ENTITLEMENTS.get(organization.plan_code, set())
