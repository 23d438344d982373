"""Twilio's signed callbacks about calls: voice (answer a call), status (its timeline), recording (ready).

Each derives from the kernel's TwilioWebhookView (jagcall/kernel/webhooks/):
the signature is checked first, with the auth token of the account named by
``AccountSid`` (the platform's, an organization's subaccount or its own
account); then the organization comes from the call or number the request
names, and [!!] the signing account must be the one that call or number lives
in: a valid signature of another account about our call is refused (404).
Deliveries are deduplicated by Twilio's I-Twilio-Idempotency-Token, else by
CallSid + CallStatus + SequenceNumber (status) or RecordingSid (recording).
A signed request whose SIDs are not of Twilio's shape or whose numbers do not
fit the columns they land in is answered 400 naming the parameter, before
anything is looked up or written (the kernel's ``malformed``).
Rate limits: every signed webhook route is limited by its class
(accounts/ratelimits.py, the ``hooks`` budget of refused signatures).
"""

from __future__ import annotations

import logging
from email.utils import parsedate_to_datetime

from django.db import transaction
from django.http import HttpRequest, HttpResponse

from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import twilio_sids
from jagcall.kernel.webhooks.views import TwilioWebhookView
from telephony.models import Call, CallStatus
from telephony.selectors.calls import call_for_twilio_sid, call_for_webhook, phone_number_for_inbound
from telephony.services import inbound
from telephony.services.calls import INT32_MAX, call_status_record
from telephony.services.recordings import RECORDING_CHANNELS, recording_received

logger = logging.getLogger("jagcall.telephony")


def _twiml(body: str) -> HttpResponse:
    return HttpResponse(body, content_type="text/xml; charset=utf-8")


def _decimal_column(model, name: str) -> tuple[int, int]:
    field = model._meta.get_field(name)
    return field.max_digits, field.decimal_places


class _CallHook(TwilioWebhookView):
    """What the call hooks share: the account's token, and the call or number the request is about."""

    sid_params = {"AccountSid": twilio_sids.ACCOUNT, "CallSid": twilio_sids.CALL, "ParentCallSid": twilio_sids.CALL}

    def auth_tokens(self, request: HttpRequest) -> list[str]:
        from telephony.services.twilio_accounts import auth_token_for_account_sid

        token = auth_token_for_account_sid(request.POST.get("AccountSid", ""))
        return [token] if token else []

    def _call(self, request: HttpRequest):
        """The call named by ``?call=<id>`` or the CallSid, if it lives in the signing account."""
        call = call_for_webhook(call_id=request.GET.get("call"), call_sid=request.POST.get("CallSid"))
        if call is None:
            return None
        if call.account_sid and call.account_sid != request.POST.get("AccountSid", ""):
            logger.warning("twilio %s: call %s is not in the signing account; refused", self.hook_name, call.pk)
            return None
        return call

    hook_name = ""

    def organization_for(self, request: HttpRequest):
        self.call = self._call(request)
        return self.call.organization if self.call is not None else None


class VoiceHook(_CallHook):
    """``/hooks/twilio/voice/``: a call rang one of our numbers (or, with ``?call=``, an outbound call was answered)."""

    hook_name = "voice"

    def organization_for(self, request: HttpRequest):
        self.call = self.phone_number = None
        if request.GET.get("call"):
            return super().organization_for(request)
        number = phone_number_for_inbound(to_number=request.POST.get("To") or request.POST.get("Called", ""))
        if number is None or number.account_sid != request.POST.get("AccountSid", ""):
            return None
        self.phone_number = number
        return number.organization

    def twilio_event_id(self, request: HttpRequest) -> str | None:
        sid = request.POST.get("CallSid")
        return f"voice:{sid}:{request.GET.get('call', '')}" if sid else None

    def unknown_organization(self, request: HttpRequest) -> HttpResponse:
        # A person is waiting on the line: they hear why, instead of Twilio's error message.
        return _twiml(inbound.refusal_twiml(inbound.NOT_IN_SERVICE))

    def duplicate_response(self, request: HttpRequest) -> HttpResponse:
        # Twilio's retry of a voice request still needs TwiML: the same call, a fresh stream token.
        return self.handle(request, None)

    def handle(self, request: HttpRequest, organization) -> HttpResponse:
        form = request.POST
        try:
            if self.call is not None:
                return _twiml(
                    inbound.outbound_call_answer(
                        call=self.call, call_sid=form.get("CallSid", ""), answered_by=form.get("AnsweredBy", "")
                    )
                )
            return _twiml(
                inbound.inbound_call_answer(
                    phone_number=self.phone_number,
                    call_sid=form.get("CallSid", ""),
                    account_sid=form.get("AccountSid", ""),
                    from_number=form.get("From", ""),
                    to_number=form.get("To", ""),
                )
            )
        except ApplicationError as error:
            # E.g. a CallSid that is another call's (409): nothing is kept, the dedupe record included.
            transaction.set_rollback(True)
            return HttpResponse(error.message, status=error.status, content_type="text/plain; charset=utf-8")


