"""What the live conversation engine (telephony/engine/) asks of the database and of Twilio.

The engine is asynchronous and writes no model itself: it calls these functions through
``database_sync_to_async``. Each one is short, synchronous and safe to call from the engine's
worker thread:

- ``conversation_settings`` / ``test_conversation_settings``: everything a conversation needs,
  read once at its start (the agent, its prompt with the call's variables, the disclosures, the
  tools it may use, the provider keys);
- ``conversation_turn_record``: one turn stored (text encrypted) and announced live;
- ``conversation_event_record``: a step on the call's timeline (disclosures played, a guard);
- ``conversation_knowledge``: the agent's knowledge passages for what the caller said;
- ``call_transfer`` / ``call_end``: the tools that act on the phone call, through the Twilio SDK;
- ``send_text``: the send-SMS tool, a text to the other party from the call's own number, through
  messaging's ``message_send`` (so its pre-send gate applies and the text is in the inbox).

[!!] A tool reports what really happened: ``call_transfer`` returns only after Twilio took the
new instructions, ``send_text`` only after Twilio took the text, and each raises ``ToolFailed``
with a sentence the agent can say otherwise.
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from twilio.twiml.voice_response import VoiceResponse

from accounts.entitlements import has_entitlement
from accounts.events import publish_org_event
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import (
    SIMULATED_CREDENTIALS,
    ProviderError,
    base_url,
    provider_operation,
    simulated_mode,
)
from telephony.models import Agent, Call, ConversationTurn, PhoneNumber, TurnRole
from telephony.providers.llm import organization_api_key
from telephony.services.browser import browser_identity
from telephony.services.calls import call_event_record
from telephony.services.twilio_accounts import twilio_for_account

logger = logging.getLogger("jagcall.telephony.engine")

PROVIDER_KEY_SETTINGS = {
    "deepgram": "DEEPGRAM_API_KEY",
    "openai": "OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "elevenlabs": "ELEVENLABS_API_KEY",
}
DEFAULT_VOICE_ID = "21m00Tcm4TlvDq8ikWAM"
KNOWLEDGE_PASSAGES = 4
# Tools the engine can carry out today. Booking (book_appointment) waits for calendars: an agent
# configured with it is simply not offered it until then.
ENGINE_TOOLS = frozenset({"transfer", "end_call", "send_sms"})
_VARIABLE = re.compile(r"\{([A-Za-z][A-Za-z0-9_]{0,63})\}")


class ToolFailed(Exception):
    """A tool could not do what was asked; ``str(error)`` is what the agent tells the caller.

    ``reason``: a short code of why (a pre-send gate's rule, ``provider_error``...), kept on the tool's
    turn; never personal data."""

    def __init__(self, message: str, *, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class ConversationSettings:
    """One conversation's configuration, read once when it starts."""

    organization_id: str
    agent_id: str
    agent_name: str
    channel: str  # "phone", "browser" (voice test) or "text" (chat test)
    system_prompt: str
    first_message: str
    disclosures: tuple[str, ...]
    llm_provider: str
    llm_model: str
    temperature: float
    voice_id: str
    stt_model: str
    stt_language: str
    max_call_seconds: int
    silence_timeout_seconds: float
    silence_prompts: int
    voicemail_action: str
    voicemail_message: str
    tools: tuple[dict, ...]
    knowledge: bool
    call_id: str | None = None
    session: str = ""
    answered_by: str = ""
    keys: dict[str, str] = field(default_factory=dict, repr=False)  # [!!] never logged
    base_urls: dict[str, str] = field(default_factory=dict)

    @property
    def is_call(self) -> bool:
        return self.call_id is not None

    def missing_keys(self) -> list[str]:
        needed = ["deepgram", self.llm_provider, "elevenlabs"] if self.channel != "text" else [self.llm_provider]
        return [name for name in needed if not self.keys.get(name)]


def render_prompt(text: str, variables: dict | None) -> str:
    """``{first_name}`` -> its value, for the variables given; any other braces stay as written."""
    values = variables or {}
    return _VARIABLE.sub(lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0), text or "")


def _keys(organization) -> dict[str, str]:
    """Each provider's key: the organization's own, else the platform's, else (simulated mode) the stand-ins'."""
    keys = {}
    for provider, setting in PROVIDER_KEY_SETTINGS.items():
        key = organization_api_key(organization, provider) or getattr(settings, setting, "") or ""
        if not key and simulated_mode():
            key = SIMULATED_CREDENTIALS[provider]
        keys[provider] = key
    return keys


def _base_urls() -> dict[str, str]:
    return {name: url for name in PROVIDER_KEY_SETTINGS if (url := base_url(name))}


