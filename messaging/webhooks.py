"""Twilio's signed messaging webhooks (mounted under /hooks/twilio/, namespace ``twilio-hooks``).

- ``sms`` (``/hooks/twilio/sms/``): a text reached one of our numbers. Numbers bought or imported
  point their SmsUrl here (telephony/services/numbers.py).
- ``sms-status`` (``/hooks/twilio/sms-status/``): Twilio reports a sent text's status (each send
  names it as its StatusCallback).

Both derive from the kernel's TwilioWebhookView: the signature is checked first with the auth
token of the account named by ``AccountSid``; then the organization, from the number texted
(``To``) or from the message the status is about, and [!!] that number must live in the signing
account (a valid signature of another account about our number is refused, 404). Deliveries are
deduplicated by Twilio's I-Twilio-Idempotency-Token, else by MessageSid (and status): a retry
changes nothing. The work is messaging/services/inbound.py.
"""

from __future__ import annotations

import re

from django.http import HttpRequest, HttpResponse
from django.urls import path

from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.webhooks.views import TwilioWebhookView
from messaging.models import Message
from messaging.services import inbound
from telephony.selectors.calls import phone_number_for_inbound

# A message's SID as Twilio writes it (SM for SMS, MM for MMS); anything else is not used as the delivery's id.
_MESSAGE_SID = re.compile(r"^(SM|MM)[0-9a-f]{32}$")
_MAX_MEDIA = 10


def _message_sid(request: HttpRequest) -> str:
    sid = request.POST.get("MessageSid") or request.POST.get("SmsSid") or ""
    return sid if _MESSAGE_SID.match(sid) else ""


def _twiml(body: str) -> HttpResponse:
    return HttpResponse(body, content_type="text/xml; charset=utf-8")


def _account_token(request: HttpRequest) -> list[str]:
    from telephony.services.twilio_accounts import auth_token_for_account_sid

    token = auth_token_for_account_sid(request.POST.get("AccountSid", ""))
    return [token] if token else []


class SmsHook(TwilioWebhookView):
    """``/hooks/twilio/sms/``: a text reached one of our numbers."""

    int_params = {"NumMedia": (0, _MAX_MEDIA), "NumSegments": (0, 100)}

    def auth_tokens(self, request: HttpRequest) -> list[str]:
        return _account_token(request)

    def organization_for(self, request: HttpRequest):
        self.phone_number = None
        to_number = request.POST.get("To", "")
        if len(to_number) > 32:  # no number of ours looks like that
            return None
        number = phone_number_for_inbound(to_number=to_number)
        if number is None or number.account_sid != request.POST.get("AccountSid", ""):
            return None
        self.phone_number = number
        return number.organization

    def twilio_event_id(self, request: HttpRequest) -> str | None:
        sid = _message_sid(request)
        return f"sms:{sid}" if sid else None  # without one: no dedupe record (MessageSid is unique on the row)

    def duplicate_response(self, request: HttpRequest) -> HttpResponse:
        # Twilio's retry was handled once already: nothing changes, and no second confirmation is sent.
        return _twiml(inbound.EMPTY_TWIML)

    def handle(self, request: HttpRequest, organization) -> HttpResponse:
        form = request.POST
        count = int(form.get("NumMedia") or 0)
        media = [form.get(f"MediaUrl{i}", "") for i in range(min(count, _MAX_MEDIA))]
        try:
            received = inbound.message_receive(
                phone_number=self.phone_number,
                from_number=form.get("From", ""),
                body=form.get("Body", ""),
                media_urls=[url for url in media if url.startswith("https://")],
                message_sid=_message_sid(request),
                opt_out_type=form.get("OptOutType", ""),
            )
        except ApplicationError as error:
            return HttpResponse(error.message, status=error.status, content_type="text/plain; charset=utf-8")
        return _twiml(received.twiml)


class SmsStatusHook(TwilioWebhookView):
    """``/hooks/twilio/sms-status/``: a sent text's status changed (queued, sent, delivered, undelivered, failed)."""

    int_params = {"ErrorCode": (0, 999999)}

    def auth_tokens(self, request: HttpRequest) -> list[str]:
        return _account_token(request)

    def organization_for(self, request: HttpRequest):
        sid = _message_sid(request)
        if not sid:
            return None
        message = (
            Message.objects.unscoped("a status callback names only the message's SID; its account is checked next")
            .select_related("conversation__phone_number__organization")
            .filter(twilio_sid=sid)
            .first()
        )
        if message is None:
            return None
        number = message.conversation.phone_number
        if number.account_sid != request.POST.get("AccountSid", ""):
            return None
        return number.organization

    def unknown_organization(self, request: HttpRequest) -> HttpResponse:
        # Not ours, or not stored yet (the callback can overtake the send's commit): Twilio retries a 404.
        return HttpResponse("No such message.", status=404, content_type="text/plain; charset=utf-8")

    def twilio_event_id(self, request: HttpRequest) -> str | None:
        sid = _message_sid(request)
        status = (request.POST.get("MessageStatus") or request.POST.get("SmsStatus") or "")[:20]
        return f"sms-status:{sid}:{status}" if sid else None

    def handle(self, request: HttpRequest, organization) -> HttpResponse:
        form = request.POST
        try:
            inbound.message_status_update(
                message_sid=_message_sid(request),
                status=form.get("MessageStatus") or form.get("SmsStatus") or "",
                error_code=form.get("ErrorCode"),
            )
        except ApplicationError as error:
            return HttpResponse(error.message, status=error.status, content_type="text/plain; charset=utf-8")
        return HttpResponse(status=204)


# Mounted by the wiring (jagcall/urls.py) under /hooks/twilio/ with telephony's hooks (namespace "twilio-hooks").
urlpatterns = [
    path("sms/", SmsHook.as_view(), name="sms"),
    path("sms-status/", SmsStatusHook.as_view(), name="sms-status"),
]
