"""Reads of calls: the webhooks' lookups, the portal's list (filters, keyset pages) and a call's page.

Numbers are personal data, encrypted (telephony.models.Call): the list
filters by a number through its blind index (nothing decrypted), and
``call_rows`` decrypts only what a list row shows (the other party's number)
in one pass over the page.
"""

from __future__ import annotations

import base64
import binascii
import functools
import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from django.db import connection
from django.db.models import Q, QuerySet
from django.utils import timezone

from accounts.models import Organization
from accounts.tenancy import get_for_org_or_404
from jagcall.kernel import rows
from jagcall.kernel.crypto.blind_index import blind_index_candidates
from jagcall.kernel.phone import normalize_for_index, parse_e164
from telephony.models import (
    TERMINAL_STATUSES,
    Agent,
    Call,
    CallDirection,
    CallEvent,
    ConversationTurn,
    PhoneNumber,
)

PAGE_SIZE = 50
_WEBHOOK_REASON = "webhook: a signed Twilio callback names the call or number, and so its organization"
_NUMBER_PURPOSE = "telephony.number"


# --- the webhooks' lookups (signed requests; no member, so by the provider's ids) ---------


def _one(queryset: QuerySet):
    """The row of a lookup by a unique key, or None: no ORDER BY to build (the key matches one row at most)."""
    return next(iter(queryset.order_by()[:1]), None)


# What the hooks read of a number's agent (its prompt, voice and tools are the media stream's business).
_INBOUND_AGENT_FIELDS = ("id", "organization_id", "name", "record_calls")


@functools.cache
def _inbound_statement() -> str:
    """The number-with-organization-and-agent read, built once from the models' own tables and columns."""
    agent_columns = ", ".join(f"a.{Agent._meta.get_field(name).column}" for name in _INBOUND_AGENT_FIELDS)
    return (
        f"SELECT {rows.columns(PhoneNumber, 'n')}, {rows.columns(Organization, 'o')}, {agent_columns} "  # noqa: S608
        f"FROM {PhoneNumber._meta.db_table} AS n "
        f"JOIN {Organization._meta.db_table} AS o ON o.id = n.organization_id "
        f"LEFT JOIN {Agent._meta.db_table} AS a ON a.id = n.agent_id "
        "WHERE n.number = %s AND n.released_at IS NULL LIMIT 1"
    )


def phone_number_for_inbound(*, to_number: str) -> PhoneNumber | None:
    """The held number a caller dialled or texted, with its organization and the agent's name and recording
    choice (the agent's other fields are deferred: they load if read), or None.

    [!!] Across organizations by design: a signed hook names our number, and a held number is unique
    (telephony_number_held_once), so the WHERE finds at most one. Every text and call asks this first,
    so it is one plain statement joining the three rows (``jagcall.kernel.rows``): the ORM's query
    building cost more than the read.
    """
    to_number = (to_number or "").strip()
    if not to_number:
        return None
    with connection.cursor() as cursor:
        cursor.execute(_inbound_statement(), [to_number])
        row = cursor.fetchone()
    if row is None:
        return None
    split = rows.width(PhoneNumber)
    agent_at = split + rows.width(Organization)
    number = rows.instance(PhoneNumber, row[:split], using=connection.alias)
    number.organization = rows.instance(Organization, row[split:agent_at], using=connection.alias)
    agent_values = row[agent_at:]
    number.agent = Agent.from_db(connection.alias, _INBOUND_AGENT_FIELDS, agent_values) if agent_values[0] else None
    return number


def call_for_twilio_sid(*, call_sid: str) -> Call | None:
    """The call that already has Twilio's ``call_sid`` (unique), in any organization, or None.

    Only what tells a retry from a collision is loaded: its organization, status and direction.
    """
    if not call_sid:
        return None
    return _one(
        Call.objects.unscoped(_WEBHOOK_REASON)
        .only("organization_id", "status", "direction", "twilio_sid")
        .filter(twilio_sid=call_sid)
    )


def call_for_webhook(*, call_id: str | None = None, call_sid: str | None = None) -> Call | None:
    """The call a callback is about: by our id (``?call=``) when given, else by Twilio's CallSid."""
    queryset = Call.objects.unscoped(_WEBHOOK_REASON).select_related("organization", "agent")
    if call_id:
        try:
            return queryset.filter(pk=uuid.UUID(str(call_id))).first()
        except ValueError:
            return None
    if call_sid:
        return queryset.filter(twilio_sid=call_sid).first()
    return None


# --- the portal ------------------------------------------------------------------------------


def number_filter_candidates(*, organization, number: str) -> list[str]:
    """The blind indexes a typed number may be stored under (raises InvalidPhoneNumber)."""
    normalized = normalize_for_index(parse_e164(number))
    return blind_index_candidates(normalized, purpose=_NUMBER_PURPOSE, organization_id=organization.pk)