def _disclosures(agent: Agent) -> tuple[str, ...]:
    said = []
    if agent.ai_disclosure_enabled and agent.ai_disclosure.strip():
        said.append(agent.ai_disclosure.strip())
    if agent.recording_disclosure_enabled and agent.recording_disclosure.strip() and agent.record_calls:
        said.append(agent.recording_disclosure.strip())
    return tuple(said)


def can_text_from(phone_number: PhoneNumber | None) -> bool:
    """Can the call on ``phone_number`` text the other party from it? (The gate decides for the recipient.)"""
    return (
        phone_number is not None
        and phone_number.sms_enabled
        and phone_number.released_at is None
        and has_entitlement(phone_number.organization, "messaging")
    )


def _tools(agent: Agent, *, channel: str, can_text: bool = False) -> tuple[dict, ...]:
    """The agent's tools this conversation is offered. Not book_appointment: calendars do not exist yet."""
    offered = []
    for tool in agent.tools or []:
        if tool.get("type") not in ENGINE_TOOLS:
            continue
        if tool["type"] == "transfer" and channel != "phone":
            continue  # a test in the browser has no phone call to transfer
        if tool["type"] == "send_sms" and (channel != "phone" or not can_text):
            continue  # a test in the browser has no one to text; a number that cannot text sends nothing
        offered.append(dict(tool))
    return tuple(offered)


def _settings(agent: Agent, *, channel: str, variables=None, can_text: bool = False, **extra) -> ConversationSettings:
    organization = agent.organization
    from telephony.services.agents import linked_knowledge_bases

    return ConversationSettings(
        organization_id=str(organization.pk),
        agent_id=str(agent.pk),
        agent_name=agent.name,
        channel=channel,
        system_prompt=render_prompt(agent.system_prompt, variables),
        first_message=render_prompt(agent.first_message, variables),
        disclosures=_disclosures(agent),
        llm_provider=agent.llm_provider,
        llm_model=agent.llm_model,
        temperature=agent.temperature,
        voice_id=agent.voice_id or DEFAULT_VOICE_ID,
        stt_model=agent.stt_model,
        stt_language=agent.stt_language,
        max_call_seconds=agent.max_call_seconds,
        silence_timeout_seconds=float(settings.ENGINE_SILENCE_TIMEOUT_SECONDS),
        silence_prompts=int(settings.ENGINE_SILENCE_PROMPTS),
        voicemail_action=agent.voicemail_action,
        voicemail_message=render_prompt(agent.voicemail_message, variables),
        tools=_tools(agent, channel=channel, can_text=can_text),
        knowledge=bool(linked_knowledge_bases(agent)),
        keys=_keys(organization),
        base_urls=_base_urls(),
        **extra,
    )


def conversation_settings(call: Call, *, answered_by: str = "") -> ConversationSettings | None:
    """The settings of ``call``'s conversation; None when the call has no agent any more."""
    call = (
        Call.objects.for_org(call.organization_id)
        .select_related("agent", "agent__organization", "phone_number", "phone_number__organization")
        .get(pk=call.pk)
    )
    if call.agent is None:
        return None
    return _settings(
        call.agent,
        channel="phone",
        variables=call.variables,
        can_text=can_text_from(call.phone_number),
        call_id=str(call.pk),
        answered_by=answered_by,
    )


def test_conversation_settings(agent: Agent, *, session: str, channel: str) -> ConversationSettings:
    """The settings of a test of ``agent`` from its page (``channel`` "text" or "browser")."""
    return _settings(agent, channel=channel, session=session)


# --- what the engine records --------------------------------------------------------------------------


def _latency(value) -> int | None:
    if value is None:
        return None
    return max(0, min(int(round(value)), 2**31 - 1))


def turn_payload(turn: ConversationTurn) -> dict:
    """A turn as the portal shows it (live and on the call's page)."""
    return {
        "index": turn.index,
        "role": turn.role,
        "role_label": turn.get_role_display(),
        "text": turn.text or "",
        "interrupted": turn.interrupted,
        "tool": (turn.tool or {}).get("name", ""),
        "tool_ok": (turn.tool or {}).get("ok"),
        "sources": [p.get("document", "") for p in (turn.retrieved or [])],
        "latency": {
            "end_of_turn_ms": turn.end_of_turn_ms,
            "transcript_ms": turn.transcript_ms,
            "handed_over_ms": turn.handed_over_ms,
            "retrieved_ms": turn.retrieved_ms,
            "llm_first_token_ms": turn.llm_first_token_ms,
            "tts_first_byte_ms": turn.tts_first_byte_ms,
            "first_audio_ms": turn.first_audio_ms,
        },
        "started_at": turn.started_at.isoformat(),
    }


