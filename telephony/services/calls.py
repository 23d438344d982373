"""A call's life: its timeline, status, times, usage and the live push to the organization.

``call_status_record`` is the one way a call's status changes (Twilio's
status callbacks, the voice webhook, the outbound area's placing). Rules:

- Idempotent: the same status with the same sequence number is recorded once;
  a duplicate changes nothing (Twilio retries; the webhook base dedupes too).
- Never backwards (models.STATUS_RANK): a late "ringing" after "in-progress"
  is kept in the timeline (marked late) but does not move the call.
- Times: answered_at on in-progress, ended_at on a final status; duration
  from Twilio's CallDuration.
- Usage: per-second billing. A completed call records its CallDuration as
  billable minutes, once (billing's usage ledger, unique on kind + source "call:<id>");
  a call that never connected (busy, no-answer, failed, canceled) bills 0 and
  records none. Billing meters what it finds here.
- Live: ``call.updated`` with ``call_payload(call)`` on the organization's
  websocket group, on commit.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.events import publish_org_event
from billing.models import UsageKind
from billing.services.usage import call_minutes, usage_record
from telephony.models import STATUS_RANK, TERMINAL_STATUSES, Call, CallEvent, CallStatus

logger = logging.getLogger("jagcall.telephony")

# What Twilio's error codes on a failed call mean, in words a customer can act on
# (https://www.twilio.com/docs/api/errors); unknown codes get a generic sentence.
ERROR_MEANINGS = {
    "11200": "Twilio could not reach JagCall's webhook for this call.",
    "13223": "The number dialled is not a valid phone number.",
    "13224": "The number dialled is not a valid phone number.",
    "13225": "This destination is blocked by the account's calling permissions.",
    "13227": "International calls to this country are not enabled for the account.",
    "21210": "The caller number is not one of the organization's numbers or verified caller IDs.",
    "21211": "The number dialled is not a valid phone number.",
    "21215": "Calls to this country are not enabled in the account's geographic permissions.",
    "21216": "This number is blocked by Twilio (premium or high-risk destination).",
    "31005": "The connection to the other party failed.",
    "32009": "The call was rejected by the carrier.",
}
SIP_MEANINGS = {
    "404": "The number dialled does not exist.",
    "480": "The other party was not reachable.",
    "486": "The line was busy.",
    "487": "Nobody answered.",
    "503": "The carrier could not connect the call.",
}


def error_meaning(code: str, sip_code: str = "") -> str:
    if code and code in ERROR_MEANINGS:
        return ERROR_MEANINGS[code]
    if sip_code and sip_code in SIP_MEANINGS:
        return SIP_MEANINGS[sip_code]
    if code:
        return f"Twilio reported error {code} for this call."
    return "The call could not be connected."


def masked_number(number: str | None) -> str:
    """``+14155550100`` -> ``+1 415 ••• 0100``: enough to recognise a caller, not to dial them."""
    if not number:
        return "Unknown"
    digits = number.lstrip("+")
    if not digits.isdigit() or len(digits) < 7:
        return "•••"
    if digits.startswith("1") and len(digits) == 11:
        return f"+1 {digits[1:4]} ••• {digits[-4:]}"
    return f"+{digits[:2]} ••• {digits[-4:]}"


def call_payload(call: Call, *, counterpart: str | None = None) -> dict:
    """What the portal shows of a call, live (never a full number)."""
    if counterpart is None:
        counterpart = call.counterpart_number
    return {
        "id": str(call.id),
        "direction": call.direction,
        "direction_label": call.get_direction_display(),
        "status": call.status,
        "status_label": call.get_status_display(),
        "finished": call.is_finished,
        "agent": call.agent.name if call.agent_id and call.agent else "",
        "counterpart": masked_number(counterpart),
        "created_at": call.created_at.isoformat(),
        "answered_at": call.answered_at.isoformat() if call.answered_at else None,
        "ended_at": call.ended_at.isoformat() if call.ended_at else None,
        "duration_seconds": call.duration_seconds,
        "error_message": call.error_message,
        "url": reverse("telephony:call-detail", kwargs={"org_slug": call.organization.slug, "call_id": call.id}),
    }


def call_publish(call: Call) -> None:
    """Announce the call's state to the organization's live events, on commit."""
    publish_org_event(call.organization_id, "call.updated", call_payload(call))


def call_event_record(
    *, call: Call, kind: str, source: str, details: dict | None = None, occurred_at: datetime | None = None
) -> CallEvent:
    """One step of the timeline that is not a status (e.g. the media stream starting). Never personal data."""
    return CallEvent.objects.create(
        organization_id=call.organization_id,
        call=call,
        kind=kind,
        source=source,
        details=details or {},
        occurred_at=occurred_at or timezone.now(),
    )


# The largest value an integer column holds (IntegerField, PositiveIntegerField): durations, sequence numbers.
INT32_MAX = 2**31 - 1
# What Call.price holds: 10 digits, 5 of them decimals.
_PRICE_DIGITS = 5  # before the point
_PRICE_PLACES = Decimal("0.00001")
_PRICE_BOUND = Decimal(10) ** _PRICE_DIGITS


def _int(value) -> int | None:
    """A count of seconds Twilio reported, or None when it is not one a column can hold."""
    try:
        number = int(str(value).strip())
    except (TypeError, ValueError):
        return None
    return number if 0 <= number <= INT32_MAX else None


def _price(value) -> Decimal | None:
    """What Twilio charged, as a positive amount Call.price can hold, or None."""
    if value in (None, ""):
        return None
    try:
        amount = Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None
    # By its exponent first: arithmetic on an amount like 1e999999999 overflows.
    if not amount.is_finite() or (amount and amount.adjusted() >= _PRICE_DIGITS):
        return None
    # Twilio reports what it charged as a negative amount ("-0.01300").
    amount = abs(amount).quantize(_PRICE_PLACES)
    return amount if amount < _PRICE_BOUND else None


def call_first_status_record(*, call: Call, status: str, details: dict | None = None, source: str = "twilio") -> Call:
    """Save the new ``call`` in its first ``status``: the row, that status on its timeline, the live push.

    What ``call_status_record`` does to a call that was just made, in two
    INSERTs: nothing else can know the call yet, so there is nothing to lock,
    re-read or find already recorded. Only statuses before an answer (no
    times, no usage) can be first.
    """
    if not call._state.adding:
        raise ValueError("call_first_status_record saves a new call; a stored one goes through call_status_record")
    if STATUS_RANK.get(status, 99) > STATUS_RANK[CallStatus.RINGING]:
        raise ValueError(f"A call cannot start as {status!r}")
    # No savepoint: inside a caller's transaction a failure here rolls that back whole anyway.
    with transaction.atomic(savepoint=False):
        call.status = status
        call.save(force_insert=True)
        CallEvent.objects.create(
            organization_id=call.organization_id,
            call=call,
            kind=status,
            occurred_at=timezone.now(),
            source=source,
            details=dict(details or {}),
        )
        call_publish(call)
    return call


def call_answered_by_stream(*, call: Call) -> Call:
    """The call's media stream opened: it was answered, whether or not Twilio says so.

    Twilio reports an inbound call's answer to no one (a number's status
    callback hears of its end only), so without this a call the agent is
    talking on would show "Ringing" until it ends. A call already answered or
    over is left as it is.
    """
    if STATUS_RANK.get(call.status, 99) >= STATUS_RANK[CallStatus.IN_PROGRESS]:
        return call
    return call_status_record(call=call, status=CallStatus.IN_PROGRESS, source="stream")


@transaction.atomic(savepoint=False)  # nested, a failure rolls the caller's transaction back whole
def call_status_record(
    *,
    call: Call,
    status: str,
    sequence_number: int | None = None,
    occurred_at: datetime | None = None,
    details: dict | None = None,
    duration_seconds=None,
    price=None,
    price_unit: str = "",
    error_code: str = "",
    sip_response_code: str = "",
    source: str = "twilio",
) -> Call:
    """Record that ``call`` reached ``status`` (see the module's rules); returns the call as it now is."""
    if status not in CallStatus.values:
        raise ValueError(f"Unknown call status {status!r}")
    occurred_at = occurred_at or timezone.now()
    if sequence_number is not None and not 0 <= sequence_number <= INT32_MAX:
        sequence_number = None  # not one the column holds (the status hook refuses it before)
    # Lock the call's row only: the agent is a nullable join, which PostgreSQL cannot lock FOR UPDATE.
    call = (
        Call.objects.for_org(call.organization)
        .select_for_update(of=("self",))
        .select_related("organization", "agent")
        .get(pk=call.pk)
    )
    seen = CallEvent.objects.for_org(call.organization).filter(call=call, kind=status)
    if sequence_number is not None:
        seen = seen.filter(sequence_number=sequence_number)
    if seen.exists():
        return call  # a duplicate: nothing changes, nothing is announced

    moves = STATUS_RANK[status] > STATUS_RANK[call.status]
    event_details = dict(details or {})
    if not moves and status != call.status:
        event_details["late"] = True  # arrived after a later status: kept for the timeline only
    CallEvent.objects.create(
        organization_id=call.organization_id,
        call=call,
        kind=status,
        occurred_at=occurred_at,
        sequence_number=sequence_number,
        source=source,
        details=event_details,
    )
    changed = []
    if moves:
        call.status = status
        changed.append("status")
    if status == CallStatus.IN_PROGRESS and call.answered_at is None:
        call.answered_at = occurred_at
        changed.append("answered_at")
    if status in TERMINAL_STATUSES:
        if call.ended_at is None:
            call.ended_at = occurred_at
            changed.append("ended_at")
        duration = _int(duration_seconds)
        if duration is not None and call.duration_seconds is None:
            call.duration_seconds = duration
            changed.append("duration_seconds")
        amount = _price(price)
        if amount is not None:
            call.price, call.price_unit = amount, (price_unit or "USD")[:3].upper()
            changed += ["price", "price_unit"]
        if status == CallStatus.FAILED and moves:
            call.error_code = str(error_code or "")[:10]
            call.error_message = error_meaning(str(error_code or ""), str(sip_response_code or ""))[:300]
            changed += ["error_code", "error_message"]
    if status == CallStatus.COMPLETED and moves:
        call.billable_seconds = call.duration_seconds or 0
        changed.append("billable_seconds")
        if call.billable_seconds:
            usage_record(
                organization=call.organization,
                kind=UsageKind.CALL_MINUTES,
                quantity=call_minutes(call.billable_seconds),
                source=f"call:{call.id}",
                occurred_at=call.ended_at or occurred_at,
            )
    if changed:
        call.save(update_fields=[*dict.fromkeys(changed), "updated_at"])
        call_publish(call)
    return call
