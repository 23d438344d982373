"""What each plan includes and allows: the one place that answers "does this organization have X / how much".

    has_entitlement(organization, "sso")            # a feature of its plan, in its standing
    plan_limit(organization, "concurrent_calls")    # a number: the contract's figure, else the plan's
    limit_refusal(organization, "phone_numbers", used=2)   # None, or a message naming the plan that allows more
    outbound_refusal(organization)                  # None, or why nothing may be sent or dialled now

Plans are defined once here (``PLANS``): their prices (in cents, USD, monthly and yearly), what they
include, and their limits. Billing maps each plan and interval to a Stripe price by its lookup key
(``stripe_lookup_key``) and changes an organization's plan only through
``accounts.services.organization_billing_update``; every limit in the product asks the functions above.

An organization's standing (``Organization.billing_standing``) follows its subscription:

- ``good``: the plan applies in full (trialing, active, or no subscription yet: a new organization is on
  Starter until an owner subscribes);
- ``past_due``: a payment failed; everything keeps working and every page shows a banner, for
  BILLING_GRACE_DAYS (billing restricts it after that);
- ``restricted``: the subscription is unpaid or canceled: inbound calls still get the organization's
  refusal, nothing outbound is dialled or sent, no number is bought.
"""

from __future__ import annotations

from dataclasses import dataclass, field

GIB = 1024 * 1024 * 1024


@dataclass(frozen=True)
class Plan:
    code: str
    name: str
    monthly_cents: int
    yearly_cents: int
    features: frozenset[str]
    limits: dict[str, int] = field(default_factory=dict)
    # What usage beyond the included minutes and segments costs, in hundredths of a cent (1/10000 USD).
    minute_overage_centicents: int = 0
    segment_overage_centicents: int = 0
    support: str = ""
    summary: str = ""

    def price_cents(self, interval: str) -> int:
        return self.yearly_cents if interval == "year" else self.monthly_cents

    def stripe_lookup_key(self, interval: str) -> str:
        """The Stripe price of this plan and interval, found by lookup key (``billing_prices_sync`` creates it)."""
        return f"jagcall_{self.code}_{interval}ly"


# Limit names, with what they mean (the billing page and refusals show these words).
LIMIT_LABELS = {
    "seats": "team members",
    "phone_numbers": "phone numbers",
    "concurrent_calls": "calls at once",
    "included_minutes": "call minutes a month",
    "included_sms_segments": "SMS segments a month",
    "knowledge_storage_bytes": "knowledge storage",
    "api_reads_per_minute": "API reads a minute",
    "api_writes_per_minute": "API writes a minute",
}
FEATURE_LABELS = {"messaging": "SMS", "sso": "Single sign-on (SAML)", "hipaa": "HIPAA mode"}

PLANS: dict[str, Plan] = {
    plan.code: plan
    for plan in (
        Plan(
            code="starter",
            name="Starter",
            monthly_cents=4_900,
            yearly_cents=49_000,
            features=frozenset({"messaging"}),
            limits={
                "seats": 3,
                "phone_numbers": 2,
                "concurrent_calls": 5,
                "included_minutes": 500,
                "included_sms_segments": 1_000,
                "knowledge_storage_bytes": 100 * 1024 * 1024,
                "api_reads_per_minute": 200,
                "api_writes_per_minute": 30,
            },
            minute_overage_centicents=900,
            segment_overage_centicents=150,
            support="Email, next business day",
            summary="For a single practice or a small team getting started.",
        ),
        Plan(
            code="pro",
            name="Pro",
            monthly_cents=19_900,
            yearly_cents=199_000,
            features=frozenset({"messaging"}),
            limits={
                "seats": 15,
                "phone_numbers": 10,
                "concurrent_calls": 25,
                "included_minutes": 3_000,
                "included_sms_segments": 10_000,
                "knowledge_storage_bytes": 1 * GIB,
                "api_reads_per_minute": 600,
                "api_writes_per_minute": 120,
            },
            minute_overage_centicents=700,
            segment_overage_centicents=120,
            support="Email and chat, same business day",
            summary="For growing teams with several numbers and agents.",
        ),
        Plan(
            code="enterprise",
            name="Enterprise",
            monthly_cents=79_900,
            yearly_cents=799_000,
            features=frozenset({"messaging", "sso", "hipaa"}),
            limits={
                "seats": 100,
                "phone_numbers": 100,
                "concurrent_calls": 100,
                "included_minutes": 15_000,
                "included_sms_segments": 50_000,
                "knowledge_storage_bytes": 10 * GIB,
                "api_reads_per_minute": 2_000,
                "api_writes_per_minute": 500,
            },
            minute_overage_centicents=500,
            segment_overage_centicents=100,
            support="Dedicated manager, 4-hour response",
            summary="Single sign-on, HIPAA mode and room for a whole company.",
        ),
    )
}
PLAN_ORDER = ["starter", "pro", "enterprise"]
DEFAULT_PLAN = "starter"
INTERVALS = ("month", "year")

