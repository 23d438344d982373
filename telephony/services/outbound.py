"""Placing an outbound call: the pre-dial gate, the Call row, then Twilio.

``place_call`` is the one way a call is placed (portal form, API, later
campaigns). Order, and why:

1. The caller's right to use the product, the agent and the variables are
   checked, then the pre-dial gate (telephony/services/dialing.py). [!!] A
   refusal writes nothing and Twilio is never asked.
2. The Call row (outbound, queued, numbers encrypted, ``placed_by``: who
   placed it as the audit log names them) is committed *before* Twilio is
   asked: Twilio's first status callback may arrive before its REST answer,
   and the hooks find the call by the id in their URL.
3. Twilio is asked to dial from the account that holds the caller number,
   with the voice, status and (when the agent records) recording hooks of
   this call. Its call SID is saved; a provider error marks the call failed
   with the reason and raises ``CallNotPlaced``, whose message says what
   went wrong. Either way the attempt is audited (``call.placed``).
"""

from __future__ import annotations

import logging

from django.db import transaction

from accounts.principals import as_principal
from compliance.actors import resolve_actor
from compliance.models import Outcome
from compliance.services import audit_record
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import ProviderError, provider_operation
from telephony.models import Agent, Call, CallDirection, CallStatus, PhoneNumber, VoicemailAction
from telephony.services.calls import ERROR_MEANINGS, call_publish, call_status_record, masked_number
from telephony.services.dialing import pre_dial_gate
from telephony.services.twilio_accounts import twilio_for_account
from telephony.services.urls import public_url

logger = logging.getLogger("jagcall.telephony")

MAX_VARIABLES = 20
MAX_VARIABLE_NAME = 64
MAX_VARIABLE_VALUE = 500
# What Twilio reports back about an outbound call (Twilio's own names for the events).
STATUS_CALLBACK_EVENTS = ["initiated", "ringing", "answered", "completed"]


class CallNotPlaced(ApplicationError):
    """Twilio did not take the call. The call exists, marked failed with the reason (``.call``)."""

    def __init__(self, message: str, *, call: Call, retryable: bool):
        super().__init__(message, code="provider_error", status=503 if retryable else 502)
        self.call = call
        self.retryable = retryable


def clean_variables(variables) -> dict[str, str]:
    """Values for the agent's prompt: up to 20 names (identifiers) with text values up to 500 characters."""
    if variables in (None, ""):
        return {}
    if not isinstance(variables, dict):
        raise ApplicationError("Variables must be an object of names and text values.", field="variables")
    if len(variables) > MAX_VARIABLES:
        raise ApplicationError(f"Give at most {MAX_VARIABLES} variables ({len(variables)} given).", field="variables")
    cleaned = {}
    for name, value in variables.items():
        if not isinstance(name, str) or not name.isidentifier() or not name.isascii() or len(name) > MAX_VARIABLE_NAME:
            raise ApplicationError(
                f"Variable name {str(name)[:70]!r} is not allowed: use letters, digits and underscores, "
                f"starting with a letter, at most {MAX_VARIABLE_NAME} characters (e.g. first_name).",
                field="variables",
            )
        if not isinstance(value, str):
            raise ApplicationError(f"The value of {name} must be text.", field="variables")
        if len(value) > MAX_VARIABLE_VALUE:
            raise ApplicationError(
                f"The value of {name} is {len(value)} characters long; keep it to {MAX_VARIABLE_VALUE}.",
                field="variables",
            )
        cleaned[name] = value
    return cleaned


def _check_agent(organization, agent) -> Agent:
    if not isinstance(agent, Agent) or agent.organization_id != organization.id:
        raise ApplicationError("Choose one of your organization's agents.", code="invalid_agent", field="agent")
    return agent


