"""The subscription, as fetched from Stripe, decides the organization's plan and standing.

[!!] Events arrive late, twice and out of order; their snapshots may be stale. So nothing here trusts an
event's copy of a subscription: ``subscription_sync`` fetches the customer's subscription from Stripe and
applies what it says now. Applying it twice changes nothing.

Standing (accounts/entitlements.py):

- trialing, active: the subscribed plan, in good standing;
- past_due: the plan is kept, with a banner, for BILLING_GRACE_DAYS after the first failed payment, then
  restricted (``past_due_restrict``, hourly);
- unpaid, canceled, incomplete_expired, paused: restricted (inbound calls get the refusal, nothing outbound);
- incomplete (the first payment is still being made): nothing changes yet;
- a complimentary plan (support staff) applies in good standing while no subscription is live.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.entitlements import PLANS, Standing, plan_change_refusals
from accounts.principals import as_principal
from accounts.services import organization_billing_update
from billing.models import BillingAccount, SubscriptionStatus
from billing.services.customers import billing_account_ensure
from billing.services.stripe_api import (
    METERED_SUFFIXES,
    base_lookup_key,
    client,
    metered_kind_of_lookup_key,
    metered_lookup_key,
    plain,
    plan_of_lookup_key,
    require_price_ids,
)
from compliance.services import audit_record
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import provider_operation

LIVE = {SubscriptionStatus.TRIALING, SubscriptionStatus.ACTIVE, SubscriptionStatus.PAST_DUE}
RESTRICTING = {
    SubscriptionStatus.UNPAID,
    SubscriptionStatus.CANCELED,
    SubscriptionStatus.INCOMPLETE_EXPIRED,
    SubscriptionStatus.PAUSED,
}
# Which subscription of a customer counts when it has several: the first status found in this order.
PREFERENCE = ["active", "trialing", "past_due", "unpaid", "incomplete", "paused", "incomplete_expired", "canceled"]
# A proration preview is honoured for this long (the change is then billed exactly as previewed).
PREVIEW_VALID_SECONDS = 30 * 60


def _when(timestamp) -> dt.datetime | None:
    return dt.datetime.fromtimestamp(int(timestamp), tz=dt.UTC) if timestamp else None


def _items(subscription: dict) -> list[dict]:
    return list((subscription.get("items") or {}).get("data") or [])


def _base_item(subscription: dict) -> tuple[dict | None, tuple[str, str] | None]:
    """The item whose price is a plan's base price, with (plan code, interval)."""
    for item in _items(subscription):
        found = plan_of_lookup_key((item.get("price") or {}).get("lookup_key"))
        if found:
            return item, found
    return None, None


def _pick(subscriptions: list[dict]) -> dict | None:
    ranked = sorted(
        subscriptions,
        key=lambda s: (PREFERENCE.index(s["status"]) if s["status"] in PREFERENCE else 99, -int(s.get("created") or 0)),
    )
    return ranked[0] if ranked else None


def _fetch(account: BillingAccount, subscription_id: str | None) -> dict | None:
    """The customer's subscription that counts, fetched from Stripe now (None: it has none)."""
    stripe = client()
    with provider_operation("stripe", "fetch the subscription"):
        if subscription_id:
            found = plain(stripe.v1.subscriptions.retrieve(subscription_id))
            if found.get("customer") == account.stripe_customer_id and found.get("status") in LIVE:
                return found
        listed = stripe.v1.subscriptions.list({"customer": account.stripe_customer_id, "status": "all", "limit": 20})
    return _pick([plain(s) for s in listed.data])


def _derive(account: BillingAccount, organization, now: dt.datetime) -> tuple[str | None, str | None]:
    """(plan code, standing) the account's state gives; None where nothing should change."""
    status = account.subscription_status
    if account.complimentary_plan_code and status not in LIVE:
        return account.complimentary_plan_code, Standing.GOOD
    plan = account.subscribed_plan_code or None
    if status in {SubscriptionStatus.ACTIVE, SubscriptionStatus.TRIALING}:
        return plan, Standing.GOOD
    if status == SubscriptionStatus.PAST_DUE:
        grace = dt.timedelta(days=int(settings.BILLING_GRACE_DAYS))
        over = account.past_due_since is not None and now - account.past_due_since > grace
        return plan, Standing.RESTRICTED if over else Standing.PAST_DUE
    if status in RESTRICTING:
        return plan, Standing.RESTRICTED
    return None, None  # incomplete, or never subscribed: as it is


