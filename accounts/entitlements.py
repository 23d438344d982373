"""What each plan includes and allows: two tables, asked through ``has_entitlement`` and ``plan_limit``."""

from __future__ import annotations

PLAN_ENTITLEMENTS: dict[str, set[str]] = {
    "starter": {"messaging"},
    "pro": {"messaging"},
    "enterprise": {"messaging", "sso"},
}

# What each plan allows in numbers; an unknown plan gets the starter's. ``concurrent_calls``: calls
# in progress at once, inbound and outbound together (telephony refuses the next one).
PLAN_LIMITS: dict[str, dict[str, int]] = {
    "starter": {"knowledge_storage_bytes": 100 * 1024 * 1024, "concurrent_calls": 5},
    "pro": {"knowledge_storage_bytes": 1024 * 1024 * 1024, "concurrent_calls": 25},
    "enterprise": {"knowledge_storage_bytes": 10 * 1024 * 1024 * 1024, "concurrent_calls": 100},
}


# Limits a contract may set per organization (support staff, in the admin), over the plan's.
LIMIT_OVERRIDES = {"concurrent_calls": "concurrent_calls_limit"}


def plan_limit(organization, name: str) -> int:
    """How much of ``name`` ``organization`` is allowed: its contract's figure if set, else its plan's."""
    override = getattr(organization, LIMIT_OVERRIDES.get(name, ""), None)
    if override is not None:
        return override
    limits = PLAN_LIMITS.get(getattr(organization, "plan_code", ""), PLAN_LIMITS["starter"])
    return limits[name]


def has_entitlement(organization, name: str) -> bool:
    """Does ``organization``'s plan include ``name``? An unknown plan includes nothing."""
    if organization is None:
        return False
    return name in PLAN_ENTITLEMENTS.get(organization.plan_code, set())
