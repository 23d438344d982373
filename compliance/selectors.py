"""Reads of the audit log: filtered lists, keyset pages, exports, chain verification.

Lists are newest first on (occurred_at, id) and paged by keyset (a row
comparison on those two columns), never by OFFSET, so the hundredth page
costs what the first does. Each filter has an index starting with the
organization (compliance/models.py).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import re
import uuid
from dataclasses import dataclass

from django.db import connection
from django.db.models import BooleanField, Q, QuerySet
from django.db.models.expressions import RawSQL
from django.utils.dateparse import parse_datetime

from accounts.api_keys.models import API_KEY_PREFIX
from compliance.chain import GENESIS_HASH, chain_key, event_hash, normalize_ip
from accounts.tenancy import get_for_org_or_404
from compliance.models import AuditChainCheckpoint, AuditEvent, DoNotCallEntry
from jagcall.kernel.rows import equals_any

PAGE_SIZE = 50
EXPORT_BATCH_SIZE = 2000
_ORDER = ("-occurred_at", "-id")
_ACTOR_KEY = re.compile(r"^(user|api_key|oauth_application):[A-Za-z0-9-]{1,80}$")


# --- filters ----------------------------------------------------------------------------


def _actor_q(value: str) -> Q:
    """A person's id, an API key (``jc_live_<prefix>`` or its prefix form), an actor key, or free text."""
    value = value.strip()
    try:
        return Q(actor_key=f"user:{uuid.UUID(value)}")
    except ValueError:
        pass
    if value.startswith(API_KEY_PREFIX):
        prefix = value[len(API_KEY_PREFIX):].split("_", 1)[0]
        return Q(actor_key=f"api_key:{prefix}")
    if _ACTOR_KEY.match(value) or value == "system":
        return Q(actor_key=value)
    return Q(actor_label__icontains=value)


def _action_q(value: str) -> Q:
    """``member.removed`` exactly; ``member.`` or ``member.*`` as a prefix."""
    value = value.strip()
    if value.endswith("*"):
        return Q(action__startswith=value.rstrip("*"))
    if value.endswith("."):
        return Q(action__startswith=value)
    return Q(action=value)


def audit_event_filter(queryset: QuerySet, *, filters: dict) -> QuerySet:
    """Apply the filters of the portal form and the API (compliance.forms.AuditEventFilterSet)."""
    filters = {k: v for k, v in (filters or {}).items() if v not in (None, "")}
    if "actor" in filters:
        queryset = queryset.filter(_actor_q(str(filters["actor"])))
    if "action" in filters:
        queryset = queryset.filter(_action_q(str(filters["action"])))
    if "resource_type" in filters:
        queryset = queryset.filter(resource_type=filters["resource_type"])
    if "resource_id" in filters:
        queryset = queryset.filter(resource_id=str(filters["resource_id"]))
    if "outcome" in filters:
        queryset = queryset.filter(outcome=filters["outcome"])
    if "actor_type" in filters:
        queryset = queryset.filter(actor_type=filters["actor_type"])
    if "ip" in filters:
        ip = normalize_ip(filters["ip"])
        queryset = queryset.filter(ip=ip) if ip else queryset.none()
    if "since" in filters:
        queryset = queryset.filter(occurred_at__gte=filters["since"])
    if "until" in filters:
        queryset = queryset.filter(occurred_at__lt=filters["until"])
    return queryset


def audit_event_list(*, organization, filters: dict | None = None) -> QuerySet:
    """The organization's events matching ``filters``, newest first."""
    queryset = AuditEvent.objects.for_org(organization)
    return audit_event_filter(queryset, filters=filters or {}).order_by(*_ORDER)


# --- keyset pages --------------------------------------------------------------------------