def _apply(account: BillingAccount, subscription: dict | None, now: dt.datetime) -> dict:
    """Copy the fetched subscription onto the account (locked by the caller); the fields that changed."""
    before = {
        "status": account.subscription_status,
        "plan": account.subscribed_plan_code,
        "interval": account.interval,
    }
    if subscription is None:
        if account.stripe_subscription_id:  # it had one: gone at Stripe means canceled
            account.subscription_status = SubscriptionStatus.CANCELED
    else:
        item, found = _base_item(subscription)
        account.stripe_subscription_id = subscription["id"]
        account.subscription_status = subscription["status"]
        if found:
            account.subscribed_plan_code, account.interval = found
        period_source = item or subscription
        account.current_period_start = _when(period_source.get("current_period_start") or subscription.get("current_period_start"))
        account.current_period_end = _when(period_source.get("current_period_end") or subscription.get("current_period_end"))
        account.cancel_at_period_end = bool(subscription.get("cancel_at_period_end"))
    if account.subscription_status == SubscriptionStatus.PAST_DUE:
        account.past_due_since = account.past_due_since or now
    else:
        account.past_due_since = None
    account.synced_at = now
    account.save()
    after = {"status": account.subscription_status, "plan": account.subscribed_plan_code, "interval": account.interval}
    return {key: (before[key], after[key]) for key in before if before[key] != after[key]}


def _settle(account: BillingAccount, organization, now: dt.datetime, *, actor=None, reason: str = "") -> None:
    plan, standing = _derive(account, organization, now)
    if plan is not None and plan not in PLANS:
        plan = None
    if plan is not None or standing is not None:
        organization_billing_update(organization=organization, plan_code=plan, standing=standing, actor=actor, reason=reason)


def subscription_sync(organization, *, subscription_id: str | None = None, reason: str = "", now=None) -> BillingAccount:
    """Fetch the organization's subscription from Stripe and apply it (plan, standing, period). Idempotent."""
    now = now or timezone.now()
    account = billing_account_ensure(organization)
    subscription = _fetch(account, subscription_id) if account.stripe_customer_id else None
    with transaction.atomic():
        account = BillingAccount.objects.for_org(organization).select_for_update().get(pk=account.pk)
        changed = _apply(account, subscription, now) if account.stripe_customer_id else {}
        if changed:
            audit_record(
                action="billing.subscription_changed",
                organization=organization,
                actor=None,
                resource=account,
                metadata={"reason": reason[:100], **{key: {"from": old, "to": new} for key, (old, new) in changed.items()}},
            )
        _settle(account, organization, now, reason=reason or "subscription sync")
    return account


@transaction.atomic
def past_due_restrict(*, now=None) -> int:
    """Restrict the organizations whose payment has been past due longer than the grace period; how many."""
    now = now or timezone.now()
    cutoff = now - dt.timedelta(days=int(settings.BILLING_GRACE_DAYS))
    overdue = (
        BillingAccount.objects.unscoped("the hourly grace check walks every organization")
        .select_for_update(of=("self",))
        .select_related("organization")
        .filter(subscription_status=SubscriptionStatus.PAST_DUE, past_due_since__lt=cutoff)
        .exclude(organization__billing_standing=Standing.RESTRICTED)
    )
    count = 0
    for account in overdue:
        _settle(account, account.organization, now, reason="grace period over")
        count += 1
    return count


# --- changing plan --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlanChangePreview:
    plan_code: str
    interval: str
    amount_due_cents: int
    currency: str
    proration_date: int
    lines: list[tuple[str, int]] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)

    @property
    def plan_name(self) -> str:
        return PLANS[self.plan_code].name


