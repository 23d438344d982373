"""The pre-dial gate: every outbound call passes it before anything is written or dialled.

The gate is a list of rules (``RULES``), each a small function

    rule(organization, to_number, from_number, now) -> Refusal | None

with a stable ``code`` (what an API client branches on) and a message a
person can act on. ``pre_dial_gate`` raises ``DialRefused`` with the first
refusal; ``pre_dial_check`` returns them all (a form can show each at its
field). The portal form, the API and any later caller (campaigns) go through
``telephony.services.outbound.place_call``, which calls the gate first.

Rules, in order:

- ``invalid_number``: the destination is not a valid number in E.164.
- ``no_calling_rights``: the organization may not place calls (not active).
- ``billing_standing`` (code ``billing_restricted``): the organization's
  subscription is unpaid or canceled (``outbound_refusal``); past due still calls.
- ``caller_number``: the caller number is not an active voice number of the
  organization.
- ``do_not_call``: the destination is on the organization's do-not-call list
  (compliance).
- Opt-outs by text reach calls through the do-not-call list: a texted STOP keyword lists the sender
  (messaging/services/inbound.py), so the rule above refuses the call. Texts have their own gate
  (messaging/services/gate.py), which reuses these rules where they apply. Consent (compliance) is
  added with ``register_rule(rule, before="calling_hours")`` from its app's ``ready()``.
- ``concurrent_calls`` (code ``concurrent_call_limit``): the plan's calls at once are
  all under way, inbound and outbound together.
- ``spend_cap`` (code ``spend_cap_reached``): this month's usage charges reached the
  owner's spend cap (billing; one indexed read of the flag usage sets).
- ``calling_hours``: 08:00-21:00 in the destination's local time (47 CFR
  64.1200(c)(1)). The zones come from the number (``phonenumbers``); where a
  number may be in several zones, every one of them must be inside the
  window, and a number whose zone is unknown is refused: we cannot show the
  call is lawful.

[!!] Rules read only; a refusal writes nothing and reaches no provider.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.utils import timezone

from accounts.entitlements import Standing, limit_refusal, outbound_refusal
from accounts.models import OrganizationStatus
from billing.services.usage import spend_cap_refusal
from compliance.selectors import do_not_call_lookup
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.phone import InvalidPhoneNumber, parse_e164, time_zones_of
from telephony.models import PhoneNumber

# Local time in which calls are allowed: [OPENS, CLOSES).
OPENS = dt.time(8, 0)
CLOSES = dt.time(21, 0)
FORMAT_HINT = "Use international format, e.g. +14155550100."


@dataclass(frozen=True)
class Refusal:
    """Why a call may not be placed. ``field``: the input it concerns ("to", "from"), or None."""

    code: str
    message: str
    field: str | None = None


class DialRefused(ApplicationError):
    """The gate said no: 422 in the API with the rule's code; the portal shows it at its field."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message, code=code, field=field, status=422)
        self.refusal = Refusal(code=code, message=message, field=field)


Rule = Callable[..., "Refusal | None"]


def _e164(to_number) -> str | None:
    try:
        return parse_e164(str(to_number or ""))
    except InvalidPhoneNumber:
        return None


# --- the rules ---------------------------------------------------------------------------


def invalid_number(organization, to_number, from_number, now) -> Refusal | None:
    text = str(to_number or "").strip()
    try:
        e164 = parse_e164(text)
    except InvalidPhoneNumber as error:
        message = str(error)
        if FORMAT_HINT not in message and "+14155550100" not in message:
            message = f"{message} {FORMAT_HINT}"
        return Refusal("invalid_number", message, "to")
    if e164 != text:
        return Refusal("invalid_number", f"Write the number in E.164, without spaces or punctuation: {e164}.", "to")
    return None


def no_calling_rights(organization, to_number, from_number, now) -> Refusal | None:
    if organization.status != OrganizationStatus.ACTIVE:
        return Refusal(
            "no_calling_rights",
            f"{organization.name} cannot place calls: the organization is {organization.get_status_display().lower()}.",
        )
    return None


