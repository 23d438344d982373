"""The pre-send gate: every text passes it before anything is written or sent to Twilio.

It is the pre-dial gate (telephony/services/dialing.py) seen from texts: the
same ``Refusal`` (a stable ``code``, a message a person can act on, the field
it concerns), raised as ``SendRefused`` (422). Rules, in order:

- ``invalid_number``: the destination is not a valid number in E.164 (the dialing rule).
- ``no_messaging_rights``: the organization is not active, or its plan does not include messaging.
- ``billing_standing`` (code ``billing_restricted``): the organization's subscription is unpaid or
  canceled (``outbound_refusal``); past due still sends.
- ``spend_cap`` (code ``spend_cap_reached``): this month's usage charges reached the owner's spend cap
  (billing's flag). Automatic answers to keywords (STOP, START, HELP) are not gated: they are sent in
  the webhook's TwiML whatever the standing or the cap.
- ``sender_number``: the sending number is not one of the organization's active, SMS-capable numbers.
- ``do_not_call``: the destination is on the organization's do-not-call list. Entries that a texted
  opt-out created (source "sms") are left to the next rule: a person who texted STOP to one number
  and START back to it may be texted from it again, while calls stay refused until an owner takes
  the entry off (texts and calls are the same under the TCPA, but a texted START is consent by the
  same means for texts only).
- ``opted_out``: the recipient unsubscribed from this sending number (``Subscription``).
- ``quiet_hours``: a text marked as marketing is sent only 08:00-21:00 in the recipient's local
  time (the calling window of 47 CFR 64.1200(c)(1)); other texts (replies, reminders the person
  asked for) are not held.

[!!] Rules read only; a refusal writes nothing and reaches no provider. The check makes two indexed reads
(the do-not-call entry; the pair's subscription: ``messaging_subscription_once``), in plain SQL and in one
round trip (``recipient_standing``): the first rule that needs either reads both.
The organization row it is given carries the rest (status, plan, billing standing, the month the spend
cap was reached), and numbers are parsed once (cached), so a check stays near a millisecond with
millions of subscriptions (bench/sms_webhook.py).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache

from django.utils import timezone

from accounts.entitlements import Standing, has_entitlement, outbound_refusal
from accounts.models import OrganizationStatus
from billing.services.usage import spend_cap_refusal
from compliance.models import DoNotCallSource
from compliance.selectors import do_not_call_listing
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.phone import InvalidPhoneNumber, parse_e164
from messaging.selectors import RecipientStanding, recipient_standing, subscription_state
from telephony.models import PhoneNumber
from telephony.services import dialing
from telephony.services.dialing import Refusal


class SendRefused(ApplicationError):
    """The gate said no: 422 in the API with the rule's code; the portal shows it at its field."""

    def __init__(self, code: str, message: str, field: str | None = None):
        super().__init__(message, code=code, field=field, status=422)
        self.refusal = Refusal(code=code, message=message, field=field)


@lru_cache(maxsize=4096)
def _parsed(text: str) -> tuple[str | None, str]:
    """(E.164, "") or (None, what is wrong): parsed once per number, whichever rule asks first."""
    try:
        return parse_e164(text), ""
    except InvalidPhoneNumber as error:
        return None, str(error)


def _e164(to_number) -> str | None:
    return _parsed(str(to_number or "").strip())[0]




# --- the rules (organization, to_number, sender: PhoneNumber | None, now, marketing) ----------


def invalid_number(organization, to_number, sender, now, marketing, reads=None) -> Refusal | None:
    text = str(to_number or "").strip()
    e164, problem = _parsed(text)
    if e164 is None:
        if dialing.FORMAT_HINT not in problem and "+14155550100" not in problem:
            problem = f"{problem} {dialing.FORMAT_HINT}"
        return Refusal("invalid_number", problem, "to")
    if e164 != text:
        return Refusal("invalid_number", f"Write the number in E.164, without spaces or punctuation: {e164}.", "to")
    return None


def no_messaging_rights(organization, to_number, sender, now, marketing, reads=None) -> Refusal | None:
    if organization.status != OrganizationStatus.ACTIVE:
        return Refusal(
            "no_messaging_rights",
            f"{organization.name} cannot send texts: the organization is {organization.get_status_display().lower()}.",
        )
    if not has_entitlement(organization, "messaging"):
        return Refusal(
            "no_messaging_rights",
            f"{organization.name}'s plan does not include text messaging: the Starter, Pro and Enterprise plans do.",
        )
    return None


def billing_standing(organization, to_number, sender, now, marketing, reads=None) -> Refusal | None:
    if getattr(organization, "billing_standing", Standing.GOOD) != Standing.RESTRICTED:
        return None
    return Refusal("billing_restricted", outbound_refusal(organization) or "Outbound texts are paused.")


