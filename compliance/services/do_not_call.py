"""The organization's internal do-not-call list: add and remove, each audited.

The pre-dial gate (telephony) and, later, texting read it through
``compliance.selectors.do_not_call_lookup``. A number is stored encrypted and
found by blind index in its E.164 form, so any way of writing the same
number finds the same entry.

Who may do what: anyone who may place calls may add a number (adding only
ever protects someone); taking a number off needs ``compliance.manage``
(owners and admins), because it allows calling that person again.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction

from accounts.principals import Kind, as_principal
from compliance.actors import resolve_actor
from compliance.models import DoNotCallEntry, DoNotCallReason, DoNotCallSource
from compliance.selectors import do_not_call_listing
from compliance.services.audit import audit_record
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.phone import InvalidPhoneNumber, parse_e164
from jagcall.kernel.rows import UNREAD

# A provider's webhook (an SMS "STOP") adds numbers for the person who asked; it holds no role.
_ADDERS_WITHOUT_ROLE = (Kind.WEBHOOK, Kind.SYSTEM)


def _clean_number(number: str) -> str:
    try:
        return parse_e164(number)
    except InvalidPhoneNumber as error:
        message = str(error)
        if "+14155550100" not in message:
            message = f"{message} Use international format, e.g. +14155550100."
        raise ApplicationError(message, code="invalid_number", field="number") from None


def _masked(number: str) -> str:
    """What the audit log keeps of a number: enough to recognise it, not to dial it."""
    return f"{number[:-4][:3]}•••{number[-2:]}" if len(number) > 6 else "•••"


def _checked(organization, actor, number: str, reason: str, source: str):
    """(principal, E.164 number) once the actor may add and the entry's facts are known; else ApplicationError."""
    principal = as_principal(actor, organization)
    if principal.kind not in _ADDERS_WITHOUT_ROLE:
        principal.require("product.use")
    number = _clean_number(number)
    if reason not in DoNotCallReason.values:
        raise ApplicationError(f"Choose a reason among: {', '.join(DoNotCallReason.values)}.", field="reason")
    if source not in DoNotCallSource.values:
        raise ApplicationError(f"Choose a source among: {', '.join(DoNotCallSource.values)}.", field="source")
    return principal, number


def _entry_create(organization, principal, number: str, reason: str, source: str) -> DoNotCallEntry | None:
    """The new entry, audited; None when a concurrent request listed the same number a moment ago."""
    entry = DoNotCallEntry(
        organization=organization,
        number=number,
        reason=reason,
        source=source,
        added_by=resolve_actor(principal, None).label,
    )
    try:
        with transaction.atomic():
            entry.save()
    except IntegrityError:
        return None
    audit_record(
        action="do_not_call.added",
        organization=organization,
        actor=principal,
        resource=entry,
        changes={"reason": {"before": None, "after": reason}, "source": {"before": None, "after": source}},
        metadata={"number": _masked(number)},
    )
    return entry


@transaction.atomic
def do_not_call_add(
    *, organization, actor, number: str, reason: str = DoNotCallReason.REQUESTED, source: str = DoNotCallSource.PORTAL
) -> DoNotCallEntry:
    """Put ``number`` on the organization's do-not-call list; refused (409) when it is already there."""
    principal, number = _checked(organization, actor, number, reason, source)
    existing = do_not_call_listing(organization=organization, number=number)
    if existing is not None:
        raise ApplicationError(
            f"{number} is already on the do-not-call list (since {existing.created_at:%Y-%m-%d}).",
            code="already_listed",
            field="number",
            status=409,
        )
    entry = _entry_create(organization, principal, number, reason, source)
    if entry is None:  # the same number added at the same moment by another request
        raise ApplicationError(
            f"{number} is already on the do-not-call list.", code="already_listed", field="number", status=409
        )
    return entry


@transaction.atomic(savepoint=False)  # its errors end the caller's transaction: no savepoint to pay for
def do_not_call_ensure(
    *, organization, actor, number: str, reason: str = DoNotCallReason.REQUESTED, source: str = DoNotCallSource.PORTAL,
    listed=UNREAD,
) -> DoNotCallEntry | None:
    """``do_not_call_add`` for whoever only needs the number listed (an SMS STOP): the new entry, or None
    when it was listed already. Being listed is not an error here, so it costs the caller's transaction
    nothing; a bad number or an actor without the right still raises ApplicationError.

    ``listed``: whether the caller's transaction read the number on the list already (``UNREAD``: look it up
    here). A number listed meanwhile by another request is found by the entry's unique index."""
    principal, number = _checked(organization, actor, number, reason, source)
    if listed is UNREAD:
        listed = do_not_call_listing(organization=organization, number=number) is not None
    if listed:
        return None
    return _entry_create(organization, principal, number, reason, source)


@transaction.atomic
def do_not_call_remove(*, organization, actor, entry: DoNotCallEntry) -> None:
    """Take an entry off the list (owners and admins): the number may be called again."""
    principal = as_principal(actor, organization)
    principal.require("compliance.manage")
    if entry.organization_id != organization.id:  # pragma: no cover - callers look entries up with for_org
        raise ApplicationError("No such do-not-call entry.", code="not_found", status=404)
    number, entry_id = entry.number, entry.id
    changes = {"reason": {"before": entry.reason, "after": None}}
    metadata = {"number": _masked(number), "added_by": entry.added_by, "added_at": entry.created_at.isoformat()}
    DoNotCallEntry.objects.for_org(organization).filter(id=entry_id).delete()
    audit_record(
        action="do_not_call.removed",
        organization=organization,
        actor=principal,
        resource_type="do_not_call_entry",
        resource_id=str(entry_id),
        changes=changes,
        metadata=metadata,
    )
