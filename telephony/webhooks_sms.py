"""Twilio's signed SMS webhook: a text reached one of our numbers (``/hooks/twilio/sms/``, ``twilio-hooks:sms``).

Numbers bought or imported point their SmsUrl here (telephony/services/numbers.py).
Like the call hooks it derives from the kernel's TwilioWebhookView: the
signature is checked first with the auth token of the account named by
``AccountSid``; the organization comes from the number the text was sent to
(``To``) and [!!] that number must live in the signing account (a valid
signature of another account about our number is refused, 404). Deliveries
are deduplicated by Twilio's I-Twilio-Idempotency-Token, else by MessageSid.

What it does now (telephony/services/sms.py): an opt-out keyword puts the
sender on the organization's do-not-call list; every text is answered with an
empty ``<Response/>`` and none is stored here: it stays in the organization's
Twilio message log until the messaging work keeps conversations.
"""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse
from django.urls import path

from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.webhooks.views import TwilioWebhookView
from telephony.selectors.calls import phone_number_for_inbound
from telephony.services import sms


# A message's SID as Twilio writes it (SM for SMS, MM for MMS); anything else is not used as the delivery's id.
_MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-f]{32}$")


def _message_sid(request: HttpRequest) -> str:
    sid = request.POST.get("MessageSid") or request.POST.get("SmsSid") or ""
    return sid if _MESSAGE_SID.match(sid) else ""


def _twiml(body: str) -> HttpResponse:
    return HttpResponse(body, content_type="text/xml; charset=utf-8")


class SmsHook(TwilioWebhookView):
    """``/hooks/twilio/sms/``: a text reached one of our numbers; an opt-out keyword lists its sender."""

    def auth_tokens(self, request: HttpRequest) -> list[str]:
        from telephony.services.twilio_accounts import auth_token_for_account_sid

        token = auth_token_for_account_sid(request.POST.get("AccountSid", ""))
        return [token] if token else []

    def organization_for(self, request: HttpRequest):
        self.phone_number = None
        to_number = request.POST.get("To", "")
        if "\x00" in to_number or len(to_number) > 32:  # no number of ours looks like that
            return None
        number = phone_number_for_inbound(to_number=to_number)
        if number is None or number.account_sid != request.POST.get("AccountSid", ""):
            return None
        self.phone_number = number
        return number.organization

    def twilio_event_id(self, request: HttpRequest) -> str | None:
        sid = _message_sid(request)
        return f"sms:{sid}" if sid else None  # without one: no dedupe record (the handling is idempotent)

    def duplicate_response(self, request: HttpRequest) -> HttpResponse:
        # Twilio's retry was handled once already: the same (empty) answer, nothing changed.
        return _twiml(sms.EMPTY_TWIML)

    def handle(self, request: HttpRequest, organization) -> HttpResponse:
        form = request.POST
        try:
            answer = sms.sms_inbound_receive(
                phone_number=self.phone_number,
                from_number=form.get("From", ""),
                body=form.get("Body", ""),
                opt_out_type=form.get("OptOutType", ""),
                message_sid=_message_sid(request),
            )
        except ApplicationError as error:
            return HttpResponse(error.message, status=error.status, content_type="text/plain; charset=utf-8")
        return _twiml(answer)


# Mounted by telephony/hooks.py under /hooks/twilio/ (namespace "twilio-hooks").
urlpatterns = [path("sms/", SmsHook.as_view(), name="sms")]