def spend_cap(organization, to_number, sender, now, marketing, reads=None) -> Refusal | None:
    refusal = spend_cap_refusal(organization, now=now)
    return None if refusal is None else Refusal("spend_cap_reached", refusal)


def sender_number(organization, to_number, sender, now, marketing, reads=None) -> Refusal | None:
    usable = (
        isinstance(sender, PhoneNumber)
        and sender.organization_id == organization.id
        and sender.released_at is None
        and sender.sms_enabled
    )
    if usable:
        return None
    shown = sender.number if isinstance(sender, PhoneNumber) else str(sender or "The sending number")
    return Refusal(
        "sender_number",
        f"{shown} is not one of {organization.name}'s active numbers that can send texts. "
        "Choose another number, or buy an SMS-capable one under Phone numbers.",
        "from",
    )


def do_not_call(organization, to_number, sender, now, marketing, reads=None) -> Refusal | None:
    e164 = _e164(to_number)
    if e164 is None:
        return None
    entry = reads.do_not_call() if reads is not None else do_not_call_listing(organization=organization, number=e164)
    if entry is None or entry.source == DoNotCallSource.SMS:
        return None
    return Refusal(
        "do_not_call",
        f"{e164} is on {organization.name}'s do-not-call list (since {entry.created_at:%Y-%m-%d}): it may not be "
        "texted. An owner or admin can take it off the list if the person asked to be contacted again.",
        "to",
    )


def opted_out(organization, to_number, sender, now, marketing, reads=None) -> Refusal | None:
    e164 = _e164(to_number)
    if e164 is None or not isinstance(sender, PhoneNumber):
        return None
    subscription = reads.subscription() if reads is not None else subscription_state(sender, e164)
    if subscription is None or subscription.subscribed:
        return None
    return Refusal(
        "opted_out",
        f"{e164} unsubscribed from texts sent by {sender.number} on {subscription.changed_at:%Y-%m-%d}. "
        f"Nothing can be sent from this number until they text START to {sender.number}.",
        "to",
    )


def quiet_hours(organization, to_number, sender, now, marketing, reads=None) -> Refusal | None:
    if not marketing:
        return None
    refusal = dialing.calling_hours(organization, to_number, None, now)
    if refusal is None:
        return None
    message = refusal.message.replace("Calls are allowed only", "Marketing texts are sent only").replace(
        "the callee's local time", "the recipient's local time"
    ).replace("Calling opens", "Sending opens").replace("and the call is refused", "and the text is refused")
    return Refusal("quiet_hours", message, "to")


RULES = [
    invalid_number, no_messaging_rights, billing_standing, spend_cap, sender_number, do_not_call, opted_out,
    quiet_hours,
]  # fmt: skip


class _Reads:
    """What one check reads of its recipient, read once for the rules that ask (``do_not_call``,
    ``opted_out``): both rows in one round trip when the sender is a number (``recipient_standing``)."""

    def __init__(self, organization, to_number, sender):
        self.organization, self.sender, self.e164 = organization, sender, _e164(to_number)
        self._standing = None

    def _read(self) -> RecipientStanding:
        if self._standing is None:
            if isinstance(self.sender, PhoneNumber):
                self._standing = recipient_standing(
                    organization=self.organization, phone_number=self.sender, number=self.e164
                )
            else:
                listing = do_not_call_listing(organization=self.organization, number=self.e164)
                self._standing = RecipientStanding(do_not_call=listing, subscription=None)
        return self._standing

    def do_not_call(self):
        return self._read().do_not_call

    def subscription(self):
        return self._read().subscription


def pre_send_check(
    *, organization, to_number, sender: PhoneNumber | None, marketing: bool = False, now: dt.datetime | None = None
) -> list[Refusal]:
    """Every rule's refusal (empty: the text may be sent). Reads only."""
    now = now or timezone.now()
    reads = _Reads(organization, to_number, sender)
    return [r for rule in RULES if (r := rule(organization, to_number, sender, now, marketing, reads)) is not None]


def pre_send_gate(
    *, organization, to_number, sender: PhoneNumber | None, marketing: bool = False, now: dt.datetime | None = None
) -> str:
    """Raise SendRefused with the first rule that refuses; return the destination in E.164 when all pass."""
    now = now or timezone.now()
    reads = _Reads(organization, to_number, sender)
    for rule in RULES:
        refusal = rule(organization, to_number, sender, now, marketing, reads)
        if refusal is not None:
            raise SendRefused(refusal.code, refusal.message, refusal.field)
    return _e164(to_number)