def encode_cursor(event) -> str:
    raw = f"{event.occurred_at.isoformat()}|{event.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str) -> tuple[dt.datetime, uuid.UUID]:
    """(occurred_at, id) of a cursor; ValueError when it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
        when, _sep, ident = raw.partition("|")
        occurred_at = parse_datetime(when)
        if occurred_at is None or occurred_at.tzinfo is None:
            raise ValueError("bad time")
        return occurred_at, uuid.UUID(ident)
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise ValueError("Not a valid page cursor.") from exc


def _position(op: str, occurred_at, ident) -> RawSQL:
    # A row comparison, so PostgreSQL walks the (organization, occurred_at, id) index from the position.
    table = AuditEvent._meta.db_table
    return RawSQL(
        f'("{table}"."occurred_at", "{table}"."id") {op} (%s, %s)', (occurred_at, ident), output_field=BooleanField()
    )


def audit_events_older_than(queryset: QuerySet, occurred_at, ident) -> QuerySet:
    return queryset.filter(_position("<", occurred_at, ident)).order_by(*_ORDER)


@dataclass
class EventPage:
    events: list
    next_cursor: str | None  # older events
    previous_cursor: str | None  # newer events


def audit_event_page(*, queryset: QuerySet, after: str | None = None, before: str | None = None, limit: int = PAGE_SIZE) -> EventPage:
    """One page of ``queryset`` (newest first): the first, the one ``after`` a cursor (older) or ``before`` it (newer).

    Raises ValueError for a cursor that is not one of ours.
    """
    if after:
        occurred_at, ident = decode_cursor(after)
        rows = list(audit_events_older_than(queryset, occurred_at, ident)[: limit + 1])
        events = rows[:limit]
        return EventPage(
            events=events,
            next_cursor=encode_cursor(events[-1]) if len(rows) > limit else None,
            previous_cursor=encode_cursor(events[0]) if events else None,
        )
    if before:
        occurred_at, ident = decode_cursor(before)
        rows = list(queryset.filter(_position(">", occurred_at, ident)).order_by("occurred_at", "id")[: limit + 1])
        events = list(reversed(rows[:limit]))
        return EventPage(
            events=events,
            next_cursor=encode_cursor(events[-1]) if events else None,
            previous_cursor=encode_cursor(events[0]) if len(rows) > limit else None,
        )
    rows = list(queryset.order_by(*_ORDER)[: limit + 1])
    events = rows[:limit]
    return EventPage(events=events, next_cursor=encode_cursor(events[-1]) if len(rows) > limit else None, previous_cursor=None)


def audit_event_iter(*, queryset: QuerySet, batch_size: int | None = None):
    """Every event of ``queryset``, newest first, fetched ``batch_size`` at a time by keyset."""
    batch_size = batch_size or EXPORT_BATCH_SIZE
    batch = list(queryset.order_by(*_ORDER)[:batch_size])
    while batch:
        yield from batch
        if len(batch) < batch_size:
            return
        last = batch[-1]
        batch = list(audit_events_older_than(queryset, last.occurred_at, last.id)[:batch_size])


# --- chain verification ---------------------------------------------------------------------

_HASHED_COLUMNS = (
    "id", "occurred_at", "organization_id", "seq", "prev_hash", "actor_type", "actor_key", "actor_label",
    "api_key_prefix", "ip", "user_agent", "action", "resource_type", "resource_id", "outcome", "changes",
    "metadata", "request_id", "hash",
)


@dataclass
class ChainBreak:
    seq: int
    event_id: str
    reason: str


@dataclass
class ChainReport:
    organization_id: str | None
    chain_label: str  # the organization's slug, or "platform"
    events: int = 0
    first_seq: int | None = None
    last_seq: int | None = None
    resumed_from_checkpoint: int | None = None
    broken: ChainBreak | None = None

    @property
    def ok(self) -> bool:
        return self.broken is None


def _checkpoint_hash(organization_id, seq: int) -> str | None:
    checkpoint = (
        AuditChainCheckpoint.objects.filter(
            Q(organization__isnull=True) if organization_id is None else Q(organization_id=organization_id), seq=seq
        )
        .values_list("hash", flat=True)
        .first()
    )
    return checkpoint


def audit_chain_verify(*, organization_id, chain_label: str | None = None) -> ChainReport:
    """Recompute one chain from its start (or its latest purge checkpoint) and report the first broken link.

    A link is broken when an event's hash does not match its content, when
    its prev_hash is not the previous event's hash, or when a seq is missing
    (a deleted row), including at the start with no checkpoint to account for it.
    """
    report = ChainReport(
        organization_id=str(organization_id) if organization_id else None,
        chain_label=chain_label or chain_key(organization_id),
    )
    rows = (
        AuditEvent.objects.for_chain(organization_id)
        .order_by("seq")
        .values_list(*_HASHED_COLUMNS, named=True)
        .iterator(chunk_size=5000)
    )
    expected_seq = expected_prev = None
    for row in rows:
        if expected_seq is None:
            report.first_seq = row.seq
            if row.seq == 1:
                expected_prev = GENESIS_HASH
            else:
                expected_prev = _checkpoint_hash(organization_id, row.seq - 1)
                if expected_prev is None:
                    report.broken = ChainBreak(
                        row.seq, str(row.id), f"events before seq {row.seq} are missing and no purge checkpoint accounts for them"
                    )
                    return report
                report.resumed_from_checkpoint = row.seq - 1
            expected_seq = row.seq
        if row.seq != expected_seq:
            report.broken = ChainBreak(row.seq, str(row.id), f"seq {expected_seq} is missing (expected it before seq {row.seq})")
            return report
        if row.prev_hash != expected_prev:
            report.broken = ChainBreak(row.seq, str(row.id), f"prev_hash does not match the hash of seq {row.seq - 1}")
            return report
        if event_hash(row) != row.hash:
            report.broken = ChainBreak(row.seq, str(row.id), "hash does not match the event's content (the row was changed)")
            return report
        expected_prev, expected_seq = row.hash, row.seq + 1
        report.events += 1
        report.last_seq = row.seq
    return report


def audit_chains_verify(*, organization=None) -> list[ChainReport]:
    """Verify one organization's chain, or every chain (the platform's first)."""
    from accounts.models import Organization

    if organization is not None:
        return [audit_chain_verify(organization_id=organization.pk, chain_label=organization.slug)]
    reports = [audit_chain_verify(organization_id=None, chain_label="platform")]
    for organization_id, slug in Organization.objects.order_by("created_at", "id").values_list("id", "slug"):
        reports.append(audit_chain_verify(organization_id=organization_id, chain_label=slug))
    return reports


# --- do-not-call ----------------------------------------------------------------------------


def do_not_call_list(*, organization) -> QuerySet:
    """The organization's do-not-call entries, newest first."""
    return DoNotCallEntry.objects.for_org(organization).order_by("-created_at", "-id")