@transaction.atomic
def _call_create(
    *, organization, principal, agent: Agent, to_number: str, phone_number: PhoneNumber, variables
) -> Call:
    call = Call.objects.create(
        organization=organization,
        direction=CallDirection.OUTBOUND,
        agent=agent,
        phone_number=phone_number,
        from_number=phone_number.number,
        to_number=to_number,
        status=CallStatus.QUEUED,
        account_sid=phone_number.account_sid,
        variables=variables or None,
        placed_by=resolve_actor(principal, None).label[:200],
    )
    call_status_record(call=call, status=CallStatus.QUEUED, source="jagcall", details={"placed_by": call.placed_by})
    call_publish(call)
    return call


def _audit(*, organization, principal, call: Call, outcome: str, reason: str = "") -> None:
    metadata = {
        "agent": call.agent.name if call.agent else "",
        "from": call.from_number,  # the organization's own line: not personal data
        "to": masked_number(call.to_number),
    }
    if reason:
        metadata["reason"] = reason
    audit_record(
        action="call.placed",
        organization=organization,
        actor=principal,
        resource=call,
        outcome=outcome,
        metadata=metadata,
    )


def place_call(
    *, organization, actor, agent: Agent, to_number: str, from_number: PhoneNumber, variables=None, now=None
) -> Call:
    """Place an outbound call (see the module's order). Raises DialRefused, ApplicationError or CallNotPlaced."""
    principal = as_principal(actor, organization)
    principal.require("product.use")
    agent = _check_agent(organization, agent)
    variables = clean_variables(variables)
    to_number = pre_dial_gate(organization=organization, to_number=to_number, from_number=from_number, now=now)

    call = _call_create(
        organization=organization, principal=principal, agent=agent, to_number=to_number, phone_number=from_number,
        variables=variables,
    )
    params = {
        "to": to_number,
        "from_": from_number.number,
        "url": public_url("twilio-hooks:voice", call=call.id),
        "method": "POST",
        "status_callback": public_url("twilio-hooks:status", call=call.id),
        "status_callback_event": STATUS_CALLBACK_EVENTS,
        "status_callback_method": "POST",
        "record": agent.record_calls,
        "time_limit": agent.max_call_seconds,
        # Who answers decides the agent's opening (its voicemail setting): Twilio tells the voice webhook. To
        # leave a message, detection waits for the greeting's end (the beep), so the message is recorded whole.
        "machine_detection": (
            "DetectMessageEnd" if agent.voicemail_action == VoicemailAction.LEAVE_MESSAGE else "Enable"
        ),
    }
    if agent.record_calls:
        params["recording_status_callback"] = public_url("twilio-hooks:recording", call=call.id)
        params["recording_status_callback_method"] = "POST"
    try:
        access = twilio_for_account(organization, from_number.account_sid)
        with provider_operation("twilio", "place the call"):
            placed = access.client.calls.create(**params)
    except (ProviderError, ApplicationError) as error:
        raise _failed(organization=organization, principal=principal, call=call, error=error) from error
    with transaction.atomic():
        call.twilio_sid = placed.sid
        call.account_sid = access.account_sid
        call.save(update_fields=["twilio_sid", "account_sid", "updated_at"])
        _audit(organization=organization, principal=principal, call=call, outcome=Outcome.SUCCESS)
    return call


def _failed(*, organization, principal, call: Call, error) -> CallNotPlaced:
    """Mark the call failed with the reason, audit the attempt; the error to raise."""
    if isinstance(error, ProviderError):
        code = str(error.code or "")[:10]
        reason = ERROR_MEANINGS.get(code) or error.message
        retryable = error.retryable
    else:
        code, reason, retryable = "", error.message, False
    with transaction.atomic():
        call = call_status_record(
            call=call, status=CallStatus.FAILED, error_code=code, source="jagcall", details={"reason": reason[:300]}
        )
        call.error_message = reason[:300]
        call.save(update_fields=["error_message", "updated_at"])
        _audit(organization=organization, principal=principal, call=call, outcome=Outcome.FAILED, reason=reason[:300])
    logger.warning("outbound call %s not placed: %s", call.id, reason)
    return CallNotPlaced(
        f"Twilio did not place the call: {reason} The call is listed as failed.", call=call, retryable=retryable
    )
