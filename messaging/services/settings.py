"""Messaging settings of an organization: its HELP answer, and per number whether its agent answers texts
and its A2P 10DLC registration.

Every change needs ``numbers.manage`` (owners and admins, as managing numbers) and is audited with who made it.
``messaging_settings_get`` is what the settings page shows.
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from django.db import transaction

from accounts.principals import as_principal
from compliance.services import audit_record
from jagcall.kernel.errors import ApplicationError
from messaging.models import A2PStatus, MessagingProfile, NumberMessaging
from messaging.services.a2p import a2p_status_refresh
from messaging.services.inbound import help_text as effective_help_text
from telephony.models import PhoneNumber

PERMISSION = "numbers.manage"
HELP_TEXT_MAX = MessagingProfile._meta.get_field("help_text").max_length


def _require(actor, organization):
    principal = as_principal(actor, organization)
    principal.require(PERMISSION)
    return principal


def _held_number(organization, phone_number: PhoneNumber) -> PhoneNumber:
    """The number, locked, if it is one the organization holds and that can text."""
    if phone_number.organization_id != organization.id:
        raise ApplicationError("No such number.", code="not_found", status=404)
    held = PhoneNumber.objects.for_org(organization).select_for_update(of=("self",)).select_related("agent")
    number = held.get(pk=phone_number.pk)
    if number.released_at is not None:
        raise ApplicationError(f"{number.number} was released.", code="released", status=404)
    if not number.sms_enabled:
        raise ApplicationError(
            f"{number.number} cannot send or receive texts, so it has no messaging settings. "
            "Buy a number that can text under Numbers.",
            code="not_sms_capable", status=409,
        )  # fmt: skip
    return number


# --- reading --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NumberSettings:
    """One SMS-capable number as the settings page shows it."""

    phone_number: PhoneNumber
    agent_replies: bool
    a2p_status: str
    a2p_status_label: str
    a2p_checked_at: object  # datetime | None

    @property
    def has_agent(self) -> bool:
        return self.phone_number.agent_id is not None


@dataclass(frozen=True)
class MessagingSettings:
    help_text: str  # what the organization wrote ("" when it uses the default)
    default_help_text: str  # what HELP answers now, when it wrote nothing ("" when it did)
    numbers: list[NumberSettings]


def messaging_settings_get(*, organization) -> MessagingSettings:
    profile = MessagingProfile.objects.for_org(organization).first()
    numbers = list(
        PhoneNumber.objects.for_org(organization)
        .filter(released_at__isnull=True, sms_enabled=True)
        .select_related("agent")
        .order_by("number", "created_at")
    )
    rows = {
        row.phone_number_id: row
        for row in NumberMessaging.objects.for_org(organization).filter(phone_number__in=[n.pk for n in numbers])
    }
    shown = []
    for number in numbers:
        row = rows.get(number.pk)
        status = row.a2p_status if row is not None else A2PStatus.UNKNOWN
        shown.append(
            NumberSettings(
                phone_number=number,
                agent_replies=bool(row and row.agent_replies),
                a2p_status=status,
                a2p_status_label=A2PStatus(status).label,
                a2p_checked_at=row.a2p_checked_at if row is not None else None,
            )
        )
    own = profile.help_text.strip() if profile is not None else ""
    # With no text of its own, HELP is answered with inbound's default, which names the organization.
    default = "" if own else effective_help_text(organization)
    return MessagingSettings(help_text=own, default_help_text=default, numbers=shown)


# --- HELP text ------------------------------------------------------------------------------------


def clean_help_text(value) -> str:
    text = " ".join(str(value or "").split())
    if len(text) > HELP_TEXT_MAX:
        raise ApplicationError(
            f"The HELP answer is {len(text)} characters long: keep it to {HELP_TEXT_MAX}.",
            code="too_long", field="help_text",
        )  # fmt: skip
    if any(unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cs") for ch in text):
        raise ApplicationError(
            "The HELP answer holds invisible control characters: type it again as plain text.",
            code="invalid", field="help_text",
        )  # fmt: skip
    if text and "STOP" not in text.upper():
        raise ApplicationError(
            "Carriers require the HELP answer to say how to opt out: add “Reply STOP to unsubscribe”.",
            code="missing_opt_out", field="help_text",
        )  # fmt: skip
    return text


@transaction.atomic
def help_text_update(*, organization, actor, help_text: str) -> MessagingProfile:
    """What the organization answers to HELP ("" sends the default, which names the organization)."""
    principal = _require(actor, organization)
    text = clean_help_text(help_text)
    profile, _created = MessagingProfile.objects.get_or_create(organization=organization)
    profile = MessagingProfile.objects.for_org(organization).select_for_update().get(pk=profile.pk)
    if profile.help_text == text:
        return profile
    before = profile.help_text
    profile.help_text = text
    profile.save(update_fields=["help_text"])
    audit_record(
        action="messaging_profile.help_text_changed", organization=organization, actor=principal, resource=profile,
        changes={"help_text": {"before": before, "after": text}},
    )  # fmt: skip
    return profile


# --- per number -----------------------------------------------------------------------------------


@transaction.atomic
def agent_replies_set(*, organization, actor, phone_number: PhoneNumber, enabled: bool) -> NumberMessaging:
    """Let the number's agent answer the texts it receives, or stop it (members still answer in the inbox)."""
    principal = _require(actor, organization)
    number = _held_number(organization, phone_number)
    if enabled and number.agent is None:
        raise ApplicationError(
            f"No agent answers {number.number}: choose one for it under Numbers, then let it answer texts.",
            code="no_agent", field="agent_replies", status=409,
        )  # fmt: skip
    row, _created = NumberMessaging.objects.get_or_create(organization=organization, phone_number=number)
    row = NumberMessaging.objects.for_org(organization).select_for_update().get(pk=row.pk)
    if row.agent_replies == enabled:
        return row
    row.agent_replies = enabled
    row.save(update_fields=["agent_replies"])
    audit_record(
        action="phone_number.agent_replies_enabled" if enabled else "phone_number.agent_replies_disabled",
        organization=organization, actor=principal, resource=number,
        changes={"agent_replies": {"before": not enabled, "after": enabled}},
        metadata={"number": number.number, "agent_name": number.agent.name if number.agent else None},
    )  # fmt: skip
    return row


def a2p_check(*, organization, actor, phone_number: PhoneNumber) -> NumberMessaging:
    """A member's "Check now": ask Twilio for the number's A2P 10DLC registration (services/a2p.py)."""
    principal = _require(actor, organization)
    with transaction.atomic():
        number = _held_number(organization, phone_number)
    # Twilio is asked outside any transaction: no row stays locked while it answers.
    return a2p_status_refresh(phone_number=number, actor=principal)