@transaction.atomic
def conversation_turn_record(
    conversation: ConversationSettings,
    *,
    index: int,
    role: str,
    text: str,
    generated: str | None = None,
    interrupted: bool = False,
    retrieved: list[dict] | None = None,
    tool: dict | None = None,
    latency: dict | None = None,
    started_at: datetime | None = None,
) -> ConversationTurn:
    """Store one turn (its text encrypted) and, for a call, announce it on the organization's events."""
    if role not in TurnRole.values:
        raise ValueError(f"unknown turn role {role!r}")
    latency = latency or {}
    turn = ConversationTurn.objects.create(
        organization_id=conversation.organization_id,
        call_id=conversation.call_id,
        agent_id=conversation.agent_id,
        session=conversation.session,
        index=index,
        role=role,
        text=text,
        generated=generated,
        interrupted=interrupted,
        retrieved=retrieved or None,
        tool=tool,
        started_at=started_at or timezone.now(),
        **{name: _latency(latency.get(name)) for name in TURN_LATENCIES},
    )
    if conversation.is_call:
        publish_org_event(conversation.organization_id, "call.turn", {"call_id": conversation.call_id, **turn_payload(turn)})
    return turn


TURN_LATENCIES = (
    "end_of_turn_ms",
    "transcript_ms",
    "handed_over_ms",
    "retrieved_ms",
    "llm_first_token_ms",
    "tts_first_byte_ms",
    "first_audio_ms",
)


def conversation_live_text(conversation: ConversationSettings, *, role: str, text: str) -> None:
    """What the caller is saying right now (interim, not stored), for the call's page."""
    if conversation.is_call:
        publish_org_event(
            conversation.organization_id, "call.live_text", {"call_id": conversation.call_id, "role": role, "text": text}
        )


def conversation_event_record(conversation: ConversationSettings, kind: str, details: dict | None = None) -> None:
    """A step of the call's timeline (``engine.*``); never personal data in ``details``."""
    if not conversation.is_call:
        return
    call = Call.objects.for_org(conversation.organization_id).get(pk=conversation.call_id)
    call_event_record(call=call, kind=kind, source="engine", details=details or {})


def conversation_knowledge(conversation: ConversationSettings, query: str) -> tuple[list[dict], float]:
    """The agent's knowledge passages for ``query`` (scoped to its organization) and the seconds it took."""
    from telephony.selectors.agents import agent_knowledge_search

    started = time.perf_counter()
    agent = Agent.objects.for_org(conversation.organization_id).select_related("organization").get(pk=conversation.agent_id)
    hits = agent_knowledge_search(agent, query, k=KNOWLEDGE_PASSAGES)
    passages = [
        {
            "chunk": str(hit.chunk_id),
            "document": hit.document_name,
            "pages": f"{hit.page_start}-{hit.page_end}" if hit.page_end and hit.page_end != hit.page_start else str(hit.page_start or ""),
            "score": round(float(hit.score), 5),
            "text": hit.text,
        }
        for hit in hits
    ]
    return passages, time.perf_counter() - started


# --- the tools that act on the call ------------------------------------------------------------------


def _call(conversation: ConversationSettings) -> Call:
    return Call.objects.for_org(conversation.organization_id).select_related("phone_number", "organization").get(pk=conversation.call_id)


def _twilio_resource(call: Call):
    if not call.twilio_sid or not call.account_sid:
        raise ToolFailed("I can't do that on this call.")
    access = twilio_for_account(call.organization, call.account_sid)
    return access.client.calls(call.twilio_sid)


def call_transfer(conversation: ConversationSettings, target: dict) -> str:
    """Hand the call to ``target`` (a tool entry: ``number`` or ``user_id``) through Twilio; what to say."""
    if not conversation.is_call:
        raise ToolFailed("There is no phone call to transfer in a test.")
    call = _call(conversation)
    resource = _twilio_resource(call)
    response = VoiceResponse()
    caller_id = call.phone_number.number if call.phone_number_id and call.phone_number else None
    dial = response.dial(caller_id=caller_id, timeout=30)
    if target.get("number"):
        dial.number(target["number"])
        where = "number"
    else:
        from accounts.models import Membership

        # [!!] Still a member, and still able to sign in: one removed since the agent was set up is not rung.
        membership = (
            Membership.objects.for_org(call.organization)
            .select_related("user")
            .filter(user_id=target.get("user_id"), user__is_active=True)
            .first()
        )
        if membership is None:
            raise ToolFailed("I can't reach that person right now.")
        dial.client(browser_identity(user=membership.user, organization=call.organization))
        where = "browser"
    try:
        with provider_operation("twilio", "transfer the call"):
            resource.update(twiml=str(response))
    except ProviderError as error:
        logger.warning("transfer of call %s failed: %s", call.pk, error)
        raise ToolFailed("I'm sorry, I couldn't transfer you just now.") from error
    call_event_record(call=call, kind="engine.transferred", source="engine", details={"to": where})
    return "Transferring you now."


