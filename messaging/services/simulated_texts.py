"""Simulated mode's "Simulate an incoming text": someone texts one of the organization's numbers.

There is no phone and no provider key: the Twilio stand-in (started by ``make run`` in another
process) posts the signed webhook Twilio sends for a text received to our SMS hook, which handles
it like any text (messaging/services/inbound.py): the message is stored and appears live in the
inbox and its thread, keywords are honoured, and the number's agent answers when it answers texts.
The web process asks for it over the stand-in's own HTTP route (twilio/control.py, not Twilio's
API), with the credentials that open the number's account.
"""

from __future__ import annotations

from django.conf import settings

from accounts.principals import as_principal
from compliance.services import audit_record
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import base_url, simulated_mode
from messaging.services.contacts import clean_phone
from messaging.services.events import masked
from messaging.services.sending import MAX_BODY
from telephony.models import PhoneNumber
from telephony.services.twilio_accounts import twilio_for_account

PERMISSION = "product.use"


def simulated_text_receive(*, organization, actor, phone_number: PhoneNumber, from_number: str, body: str) -> str:
    """Have the simulated Twilio text ``body`` from ``from_number`` to ``phone_number``; the sender in E.164.

    The text arrives a moment later through the SMS hook. Raises ApplicationError: 404 outside
    simulated mode or for a number that is not the organization's, 400 for a bad sender or body,
    409 for a number that cannot receive texts, 503 when the stand-in cannot be reached or refuses.
    """
    from jagcall.kernel.standins.twilio.control import SimulatedCallerUnavailable, text_simulated_message

    principal = as_principal(actor, organization)
    principal.require(PERMISSION)
    if not simulated_mode():
        raise ApplicationError("Simulated texts exist only in simulated mode.", code="not_simulated", status=404)
    if phone_number.organization_id != organization.pk or phone_number.released_at is not None:
        raise ApplicationError("No such number.", code="not_found", status=404)
    if not phone_number.sms_enabled:
        raise ApplicationError(
            f"{phone_number.number} cannot receive texts (it is not SMS-capable). Choose another number.",
            code="not_sms_capable", status=409, field="phone_number",
        )  # fmt: skip
    sender = clean_phone(from_number, field="from_number")
    if sender == phone_number.number:
        raise ApplicationError(
            f"The text must come from another number than {phone_number.number}.",
            code="same_number", field="from_number",
        )  # fmt: skip
    body = "" if body is None else str(body)
    if not body.strip():
        raise ApplicationError("Write the text the simulated person sends.", code="empty_message", field="body")
    if len(body) > MAX_BODY:
        raise ApplicationError(f"A text is at most {MAX_BODY} characters long.", code="too_long", field="body")
    standin = base_url("twilio")
    if not standin:
        raise ApplicationError(
            "The simulated Twilio is not running: start the app with `make run` (it starts every stand-in).",
            code="standin_missing", status=503,
        )  # fmt: skip
    client = twilio_for_account(organization, phone_number.account_sid).client
    try:
        text_simulated_message(
            standin, account_sid=phone_number.account_sid, username=client.username, password=client.password,
            to=phone_number.number, from_=sender, body=body, timeout=float(settings.PROVIDER_TIMEOUT_SECONDS),
        )  # fmt: skip
    except SimulatedCallerUnavailable as error:
        raise ApplicationError(
            f"The simulated text to {phone_number.number} could not be sent: {error}. Restarting `make run` gives "
            "the simulated Twilio back the numbers the database holds.",
            code="standin_refused", status=503,
        ) from None  # fmt: skip
    audit_record(
        action="message.simulated",
        organization=organization,
        actor=principal,
        resource=phone_number,
        metadata={"number": phone_number.number, "from": masked(sender), "characters": len(body)},
    )
    return sender