def do_not_call_get(*, organization, id):
    """One entry of the organization, or Http404 (also for another organization's id)."""
    return get_for_org_or_404(DoNotCallEntry, organization=organization, id=id)


def do_not_call_lookup(*, organization, number: str):
    """The entry for ``number`` (any way of writing it), or None. Finds it by blind index, decrypts nothing."""
    field = DoNotCallEntry._meta.get_field("number_index")
    candidates = field.candidates(number, organization_id=organization.id)
    return DoNotCallEntry.objects.for_org(organization).filter(number_index__in=candidates).first()


@dataclass(frozen=True)
class DoNotCallListing:
    """What a gate needs to know of an entry: where it came from and since when."""

    source: str
    created_at: dt.datetime


def do_not_call_listing(*, organization, number: str) -> DoNotCallListing | None:
    """``do_not_call_lookup`` for a gate on the hot path: one indexed read, no model built, nothing decrypted.

    Raw SQL over the organization's own rows (the WHERE names it), so the ORM's query building is not paid
    on every text and call.
    """
    field = DoNotCallEntry._meta.get_field("number_index")
    matches, candidate = equals_any("number_index", field.candidates(number, organization_id=organization.id))
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT source, created_at FROM {DoNotCallEntry._meta.db_table} "  # noqa: S608 (the model's own table)
            f"WHERE organization_id = %s AND {matches} LIMIT 1",
            [organization.id, candidate],
        )
        row = cursor.fetchone()
    return DoNotCallListing(source=row[0], created_at=row[1]) if row else None