def call_list(*, organization, filters: dict | None = None) -> QuerySet[Call]:
    """The organization's calls, newest first. ``filters``: status, direction, agent (id), number (the
    other party's, exact, by blind index), date_from / date_to (dates, in the current time zone)."""
    filters = filters or {}
    queryset = Call.objects.for_org(organization).select_related("organization", "agent")
    if filters.get("status"):
        queryset = queryset.filter(status=filters["status"])
    if filters.get("direction"):
        queryset = queryset.filter(direction=filters["direction"])
    if filters.get("agent"):
        queryset = queryset.filter(agent_id=filters["agent"])
    if filters.get("number"):
        candidates = number_filter_candidates(organization=organization, number=filters["number"])
        # The other party: the caller of an inbound call, the callee of an outbound one.
        queryset = queryset.filter(
            Q(direction=CallDirection.INBOUND, from_number_index__in=candidates)
            | Q(direction=CallDirection.OUTBOUND, to_number_index__in=candidates)
        )
    zone = timezone.get_current_timezone()
    if filters.get("date_from"):
        queryset = queryset.filter(created_at__gte=datetime.combine(filters["date_from"], time.min, tzinfo=zone))
    if filters.get("date_to"):
        end = datetime.combine(filters["date_to"] + timedelta(days=1), time.min, tzinfo=zone)
        queryset = queryset.filter(created_at__lt=end)
    return queryset.order_by("-created_at", "-id")


@dataclass
class CallPage:
    calls: list
    next_cursor: str | None


def _encode_cursor(call: Call) -> str:
    raw = f"{call.created_at.isoformat()}|{call.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[datetime, uuid.UUID]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, _, ident = raw.partition("|")
        moment = datetime.fromisoformat(created)
        if moment.tzinfo is None:
            raise ValueError
        return moment, uuid.UUID(ident)
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ValueError("not a cursor of this list") from None


def call_page(*, queryset: QuerySet[Call], after: str | None = None, size: int = PAGE_SIZE) -> CallPage:
    """One keyset page (``after``: the cursor of the previous page's last call; ValueError if it is not one)."""
    if after:
        created, ident = _decode_cursor(after)
        queryset = queryset.filter(Q(created_at__lt=created) | Q(created_at=created, id__lt=ident))
    calls = list(queryset[: size + 1])
    more = len(calls) > size
    calls = calls[:size]
    return CallPage(calls=calls, next_cursor=_encode_cursor(calls[-1]) if more and calls else None)


def call_rows(calls: list[Call]) -> list[dict]:
    """What each list row shows, decrypting only the other party's number, in one pass over the page."""
    from telephony.services.calls import call_payload

    return [{"call": call, **call_payload(call)} for call in calls]


def call_get(*, organization, call_id) -> Call:
    """One call of the organization; 404 for another organization's or an unknown id."""
    return get_for_org_or_404(
        Call.objects.select_related("organization", "agent", "phone_number"), organization=organization, id=call_id
    )


def call_timeline(*, call: Call) -> QuerySet[CallEvent]:
    return CallEvent.objects.for_org(call.organization).filter(call=call).order_by("occurred_at", "created_at")


def call_turns(call: Call) -> QuerySet[ConversationTurn]:
    """The turns of ``call``'s conversation, in the order they were spoken (texts decrypt as they are read)."""
    return ConversationTurn.objects.for_org(call.organization_id).filter(call=call).order_by("index", "created_at")


def call_for_org_by_twilio_sid(*, organization, call_sid: str) -> Call | None:
    """The organization's call that Twilio knows as ``call_sid``, or None (none yet, or another organization's)."""
    if not call_sid:
        return None
    return _one(Call.objects.for_org(organization).only("id", "organization_id").filter(twilio_sid=call_sid))


def live_call_list(*, organization, limit: int = 10) -> list[Call]:
    """Calls still going on (not finished), newest first, for the dashboard's live panel."""
    since = timezone.now() - timedelta(hours=6)  # a call whose final callback never came is not live forever
    return list(
        Call.objects.for_org(organization)
        .select_related("organization", "agent")
        .exclude(status__in=TERMINAL_STATUSES)
        .filter(created_at__gte=since)
        .order_by("-created_at", "-id")[:limit]
    )


def call_count(*, organization) -> int:
    return Call.objects.for_org(organization).count()



# A call Twilio never reported finished stops counting as live after this long (the longest call allowed).
LIVE_CALL_WINDOW = timedelta(hours=4)


def live_call_count(organization, *, exclude=None) -> int:
    """How many of ``organization``'s calls are under way (queued, dialing, ringing, in progress) now."""
    calls = Call.objects.for_org(organization).exclude(status__in=TERMINAL_STATUSES)
    calls = calls.filter(created_at__gte=timezone.now() - LIVE_CALL_WINDOW)
    if exclude is not None:
        calls = calls.exclude(pk=exclude.pk)
    return calls.count()