def _live_subscription(organization, account: BillingAccount) -> dict:
    if not account.stripe_subscription_id or account.subscription_status not in LIVE:
        raise ApplicationError(
            "This organization has no subscription to change yet: choose a plan to subscribe through Stripe Checkout.",
            code="no_subscription",
            status=409,
        )
    with provider_operation("stripe", "fetch the subscription"):
        return plain(client().v1.subscriptions.retrieve(account.stripe_subscription_id))


def _clean_target(plan_code: str, interval: str) -> None:
    if plan_code not in PLANS:
        raise ApplicationError(f"Choose a plan: {', '.join(PLANS)}.", field="plan", code="unknown_plan")
    if interval not in {"month", "year"}:
        raise ApplicationError("Choose monthly or yearly billing.", field="interval", code="unknown_interval")


def _new_items(subscription: dict, plan_code: str, interval: str) -> list[dict]:
    """Every item of the subscription moved to the new plan's price (base and metered)."""
    keys = {"base": base_lookup_key(plan_code, interval)}
    keys.update({kind: metered_lookup_key(plan_code, kind, interval) for kind in METERED_SUFFIXES})
    prices = require_price_ids(list(keys.values()))
    items = []
    for item in _items(subscription):
        lookup_key = (item.get("price") or {}).get("lookup_key") or ""
        if plan_of_lookup_key(lookup_key):
            items.append({"id": item["id"], "price": prices[keys["base"]]})
            continue
        kind = metered_kind_of_lookup_key(lookup_key)
        if kind:
            items.append({"id": item["id"], "price": prices[keys[kind]]})
    if not items:
        raise ApplicationError("The subscription has no plan price to change.", code="no_plan_item", status=409)
    return items


def plan_change_preview(*, organization, actor, plan_code: str, interval: str, now=None) -> PlanChangePreview:
    """What moving the subscription to ``plan_code``/``interval`` now would cost (Stripe's proration preview)."""
    as_principal(actor, organization).require("billing.manage")
    _clean_target(plan_code, interval)
    now = now or timezone.now()
    account = billing_account_ensure(organization)
    if account.subscribed_plan_code == plan_code and account.interval == interval:
        raise ApplicationError(f"You are on the {PLANS[plan_code].name} plan already.", code="same_plan")
    subscription = _live_subscription(organization, account)
    proration_date = int(now.timestamp())
    with provider_operation("stripe", "preview the plan change"):
        preview = plain(
            client().v1.invoices.create_preview(
                {
                    "customer": account.stripe_customer_id,
                    "subscription": subscription["id"],
                    "subscription_details": {
                        "items": _new_items(subscription, plan_code, interval),
                        "proration_date": proration_date,
                        "proration_behavior": "create_prorations",
                    },
                }
            )
        )
    lines = [
        (line.get("description") or "", int(line.get("amount") or 0))
        for line in (preview.get("lines") or {}).get("data") or []
    ]
    return PlanChangePreview(
        plan_code=plan_code,
        interval=interval,
        amount_due_cents=int(preview.get("amount_due") or 0),
        currency=(preview.get("currency") or "usd").upper(),
        proration_date=proration_date,
        lines=lines,
        refusals=plan_change_refusals(organization, plan_code),
    )


def plan_change(*, organization, actor, plan_code: str, interval: str, proration_date: int, now=None) -> BillingAccount:
    """Move the subscription to ``plan_code``/``interval``, prorated as previewed at ``proration_date``."""
    principal = as_principal(actor, organization)
    principal.require("billing.manage")
    _clean_target(plan_code, interval)
    now = now or timezone.now()
    age = now.timestamp() - int(proration_date)
    if not 0 <= age <= PREVIEW_VALID_SECONDS:
        raise ApplicationError(
            "This price preview has expired: review the change again before confirming it.", code="preview_expired"
        )
    refusals = plan_change_refusals(organization, plan_code)
    if refusals:
        raise ApplicationError(" ".join(refusals), code="over_new_plan_limits", status=409)
    account = billing_account_ensure(organization)
    subscription = _live_subscription(organization, account)
    with provider_operation("stripe", "change the plan"):
        client().v1.subscriptions.update(
            subscription["id"],
            {
                "items": _new_items(subscription, plan_code, interval),
                "proration_behavior": "create_prorations",
                "proration_date": int(proration_date),
                "metadata": {"organization_id": str(organization.id)},
            },
            {"idempotency_key": f"jagcall-plan-{subscription['id']}-{plan_code}-{interval}-{int(proration_date)}"},
        )
    audit_record(
        action="billing.plan_change_requested",
        organization=organization,
        actor=principal,
        resource=account,
        metadata={"from": account.subscribed_plan_code, "to": plan_code, "interval": interval},
    )
    return subscription_sync(organization, subscription_id=subscription["id"], reason="plan change", now=now)


