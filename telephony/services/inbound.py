"""Answering Twilio's voice webhook: connect the call to its media stream, or refuse it politely.

Inbound (a caller rings one of our numbers): the number's agent answers. The
Call is created (its numbers encrypted), and the TwiML connects it to a
bidirectional media stream on our websocket:

    <Response>
      <Start><Recording recordingStatusCallback=".../hooks/twilio/recording/?call=<id>" .../></Start>
      <Connect><Stream url="wss://<public host>/ws/telephony/stream/<call id>/">
        <Parameter name="token" value="<single-use, 60 s>"/>
      </Stream></Connect>
    </Response>

The recording (when the agent records calls) is started by the TwiML itself
(``<Start><Recording>``), not by a REST call from the webhook: while Twilio
waits for this answer the call is still ringing, and Twilio refuses to start
a recording through the API on a call that is not in progress yet.

Outbound calls answered by the callee reach the same webhook with
``?call=<id>`` and get the same stream (their recording was asked for when the
call was placed: Record=true). Those calls were placed with Twilio's answering
machine detection, so the request says who answered (``AnsweredBy``: human,
machine_start, machine_end_beep, fax...); the stream carries it as the
``answered_by`` parameter, and the agent's voicemail setting decides what the
conversation does with a machine.

Refusals: an unknown number, a number without an agent, or an organization
that may not take calls (``CALL_ADMISSION_RULES``: not active, or in the
restricted billing standing, its subscription unpaid or canceled), or one
whose plan's lines are all in use (``concurrent_calls``) get a short spoken
sentence and a hang-up. Neither a past-due payment nor a reached spend cap
refuses a caller: the cap stops new outbound calls and texts only.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from twilio.twiml.voice_response import Connect, Start, VoiceResponse

from accounts.entitlements import Standing, plan_limit
from accounts.principals import Principal
from compliance.services import audit_record
from jagcall.kernel.errors import ApplicationError
from telephony.models import Call, CallDirection, CallStatus, PhoneNumber
from telephony.selectors.calls import call_for_twilio_sid, live_call_count
from telephony.services.calls import call_first_status_record
from telephony.services.streams import stream_token_issue
from telephony.services.urls import public_url

logger = logging.getLogger("jagcall.telephony")

NOT_IN_SERVICE = "Sorry, this number is not in service. Goodbye."
NO_AGENT = "Sorry, nobody can take your call on this number right now. Please try again later. Goodbye."
UNAVAILABLE = "Sorry, this service is not available. Goodbye."
NOT_AVAILABLE_NOW = "Sorry, this service is not available right now. Goodbye."
CALL_ENDED = "This call has ended. Goodbye."
LINES_BUSY = "Sorry, all our lines are busy right now. Please call again in a few minutes. Goodbye."
CALL_SID_TAKEN = "This CallSid belongs to another call; nothing was recorded."
# The media stream's route (telephony/routing.py); websocket routes are not in Django's URL resolver.
STREAM_PATH = "/ws/telephony/stream/{call_id}/"


def _organization_is_active(organization) -> str | None:
    return None if organization.is_active else UNAVAILABLE


def _organization_is_not_restricted(organization) -> str | None:
    """The subscription is unpaid or canceled: callers hear a short refusal (past due still answers)."""
    restricted = getattr(organization, "billing_standing", Standing.GOOD) == Standing.RESTRICTED
    return NOT_AVAILABLE_NOW if restricted else None


# Each rule: organization -> None (may take calls) or the sentence the caller hears. A list, so
# another rule can be added as one more entry.
CALL_ADMISSION_RULES: list[Callable] = [_organization_is_active, _organization_is_not_restricted]


def call_admission_refusal(organization) -> str | None:
    """What to tell a caller when ``organization`` may not take calls now, else None."""
    for rule in CALL_ADMISSION_RULES:
        refusal = rule(organization)
        if refusal:
            return refusal
    return None


def refusal_twiml(message: str) -> str:
    response = VoiceResponse()
    response.say(message)
    response.hangup()
    return str(response)


def stream_url(call: Call) -> str:
    """The media stream's websocket URL: wss on the public host (ws only in development and tests)."""
    parts = urlsplit(settings.PUBLIC_BASE_URL)
    if parts.scheme == "https":
        scheme = "wss"
    elif parts.scheme == "http" and settings.EMBEDDED_SERVICES_ALLOWED:
        scheme = "ws"
    else:  # [!!] media never travels unencrypted in production (settings refuse http there too)
        raise ImproperlyConfigured(f"PUBLIC_BASE_URL must be https for media streams, got {settings.PUBLIC_BASE_URL!r}")
    return f"{scheme}://{parts.netloc}{STREAM_PATH.format(call_id=call.id)}"


