"""Texts to our numbers, as far as calls are concerned: a "STOP" puts the sender on the do-not-call list.

Twilio posts every text sent to a number of ours to ``/hooks/twilio/sms/``
(telephony/webhooks_sms.py). Conversations, an inbox and per-number
subscriptions come with the messaging work; until then a text is answered
with an empty ``<Response/>`` and nothing of it is stored here (it stays in
the organization's Twilio message log).

The one thing calls need from texts now: [!!] a person who texts an opt-out
keyword (STOP, STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT, REVOKE, OPTOUT, in
any case, alone in the text but for spaces and punctuation), or whose text
Twilio's Advanced Opt-Out marks ``OptOutType=STOP``, is added to the
organization's do-not-call list, so the pre-dial gate refuses calls to them
from then on (the FCC's revocation rule: consent revoked by any reasonable
means covers calls and texts alike).

START, UNSTOP and YES do not take a number off the list: that stays a
decision of the organization's owners and admins (``do_not_call_remove``),
because it allows calling that person again. We send no reply: Twilio's own
opt-out handling on long codes answers STOP and HELP.
"""

from __future__ import annotations

import logging
import re
import unicodedata

from django.db import transaction

from accounts.principals import Principal
from compliance.models import DoNotCallReason, DoNotCallSource
from compliance.selectors import do_not_call_lookup
from compliance.services import audit_record, do_not_call_add
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.phone import InvalidPhoneNumber, parse_e164
from telephony.models import PhoneNumber

logger = logging.getLogger("jagcall.telephony")

# The keywords carriers and Twilio treat as an opt-out (CTIA; the FCC's 2025 revocation rule added REVOKE, OPTOUT).
OPT_OUT_KEYWORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
# Twilio's Advanced Opt-Out names the kind of keyword it matched (STOP, START, HELP) in this parameter.
TWILIO_OPT_OUT_STOP = "STOP"
# Anything that is not a letter or digit around the word: spaces, punctuation, emoji ("Stop!", " quit. ").
_SURROUNDING = re.compile(r"^[\W_]+|[\W_]+$")
# A keyword is one short word; longer texts are not looked at (and not normalized).
_LONGEST_KEYWORD_TEXT = 64

EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'


def sms_opt_out_keyword(body: str) -> str | None:
    """The opt-out keyword ``body`` is (``"STOP"``), or None: the whole text, any case, spaces and punctuation
    around it ignored. "Stop!" is STOP; "please stop calling" is not a keyword (a person reads those)."""
    if not body or len(body) > _LONGEST_KEYWORD_TEXT:
        return None
    word = _SURROUNDING.sub("", unicodedata.normalize("NFKC", body)).upper()
    return word if word in OPT_OUT_KEYWORDS else None


@transaction.atomic
def sms_inbound_receive(
    *, phone_number: PhoneNumber, from_number: str, body: str, opt_out_type: str = "", message_sid: str = ""
) -> str:
    """A text reached ``phone_number``: honour an opt-out; the answer is the TwiML for Twilio (always empty).

    Raises ApplicationError (400) when the text is an opt-out but its sender is
    not a phone number that can be listed (it cannot be called either).
    """
    organization = phone_number.organization
    keyword = sms_opt_out_keyword(body)
    if keyword is None and (opt_out_type or "").strip().upper() == TWILIO_OPT_OUT_STOP:
        keyword = "STOP"
    if keyword is None:
        return EMPTY_TWIML
    try:
        sender = parse_e164(from_number)
    except InvalidPhoneNumber:
        raise ApplicationError(
            "From is not a phone number in international format (e.g. +14155550100): nothing to add to the "
            "do-not-call list.", code="invalid_number", field="From",
        ) from None  # fmt: skip
    if do_not_call_lookup(organization=organization, number=sender) is not None:
        logger.info("sms %s: opt-out from a number already on the do-not-call list", message_sid or "-")
        return EMPTY_TWIML
    actor = Principal.webhook("twilio", organization=organization)
    try:
        entry = do_not_call_add(
            organization=organization,
            actor=actor,
            number=sender,
            reason=DoNotCallReason.CONSENT_REVOKED,
            source=DoNotCallSource.SMS,
        )
    except ApplicationError as error:
        if error.code == "already_listed":  # added a moment ago by another request
            return EMPTY_TWIML
        raise
    # The entry's reason is one of a fixed set; why it was added is here, in words. The organization's own number
    # is not personal data; the sender's is on the entry (encrypted) and masked in do_not_call.added.
    audit_record(
        action="phone_number.opt_out_received",
        organization=organization,
        actor=actor,
        resource=phone_number,
        metadata={
            "reason": f"Texted {keyword} to {phone_number.number}",
            "keyword": keyword,
            "do_not_call_entry": str(entry.id),
            "message_sid": message_sid,
        },
    )
    return EMPTY_TWIML