# --- support staff ----------------------------------------------------------------------------------


def complimentary_plan_grant(*, organization, staff_user, plan_code: str, reason: str, now=None) -> BillingAccount:
    """Give ``organization`` ``plan_code`` free of charge ("" takes it back), while no subscription is live."""
    if plan_code and plan_code not in PLANS:
        raise ApplicationError(f"Choose a plan: {', '.join(PLANS)}.", field="plan_code")
    if not (reason or "").strip():
        raise ApplicationError("Say why (it is kept in the audit log).", field="reason")
    now = now or timezone.now()
    with transaction.atomic():
        account = billing_account_ensure(organization)
        account = BillingAccount.objects.for_org(organization).select_for_update().get(pk=account.pk)
        before = account.complimentary_plan_code
        account.complimentary_plan_code = plan_code
        account.save(update_fields=["complimentary_plan_code", "updated_at"])
        audit_record(
            action="billing.complimentary_plan_granted" if plan_code else "billing.complimentary_plan_removed",
            organization=organization,
            actor=staff_user,
            resource=account,
            metadata={"from": before, "to": plan_code, "reason": reason.strip()[:300]},
        )
        if plan_code:
            _settle(account, organization, now, actor=None, reason=f"complimentary plan: {reason.strip()[:150]}")
        elif account.subscription_status not in LIVE:
            standing = Standing.RESTRICTED if account.stripe_subscription_id else Standing.GOOD
            organization_billing_update(
                organization=organization, plan_code="starter" if not account.stripe_subscription_id else None,
                standing=standing, reason="complimentary plan removed",
            )
    return account


MAX_CREDIT_CENTS = 1_000_000  # $10,000: above that, a refund or a contract, not a credit


def credit_grant(*, organization, staff_user, amount_cents: int, reason: str):
    """Credit ``amount_cents`` to the organization's Stripe balance (its next invoices use it up). Audited."""
    from billing.models import BillingCredit
    from billing.services.customers import stripe_customer_ensure

    if not isinstance(amount_cents, int) or not 1 <= amount_cents <= MAX_CREDIT_CENTS:
        raise ApplicationError("Give a credit between $0.01 and $10,000.00.", field="amount")
    reason = (reason or "").strip()
    if not reason:
        raise ApplicationError("Say why (the customer sees it on their invoice).", field="reason")
    customer = stripe_customer_ensure(organization)
    credit = BillingCredit.objects.create(
        organization=organization, amount_cents=amount_cents, reason=reason[:300], granted_by=staff_user
    )
    try:
        with provider_operation("stripe", "credit the customer"):
            transaction_ = plain(
                client().v1.customers.balance_transactions.create(
                    customer,
                    {"amount": -amount_cents, "currency": "usd", "description": reason[:300],
                     "metadata": {"jagcall_credit": str(credit.id)}},
                    {"idempotency_key": f"jagcall-credit-{credit.id}"},
                )
            )
    except Exception:
        credit.delete()
        raise
    credit.stripe_transaction_id = transaction_["id"]
    credit.save(update_fields=["stripe_transaction_id"])
    audit_record(
        action="billing.credit_granted",
        organization=organization,
        actor=staff_user,
        resource=credit,
        metadata={"amount_cents": amount_cents, "reason": reason[:300]},
    )
    return credit