# Twilio's AnsweredBy values (answering machine detection); anything else is not passed on.
ANSWERED_BY = frozenset({
    "human", "unknown", "fax", "machine_start", "machine_end_beep", "machine_end_silence", "machine_end_other",
})  # fmt: skip


def stream_twiml(call: Call, *, record: bool, answered_by: str = "") -> str:
    """The answer that connects ``call`` to its media stream, with a fresh single-use token (and who answered,
    when Twilio's machine detection said)."""
    response = VoiceResponse()
    if record:
        start = Start()
        start.recording(
            recording_status_callback=public_url("twilio-hooks:recording", call=call.id),
            recording_status_callback_event="completed",
            recording_status_callback_method="POST",
        )
        response.append(start)
    connect = Connect()
    stream = connect.stream(url=stream_url(call))
    stream.parameter(name="token", value=stream_token_issue(call))
    if answered_by in ANSWERED_BY:
        stream.parameter(name="answered_by", value=answered_by)
    response.append(connect)
    return str(response)


@transaction.atomic(savepoint=False)  # in the webhook's transaction: a failure rolls that back whole
def inbound_call_answer(
    *, phone_number: PhoneNumber, call_sid: str, account_sid: str, from_number: str, to_number: str
) -> str:
    """TwiML for a call ringing ``phone_number``: the stream of a new (or, on Twilio's retry, the same) Call."""
    organization = phone_number.organization
    refusal = call_admission_refusal(organization)
    if refusal:
        logger.info("inbound call %s refused: organization %s may not take calls", call_sid, organization.pk)
        return refusal_twiml(refusal)
    agent = phone_number.agent
    if agent is None:
        logger.info("inbound call %s refused: number %s has no agent", call_sid, phone_number.pk)
        return refusal_twiml(NO_AGENT)

    call = call_for_twilio_sid(call_sid=call_sid)
    if call is None and live_call_count(organization) >= plan_limit(organization, "concurrent_calls"):
        # [!!] The plan's lines are all in use: the caller hears so, and no call is opened or streamed.
        logger.info("inbound call %s refused: organization %s is at its concurrent-call limit", call_sid, organization.pk)
        return refusal_twiml(LINES_BUSY)
    if call is not None and call.organization_id != organization.pk:
        # [!!] Another organization's call: neither it nor its organization is named, and nothing is written.
        logger.warning("inbound call %s refused: the CallSid belongs to a call of another organization", call_sid)
        raise ApplicationError(CALL_SID_TAKEN, code="call_sid_taken", status=409)
    if call is None:
        call = Call(
            organization=organization,
            direction=CallDirection.INBOUND,
            agent=agent,
            phone_number=phone_number,
            from_number=from_number or "",
            to_number=to_number or phone_number.number,
            twilio_sid=call_sid or None,
            account_sid=account_sid,
        )
        call_first_status_record(call=call, status=CallStatus.RINGING, details={"via": "voice webhook"})
        # Twilio acts (a caller rang): the audit log says a call came in; its progress is the call's timeline.
        audit_record(
            action="call.received",
            organization=organization,
            actor=Principal.webhook("twilio", organization=organization),
            resource=call,
            metadata={"number": phone_number.number, "agent": agent.name},
        )
    elif call.is_finished:
        return refusal_twiml(CALL_ENDED)
    return stream_twiml(call, record=agent.record_calls)


@transaction.atomic
def outbound_call_answer(*, call: Call, call_sid: str, answered_by: str = "") -> str:
    """TwiML for an outbound call the callee answered: its media stream (its recording was asked for at dialing)."""
    refusal = call_admission_refusal(call.organization)
    if refusal:
        return refusal_twiml(refusal)
    if call.is_finished:
        return refusal_twiml(CALL_ENDED)
    if call_sid and not call.twilio_sid:
        other = call_for_twilio_sid(call_sid=call_sid)
        if other is not None and other.pk != call.pk:
            logger.warning("outbound call %s refused: its CallSid belongs to another call", call.pk)
            raise ApplicationError(CALL_SID_TAKEN, code="call_sid_taken", status=409)
        call.twilio_sid = call_sid
        call.save(update_fields=["twilio_sid", "updated_at"])
    return stream_twiml(call, record=False, answered_by=answered_by)