def billing_standing(organization, to_number, from_number, now) -> Refusal | None:
    """Nothing is dialled while the subscription is unpaid or canceled (the restricted standing)."""
    if getattr(organization, "billing_standing", Standing.GOOD) != Standing.RESTRICTED:
        return None
    return Refusal("billing_restricted", outbound_refusal(organization) or "Outbound calls are paused.")


def caller_number(organization, to_number, from_number, now) -> Refusal | None:
    """``from_number``: one of the organization's PhoneNumber rows, or its E.164; None skips the rule."""
    if from_number is None:
        return None
    if isinstance(from_number, PhoneNumber):
        number = from_number
        usable = number.organization_id == organization.id and number.released_at is None and number.voice_enabled
        shown = number.number
    else:
        shown = str(from_number)
        number = (
            PhoneNumber.objects.for_org(organization)
            .filter(number=_e164(from_number) or shown, released_at__isnull=True, voice_enabled=True)
            .first()
        )
        usable = number is not None
    if not usable:
        return Refusal(
            "caller_number",
            f"{shown} is not one of {organization.name}'s active voice numbers. "
            "Choose a caller number from Phone numbers, or buy one there.",
            "from",
        )
    return None


def do_not_call(organization, to_number, from_number, now) -> Refusal | None:
    e164 = _e164(to_number)
    if e164 is None:
        return None
    entry = do_not_call_lookup(organization=organization, number=e164)
    if entry is not None:
        return Refusal(
            "do_not_call",
            f"{e164} is on {organization.name}'s do-not-call list (since {entry.created_at:%Y-%m-%d}): it may not be "
            "called. An owner or admin can take it off the list if the person asked to be called again.",
            "to",
        )
    return None


def _zones(e164: str) -> tuple[list[ZoneInfo], list[str]]:
    known, unknown = [], []
    for name in time_zones_of(e164):
        try:
            known.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            unknown.append(name)
    return known, unknown


def _inside(zone: ZoneInfo, instant: dt.datetime) -> bool:
    local = instant.astimezone(zone).time()
    return OPENS <= local < CLOSES


def calling_opens_at(zones: list[ZoneInfo], now: dt.datetime) -> dt.datetime | None:
    """The first instant from ``now`` at which it is 08:00-21:00 in every zone, or None within three days.

    Candidates: ``now`` and each zone's next openings (a window opens only at some zone's 08:00).
    """
    candidates = {now}
    for zone in zones:
        local_day = now.astimezone(zone).date()
        for days in range(4):
            opening = dt.datetime.combine(local_day + dt.timedelta(days=days), OPENS, tzinfo=zone)
            if opening >= now:
                candidates.add(opening.astimezone(dt.UTC))
    for instant in sorted(candidates):
        if all(_inside(zone, instant) for zone in zones):
            return instant
    return None