def _timestamp(value: str):
    try:
        return parsedate_to_datetime(value) if value else None
    except (TypeError, ValueError):
        return None


class StatusHook(_CallHook):
    """``/hooks/twilio/status/``: the call moved (initiated, ringing, in-progress, completed, busy, ...)."""

    hook_name = "status"
    int_params = {"CallDuration": (0, INT32_MAX), "SequenceNumber": (0, INT32_MAX)}
    decimal_params = {"Price": _decimal_column(Call, "price"), "CallPrice": _decimal_column(Call, "price")}

    def twilio_event_id(self, request: HttpRequest) -> str | None:
        form = request.POST
        if not form.get("CallSid") or not form.get("CallStatus"):
            return None
        return f"status:{form['CallSid']}:{form['CallStatus']}:{form.get('SequenceNumber', '')}"

    def handle(self, request: HttpRequest, organization) -> HttpResponse:
        form = request.POST
        status = form.get("CallStatus", "")
        if status not in CallStatus.values:
            return HttpResponse(
                f"CallStatus {status!r} is not a Twilio call status.", status=400, content_type="text/plain"
            )
        sequence = int(form["SequenceNumber"]) if form.get("SequenceNumber") else None  # in range (int_params)
        call = self.call
        if call.twilio_sid is None and form.get("CallSid"):
            other = call_for_twilio_sid(call_sid=form["CallSid"])
            if other is not None and other.pk != call.pk:
                # Another call's CallSid (the unique column would refuse it): nothing is kept, the dedupe record
                # included.
                logger.warning("twilio status: call %s: its CallSid belongs to another call; refused", call.pk)
                transaction.set_rollback(True)
                return HttpResponse(inbound.CALL_SID_TAKEN, status=409, content_type="text/plain; charset=utf-8")
            call.twilio_sid = form["CallSid"]
            call.save(update_fields=["twilio_sid", "updated_at"])
        details = {
            name: form[field]
            for name, field in (("callback_source", "CallbackSource"), ("sip_response_code", "SipResponseCode"),
                                ("answered_by", "AnsweredBy"))
            if form.get(field)
        }  # fmt: skip
        call_status_record(
            call=call,
            status=status,
            sequence_number=sequence,
            occurred_at=_timestamp(form.get("Timestamp", "")),
            details=details,
            duration_seconds=form.get("CallDuration"),
            price=form.get("Price") or form.get("CallPrice"),
            price_unit=form.get("PriceUnit", ""),
            error_code=form.get("ErrorCode", ""),
            sip_response_code=form.get("SipResponseCode", ""),
        )
        return HttpResponse(status=204)


class RecordingHook(_CallHook):
    """``/hooks/twilio/recording/``: a call's recording is ready at Twilio (the pipeline takes it from there)."""

    hook_name = "recording"
    sid_params = {**_CallHook.sid_params, "RecordingSid": twilio_sids.RECORDING}
    # Twilio reports -1 as the duration of a recording it does not have (status "absent").
    int_params = {"RecordingDuration": (-1, INT32_MAX), "RecordingChannels": RECORDING_CHANNELS}

    def twilio_event_id(self, request: HttpRequest) -> str | None:
        sid = request.POST.get("RecordingSid")
        return f"recording:{sid}:{request.POST.get('RecordingStatus', '')}" if sid else None

    def handle(self, request: HttpRequest, organization) -> HttpResponse:
        form = request.POST
        if form.get("RecordingStatus", "completed") != "completed" or not form.get("RecordingSid"):
            return HttpResponse(status=204)  # only finished recordings are fetched

        def number(field: str, default=None):
            try:
                return int(form[field])
            except (KeyError, ValueError):
                return default

        try:
            recording_received(
                call=self.call,
                recording_sid=form["RecordingSid"],
                recording_url=form.get("RecordingUrl", ""),
                duration_seconds=None if (number("RecordingDuration") or 0) < 0 else number("RecordingDuration"),
                channels=number("RecordingChannels", 1),
            )
        except ApplicationError as error:
            return HttpResponse(error.message, status=400, content_type="text/plain; charset=utf-8")
        return HttpResponse(status=204)
