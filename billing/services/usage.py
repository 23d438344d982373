"""The usage ledger and spend caps.

Telephony records each completed call's billable minutes and messaging each text's segments here
(``usage_record``), once per source. Each record is then checked against the owner's spend cap, by a
task a few seconds later that covers every record made meanwhile (``_CapChecks``): at
BILLING_CAP_WARNING_PERCENT of it owners are told once a month, at 100% they are told and the cap's flag
is set for the month, which the pre-dial and pre-send gates read (``spend_cap_refusal``) to refuse new
outbound calls and texts. Inbound keeps working. Raising or removing the cap clears the flag at once.

The cap covers usage charges (what goes beyond the plan's included minutes and segments), not the
plan's own price.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import threading
import time
from decimal import Decimal

from celery import current_app
from django.conf import settings
from django.core.mail import send_mail
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.permissions import Role
from accounts.principals import as_principal
from accounts.services import organization_spend_cap_mark
from billing.models import BillingAccount, UsageEvent, UsageKind
from billing.selectors import month_start, spend_cap_reached, usage_summary
from billing.services.customers import billing_account_ensure
from compliance.services import audit_record
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.rows import save as rows_save

logger = logging.getLogger("jagcall.billing")

CAP_CHECK_TASK = "billing.tasks.spend_cap_check_task"
MAX_CAP_CENTS = 10_000_000  # $100,000 a month: anything above is a typing mistake


def usage_identifier(kind: str, source: str) -> str:
    """The meter event identifier of this usage: the same for the same source, so Stripe counts it once."""
    return f"jc:{kind}:{source}"[:100]


def call_minutes(seconds: int) -> int:
    """Billable minutes of a call: every started minute counts (61 s is 2 minutes)."""
    return math.ceil(max(int(seconds or 0), 0) / 60)


def usage_record(*, organization, kind: str, quantity: int, source: str, occurred_at: dt.datetime) -> UsageEvent | None:
    """Record ``quantity`` of ``kind`` used by ``source`` (e.g. "call:<uuid>"), once; None when already recorded.

    Runs in the caller's transaction (a savepoint guards the unique source); the cap check runs once the
    caller commits.
    """
    if kind not in UsageKind.values:
        raise ValueError(f"Unknown usage kind {kind!r}")
    if int(quantity) <= 0:
        return None
    try:
        with transaction.atomic():
            event = _usage_event(organization, kind, quantity, source, occurred_at)
            event.save(force_insert=True)
    except IntegrityError:
        return None
    organization_id = organization.id
    transaction.on_commit(lambda: _cap_check_soon(organization_id))
    return event


def usage_record_with(
    *rows, organization, kind: str, quantity: int, source: str, occurred_at: dt.datetime
) -> UsageEvent:
    """Write ``rows`` (new instances, see ``jagcall.kernel.rows.save``) and the usage they make, in one
    statement: for a source written by that same statement (a message just sent), which cannot have been
    recorded before, so no savepoint guards it. Runs in the caller's transaction; the cap check runs once
    the caller commits. Returns the usage row (written only if ``quantity`` is positive)."""
    event = _usage_event(organization, kind, quantity, source, occurred_at)
    rows_save(*rows, *([event] if event.quantity > 0 else []))
    if event.quantity > 0:
        organization_id = organization.id
        transaction.on_commit(lambda: _cap_check_soon(organization_id))
    return event


def _usage_event(organization, kind: str, quantity: int, source: str, occurred_at: dt.datetime) -> UsageEvent:
    if kind not in UsageKind.values:
        raise ValueError(f"Unknown usage kind {kind!r}")
    return UsageEvent(
        organization=organization,
        kind=kind,
        quantity=max(int(quantity), 0),
        source=source[:100],
        identifier=usage_identifier(kind, source),
        occurred_at=occurred_at,
    )


class _CapChecks:
    """The spend cap checks this process has queued: at most one per organization at a time.

    [!!] Queuing a task cost a metered request about 5 ms (the broker's round trips and the message's
    making), as much as the rest of an automatic SMS reply. A check reads the month's whole usage when it
    runs, so the one queued first covers every usage committed before it runs. It is queued to run
    BILLING_CAP_CHECK_SECONDS later, plus a margin for the worker's clock, and until then this process
    queues no other for that organization: a burst of texts costs one check, run within seconds of the
    first. Other processes queue their own. A check that could not be queued is not remembered, and the
    hourly sweep catches up on any lost with its worker.
    """

    CLOCK_MARGIN = 1.0  # seconds: a worker's clock a little ahead still runs the check after the window
    PRUNE_AT = 10_000  # organizations remembered before the ones whose check has run are forgotten

    def __init__(self):
        self._lock = threading.Lock()
        self._pending: dict[str, float] = {}  # organization -> when its queued check runs (monotonic)

    def soon(self, organization_id) -> None:
        key = str(organization_id)
        window = float(settings.BILLING_CAP_CHECK_SECONDS)
        now = time.monotonic()
        if window > 0:
            with self._lock:
                if self._pending.get(key, 0.0) > now:
                    return  # a check queued earlier runs after this commit
                if len(self._pending) >= self.PRUNE_AT:
                    self._pending = {k: due for k, due in self._pending.items() if due > now}
                self._pending[key] = now + window
        try:
            if window > 0:
                current_app.send_task(CAP_CHECK_TASK, args=[key], countdown=window + self.CLOCK_MARGIN)
            else:
                current_app.send_task(CAP_CHECK_TASK, args=[key])
        except Exception:  # the broker is away: the hourly sweep checks every capped organization
            with self._lock:
                self._pending.pop(key, None)
            logger.warning("could not queue the spend cap check of %s", organization_id, exc_info=True)

    def forget(self) -> None:
        with self._lock:
            self._pending.clear()


_cap_checks = _CapChecks()


def _cap_check_soon(organization_id) -> None:
    _cap_checks.soon(organization_id)


# --- the cap -------------------------------------------------------------------------------------


def spend_cap_set(*, organization, actor, cap_cents: int | None, now=None) -> BillingAccount:
    """Set (or with None remove) the monthly cap on usage charges, in cents. Owners only; audited."""
    principal = as_principal(actor, organization)
    principal.require("billing.manage")
    if cap_cents is not None:
        if not isinstance(cap_cents, int) or cap_cents < 100:
            raise ApplicationError("Set a cap of at least $1.00, or remove it.", field="cap", code="cap_too_low")
        if cap_cents > MAX_CAP_CENTS:
            raise ApplicationError("Set a cap of at most $100,000.00 a month.", field="cap", code="cap_too_high")
    with transaction.atomic():
        account = billing_account_ensure(organization)
        account = BillingAccount.objects.for_org(organization).select_for_update().get(pk=account.pk)
        before = account.spend_cap_cents
        account.spend_cap_cents = cap_cents
        # A new cap is judged afresh: the flags say what was told about the old one.
        account.cap_warned_month = None
        account.save(update_fields=["spend_cap_cents", "cap_warned_month", "updated_at"])
        organization_spend_cap_mark(organization=organization, reached_month=None)
        audit_record(
            action="billing.spend_cap_changed",
            organization=organization,
            actor=principal,
            resource=account,
            metadata={"from_cents": before, "to_cents": cap_cents},
        )
    spend_cap_check(organization, now=now, notify=cap_cents is not None and (before is None or cap_cents < before))
    account.refresh_from_db()
    return account


def spend_cap_check(organization, *, now=None, notify: bool = True) -> str:
    """Compare the month's usage charges with the cap; tell owners at the warning share and at 100%, once a
    month each, and set the flag the gates read. Returns "none", "under", "warned" or "reached"."""
    now = now or timezone.now()
    month = month_start(now).date()
    summary = usage_summary(organization, now=now)
    with transaction.atomic():
        account = billing_account_ensure(organization)
        account = BillingAccount.objects.for_org(organization).select_for_update().get(pk=account.pk)
        if account.spend_cap_cents is None:
            organization_spend_cap_mark(organization=organization, reached_month=None)
            return "none"
        cap = Decimal(account.spend_cap_cents)
        charges = summary.charges_cents
        warning = cap * Decimal(settings.BILLING_CAP_WARNING_PERCENT) / 100
        if charges >= cap:
            if organization_spend_cap_mark(organization=organization, reached_month=month):
                account.cap_warned_month = month
                account.save(update_fields=["cap_warned_month", "updated_at"])
                audit_record(
                    action="billing.spend_cap_reached", organization=organization, actor=None, resource=account,
                    metadata={"cap_cents": int(cap), "charges_cents": str(charges)},
                )
                if notify:
                    transaction.on_commit(lambda: _tell_owners(organization, "reached", cap, charges))
            return "reached"
        # Under the cap (usage corrected, the cap raised, or a new month): lift the refusal.
        organization_spend_cap_mark(organization=organization, reached_month=None)
        if charges >= warning:
            if account.cap_warned_month != month:
                account.cap_warned_month = month
                account.save(update_fields=["cap_warned_month", "updated_at"])
                audit_record(
                    action="billing.spend_cap_warned", organization=organization, actor=None, resource=account,
                    metadata={"cap_cents": int(cap), "charges_cents": str(charges)},
                )
                if notify:
                    transaction.on_commit(lambda: _tell_owners(organization, "warned", cap, charges))
            return "warned"
        return "under"


def _tell_owners(organization, what: str, cap: Decimal, charges: Decimal) -> None:
    from accounts.events import publish_org_event
    from accounts.models import Membership

    emails = list(
        Membership.objects.for_org(organization).filter(role=Role.OWNER).values_list("user__email", flat=True)
    )
    dollars = f"${charges / 100:,.2f} of your ${cap / 100:,.2f} cap"
    if what == "reached":
        subject = f"{organization.name}: the monthly spend cap is reached"
        body = (
            f"Usage charges this month have reached {dollars}. New outbound calls and texts are refused until "
            "the month ends or an owner raises the cap on the Billing page. Inbound calls and texts keep working."
        )
    else:
        subject = f"{organization.name}: {settings.BILLING_CAP_WARNING_PERCENT}% of the monthly spend cap used"
        body = (
            f"Usage charges this month are at {dollars}. At 100% new outbound calls and texts will be refused; "
            "an owner can raise the cap on the Billing page."
        )
    if emails:
        send_mail(subject, body, None, emails, fail_silently=True)
    publish_org_event(organization.id, "billing.spend_cap", {"state": what, "message": body})


def spend_cap_refusal(organization, *, now=None) -> str | None:
    """Why a new outbound call or text is refused for the spend cap, or None (the gates call this)."""
    if not spend_cap_reached(organization, now=now):
        return None
    return (
        "This month's spend cap is reached: new outbound calls and texts are paused. An owner can raise the cap "
        "on the Billing page; inbound calls and texts keep working."
    )