def _wait(delta: dt.timedelta) -> str:
    minutes = max(1, int((delta.total_seconds() + 59) // 60))
    hours, minutes = divmod(minutes, 60)
    if hours and minutes:
        return f"{hours} h {minutes} min"
    return f"{hours} h" if hours else f"{minutes} min"


def calling_hours(organization, to_number, from_number, now) -> Refusal | None:
    e164 = _e164(to_number)
    if e164 is None:
        return None
    zones, unknown = _zones(e164)
    if not zones or unknown:
        return Refusal(
            "calling_hours",
            f"The local time at {e164} cannot be told (its time zone is unknown), so it cannot be shown to be "
            f"between {OPENS:%H:%M} and {CLOSES:%H:%M} there, and the call is refused.",
            "to",
        )
    outside = [zone for zone in zones if not _inside(zone, now)]
    if not outside:
        return None
    local_times = ", ".join(f"{now.astimezone(zone):%H:%M} in {zone.key}" for zone in outside[:3])
    if len(outside) > 3:
        local_times += f" and {len(outside) - 3} more zones outside the window"
    several = len(zones) > 1
    where = f"in every time zone {e164} may be in ({len(zones)})" if several else f"in {zones[0].key}"
    message = (
        f"Calls are allowed only {OPENS:%H:%M}-{CLOSES:%H:%M} in the callee's local time {where}; it is {local_times}."
    )
    opens = calling_opens_at(zones, now)
    if opens is None:
        message += " These zones are too far apart to share a calling window."
    else:
        local = opens.astimezone(outside[0])
        message += (
            f" Calling opens at {local:%H:%M} {outside[0].key} time"
            f" ({opens:%Y-%m-%d %H:%M} UTC, in {_wait(opens - now)})."
        )
    return Refusal("calling_hours", message, "to")


# Fictional numbers, one a zone, that simulated mode suggests: US first (555-01xx is reserved for
# fiction), then zones that between them keep some number inside calling hours at any hour of the day.
EXAMPLE_DESTINATIONS: tuple[tuple[str, str], ...] = (
    ("+12125550143", "New York"),
    ("+13125550143", "Chicago"),
    ("+13035550143", "Denver"),
    ("+14155550143", "San Francisco"),
    ("+18085550143", "Honolulu"),
    ("+442079460143", "London"),
    ("+493012345678", "Berlin"),
    ("+81312345678", "Tokyo"),
    ("+61291234567", "Sydney"),
)


def destinations_open_now(*, now: dt.datetime | None = None, limit: int = 3) -> list[dict]:
    """Up to ``limit`` of EXAMPLE_DESTINATIONS inside calling hours at ``now``: number, place, local time."""
    now = now or timezone.now()
    open_now = []
    for number, place in EXAMPLE_DESTINATIONS:
        zones, unknown = _zones(number)
        if zones and not unknown and all(_inside(zone, now) for zone in zones):
            open_now.append({"number": number, "place": place, "local_time": f"{now.astimezone(zones[0]):%H:%M}"})
    return open_now[:limit]


def concurrent_calls(organization, to_number, from_number, now) -> Refusal | None:
    """The plan's calls at once (``concurrent_calls``), inbound and outbound together."""
    from telephony.selectors.calls import live_call_count

    refusal = limit_refusal(organization, "concurrent_calls", used=live_call_count(organization))
    if refusal is None:
        return None
    return Refusal("concurrent_call_limit", f"{refusal} Otherwise, place this call when one of them ends.", None)


def spend_cap(organization, to_number, from_number, now) -> Refusal | None:
    """This month's spend cap is reached: no new outbound call until it is raised or the month ends."""
    refusal = spend_cap_refusal(organization, now=now)
    return None if refusal is None else Refusal("spend_cap_reached", refusal)


# --- the gate -----------------------------------------------------------------------------

RULES: list[Rule] = [
    invalid_number, no_calling_rights, billing_standing, caller_number, do_not_call, concurrent_calls, spend_cap,
    calling_hours,
]  # fmt: skip


def register_rule(rule: Rule, *, before: str | None = None) -> None:
    """Add a rule (from another app's ``ready()``), before the rule named ``before`` or last. Idempotent."""
    if rule in RULES:
        return
    names = [existing.__name__ for existing in RULES]
    RULES.insert(names.index(before) if before in names else len(RULES), rule)


def pre_dial_check(*, organization, to_number, from_number=None, now: dt.datetime | None = None) -> list[Refusal]:
    """Every rule's refusal (empty: the call may be placed). Reads only."""
    now = now or timezone.now()
    if timezone.is_naive(now):
        raise ValueError("now must be timezone-aware")
    refusals = []
    for rule in RULES:
        refusal = rule(organization, to_number, from_number, now)
        if refusal is not None:
            refusals.append(refusal)
    return refusals


def pre_dial_gate(*, organization, to_number, from_number=None, now: dt.datetime | None = None) -> str:
    """Raise DialRefused with the first rule that refuses; return the destination in E.164 when all pass."""
    now = now or timezone.now()
    for rule in RULES:
        refusal = rule(organization, to_number, from_number, now)
        if refusal is not None:
            raise DialRefused(refusal.code, refusal.message, refusal.field)
    return parse_e164(str(to_number))