# Kept for the callers that read the tables directly.
PLAN_ENTITLEMENTS: dict[str, set[str]] = {code: set(plan.features) for code, plan in PLANS.items()}
PLAN_LIMITS: dict[str, dict[str, int]] = {code: dict(plan.limits) for code, plan in PLANS.items()}

# Limits a contract may set per organization (support staff, in the admin), over the plan's.
LIMIT_OVERRIDES = {"concurrent_calls": "concurrent_calls_limit"}


class Standing:
    GOOD = "good"
    PAST_DUE = "past_due"
    RESTRICTED = "restricted"
    CHOICES = [(GOOD, "In good standing"), (PAST_DUE, "Payment past due"), (RESTRICTED, "Restricted")]


def plan_of(organization) -> Plan:
    """The organization's plan (an unknown code: Starter's, the smallest)."""
    return PLANS.get(getattr(organization, "plan_code", ""), PLANS[DEFAULT_PLAN])


def plan_limit(organization, name: str) -> int:
    """How much of ``name`` ``organization`` is allowed: its contract's figure if set, else its plan's."""
    override = getattr(organization, LIMIT_OVERRIDES.get(name, ""), None)
    if override is not None:
        return override
    return plan_of(organization).limits[name]


def has_entitlement(organization, name: str) -> bool:
    """Does ``organization``'s plan include ``name``? An unknown plan includes nothing.

    The standing does not take features away (a restricted organization keeps its single sign-on, so its
    people can still reach the Billing page); what costs money is refused by ``outbound_refusal``.
    """
    if organization is None:
        return False
    plan = PLANS.get(organization.plan_code)
    return plan is not None and name in plan.features


def plan_allowing(name: str, amount: int | None = None) -> Plan | None:
    """The smallest plan that includes feature ``name``, or whose limit ``name`` is at least ``amount``."""
    for code in PLAN_ORDER:
        plan = PLANS[code]
        if amount is None and name in plan.features:
            return plan
        if amount is not None and plan.limits.get(name, 0) >= amount:
            return plan
    return None


def feature_refusal(organization, name: str) -> str | None:
    """None when the plan includes feature ``name``; else a sentence naming the plan that does."""
    if has_entitlement(organization, name):
        return None
    label = FEATURE_LABELS.get(name, name)
    plan = plan_allowing(name)
    where = f"the {plan.name} plan" if plan else "no plan"
    return f"{label} is included in {where}; your organization is on {plan_of(organization).name}."


def limit_amount(name: str, amount: int) -> str:
    """``amount`` of limit ``name`` as people read it: a size in MB or GB, else the number."""
    if not name.endswith("_bytes"):
        return str(amount)
    if amount >= GIB:
        return f"{amount / GIB:.1f} GB".replace(".0 GB", " GB")
    return f"{amount / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")


def limit_refusal(organization, name: str, *, used: int, adding: int = 1) -> str | None:
    """None when ``used + adding`` stays within the limit; else a sentence naming the plan that allows it."""
    limit = plan_limit(organization, name)
    if used + adding <= limit:
        return None
    current = plan_of(organization)
    label = LIMIT_LABELS.get(name, name)
    bigger = plan_allowing(name, used + adding)
    if bigger is not None and bigger.code != current.code:
        advice = (
            f"The {bigger.name} plan allows {limit_amount(name, bigger.limits[name])}: "
            "an owner can upgrade on the Billing page."
        )
    else:
        advice = "Contact support for a higher limit."
    return (
        f"Your {current.name} plan allows {limit_amount(name, limit)} {label} and "
        f"{limit_amount(name, used)} are in use. {advice}"
    )


def outbound_refusal(organization) -> str | None:
    """None when ``organization`` may dial and send; else why not (its standing; spend caps are billing's)."""
    if organization is None or not organization.is_active:
        return "This organization is not active."
    if getattr(organization, "billing_standing", Standing.GOOD) == Standing.RESTRICTED:
        return (
            "Outbound calls and texts are paused: this organization's subscription is unpaid or canceled. "
            "An owner can renew it on the Billing page."
        )
    return None


# --- how much is in use -------------------------------------------------------------------------
# Apps register how to count what they own against a limit ("phone_numbers": telephony's numbers), so a
# plan change can check the new plan's limits without billing knowing those apps.
USAGE_COUNTERS: dict = {}


def register_usage_counter(name: str, counter) -> None:
    """``counter(organization) -> int``: how much of limit ``name`` the organization uses now."""
    USAGE_COUNTERS[name] = counter


def usage_of(organization, name: str) -> int | None:
    """How much of ``name`` is in use (None when no app counts it)."""
    counter = USAGE_COUNTERS.get(name)
    return None if counter is None else int(counter(organization))


def plan_change_refusals(organization, plan_code: str) -> list[str]:
    """What keeps ``organization`` from moving to ``plan_code``: a sentence per limit it already exceeds."""
    target = PLANS[plan_code]
    refusals = []
    for name, counter in USAGE_COUNTERS.items():
        limit = target.limits.get(name)
        if limit is None:
            continue
        used = int(counter(organization))
        if used > limit:
            refusals.append(
                f"The {target.name} plan allows {limit} {LIMIT_LABELS.get(name, name)} and {used} are in use: "
                f"remove {used - limit} first."
            )
    return refusals