def call_end(conversation: ConversationSettings, *, reason: str) -> bool:
    """Hang up the conversation's call through Twilio (``reason`` goes on its timeline); False if Twilio refused."""
    if not conversation.is_call:
        return True
    return call_hang_up(_call(conversation), reason=reason)


def call_hang_up(call: Call, *, reason: str) -> bool:
    """Hang ``call`` up through Twilio; False (and a warning in the log) if Twilio refused."""
    try:
        resource = _twilio_resource(call)
        with provider_operation("twilio", "end the call"):
            resource.update(status="completed")
    except (ProviderError, ToolFailed) as error:
        logger.warning("ending call %s failed: %s", call.pk, error)
        return False
    call_event_record(call=call, kind="engine.ended", source="engine", details={"reason": reason[:40]})
    return True


# What the agent says when messaging's pre-send gate refuses a text (by the rule's code); the gate's own
# message names the numbers and is for the team, not for the caller.
_TEXT_REFUSED = {
    "opted_out": (
        "I'm sorry, I can't text your number: it has unsubscribed from our texts. "
        "If you'd like them again, text START to this number."
    ),
    "sender_number": "I'm sorry, I can't send texts from this line.",
    "no_messaging_rights": "I'm sorry, I can't send texts from this line.",
    "invalid_number": "I'm sorry, I can't send a text to this phone number.",
    # the organization's own limits (its spend cap, an unpaid subscription): nothing about the caller's number
    "spend_cap_reached": "I'm sorry, I can't send texts from this line right now.",
    "billing_restricted": "I'm sorry, I can't send texts from this line right now.",
}
TEXT_REFUSED = "I'm sorry, I can't send a text to your number."
TEXT_NOT_SENT = "I'm sorry, I couldn't send the text just now."
TEXT_TOO_LONG = "That text is too long to send; it needs to be shorter."
TEXT_SENT = "I've sent you a text message; it should arrive in a moment."
TEXT_MAX_CHARACTERS = 480  # three segments of GSM-7: what the caller wants in writing, not a letter


def send_text(conversation: ConversationSettings, body: str) -> str:
    """Text ``body`` to the other party of the call, from the call's own number, as the agent; what to say.

    Through messaging's ``message_send`` with the agent as sender (``agent_principal``, labelled with the
    agent's name): the pre-send gate applies (an opted-out pair, the do-not-call list, a number that cannot
    text...) and the text is in the messaging inbox like any other. Raises ToolFailed with a sentence the
    agent can say when the gate refuses or Twilio does not take the text; then no message is stored.
    """
    # Imported here, not above: messaging imports telephony (its models, dialing), not the other way round.
    from messaging.services.agent_replies import agent_principal
    from messaging.services.gate import SendRefused
    from messaging.services.sending import MessageNotSent, message_send

    if not conversation.is_call:
        raise ToolFailed("There is no one to text in a test.", reason="no_call")
    body = (body or "").strip()
    if not body:
        raise ToolFailed("I couldn't send an empty text.", reason="empty_message")
    if len(body) > TEXT_MAX_CHARACTERS:
        raise ToolFailed(TEXT_TOO_LONG, reason="too_long")
    call = _call(conversation)
    agent = Agent.objects.for_org(conversation.organization_id).filter(pk=conversation.agent_id).first()
    if call.phone_number is None or agent is None:
        raise ToolFailed(_TEXT_REFUSED["sender_number"], reason="sender_number")
    try:
        message = message_send(
            organization=call.organization,
            actor=agent_principal(agent),
            sender=call.phone_number,
            to=call.counterpart_number,
            body=body,
            sender_label=agent.name,
        )
    except SendRefused as refusal:
        code = refusal.refusal.code
        logger.info("text from call %s refused by the pre-send gate: %s", call.pk, code)
        call_event_record(call=call, kind="engine.text_refused", source="engine", details={"reason": code})
        raise ToolFailed(_TEXT_REFUSED.get(code, TEXT_REFUSED), reason=code) from refusal
    except MessageNotSent as error:
        logger.warning("text from call %s not sent: %s", call.pk, error.message)
        call_event_record(call=call, kind="engine.text_failed", source="engine", details={"reason": error.code})
        raise ToolFailed(TEXT_NOT_SENT, reason=error.code) from error
    except ApplicationError as error:  # the body was checked above: nothing the caller could fix
        logger.warning("text from call %s not sent: %s", call.pk, error.message)
        raise ToolFailed(TEXT_NOT_SENT, reason=error.code) from error
    call_event_record(call=call, kind="engine.text_sent", source="engine", details={"message": str(message.pk)})
    return TEXT_SENT
