"""The engine's send-SMS tool against the Twilio stand-in: a text to the other party from the call's own
number, through messaging's pre-send gate, into the inbox; and when the tool is not offered at all."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import async_to_sync
from django.utils import timezone
from pipecat.services.llm_service import FunctionCallParams

from accounts.entitlements import Standing
from accounts.services import organization_billing_update, organization_spend_cap_mark
from billing.models import BillingAccount
from billing.selectors import month_start
from compliance.services import do_not_call_add
from messaging.models import ChangeVia, Direction, Message, SenderType
from messaging.services.subscriptions import subscription_set, webhook_actor
from telephony.engine.conversation import MAX_TEXTS_PER_CALL, Conversation
from telephony.engine.transports import ConsumerLink
from telephony.models import Call, CallDirection, CallEvent, ConversationTurn
from telephony.services.conversations import (
    TEXT_NOT_SENT,
    TEXT_SENT,
    ToolFailed,
    conversation_settings,
    send_text,
)
from telephony.services.conversations import test_conversation_settings as agent_page_test_settings
from telephony.tests.calls_support import inbound_call, line

pytestmark = pytest.mark.django_db

PUBLIC = "https://app.jagcall.test"
CALLER = "+14155550100"
CALLEE = "+12129870188"
ADDRESS = "Bright Smile Dental, 12 Market Street, San Francisco. Parking behind the building."
SEND_SMS = {"type": "send_sms", "description": "Our address and where to park."}
PHONE_NUMBER = re.compile(r"\+?\d[\d\s().-]{6,}\d")


@pytest.fixture
def twilio(twilio_standin, settings):
    settings.PUBLIC_BASE_URL = PUBLIC
    twilio_standin.message_autodeliver = False  # the statuses that follow a send are not what is tested here
    return twilio_standin


@pytest.fixture
def number(twilio, organization):
    """A number that texts, answered by an agent that may text the caller."""
    phone_number = line(organization)
    phone_number.sms_enabled = True
    phone_number.save(update_fields=["sms_enabled"])
    agent = phone_number.agent
    agent.name = "Front desk"
    agent.tools = [{"type": "end_call"}, SEND_SMS]
    agent.save(update_fields=["name", "tools"])
    return phone_number


def _ringing_call(organization, twilio, number):
    at_twilio, _voice = twilio.ring(number.number, CALLER)
    return inbound_call(organization, number=number, sid=at_twilio.sid)


def _outbound_call(organization, number):
    return Call.objects.create(
        organization=organization,
        direction=CallDirection.OUTBOUND,
        agent=number.agent,
        phone_number=number,
        from_number=number.number,
        to_number=CALLEE,
        twilio_sid="CA" + "2" * 32,
        account_sid=number.account_sid,
        status="in-progress",
    )


def _sent_messages(organization):
    return list(Message.objects.for_org(organization).select_related("conversation__contact"))


def _event_kinds(call):
    return list(CallEvent.objects.for_org(call.organization_id).filter(call=call).values_list("kind", flat=True))


def _speakable(sentence: str) -> bool:
    """A sentence the agent can say to the caller: no number in it, no code, no error text."""
    return bool(sentence) and not PHONE_NUMBER.search(sentence) and "error" not in sentence.lower()


# --- sending ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("direction", ["inbound", "outbound"])
def test_the_tool_texts_the_other_party_from_the_calls_number_as_the_agent(organization, twilio, number, direction):
    if direction == "inbound":
        call = _ringing_call(organization, twilio, number)
    else:
        call = _outbound_call(organization, number)
    other_party = CALLER if direction == "inbound" else CALLEE

    said = send_text(conversation_settings(call), f"  {ADDRESS}\n")

    assert said == TEXT_SENT and _speakable(said)
    (at_twilio,) = twilio.messages
    assert (at_twilio.to, at_twilio.from_, at_twilio.body) == (other_party, number.number, ADDRESS)
    assert at_twilio.account_sid == number.account_sid  # from the subaccount that holds the number
    # The text is in the messaging inbox, sent by the agent, in the thread of our number and the caller.
    (message,) = _sent_messages(organization)
    assert message.direction == Direction.OUTBOUND and message.body == ADDRESS
    assert message.sender_type == SenderType.AGENT and message.sender_label == "Front desk"
    assert message.twilio_sid == at_twilio.sid
    assert message.conversation.phone_number == number and message.conversation.contact.phone == other_party
    assert _event_kinds(call)[-1] == "engine.text_sent"


def test_a_pair_that_opted_out_is_refused_by_the_gate_and_nothing_is_sent(organization, twilio, number):
    call = _ringing_call(organization, twilio, number)
    subscription_set(
        phone_number=number,
        recipient=CALLER,
        subscribed=False,
        via=ChangeVia.KEYWORD,
        actor=webhook_actor(organization),
        keyword="STOP",
    )

    with pytest.raises(ToolFailed) as refused:
        send_text(conversation_settings(call), ADDRESS)

    sentence = str(refused.value)
    assert "can't text your number" in sentence and "text START to this number" in sentence
    assert _speakable(sentence) and refused.value.reason == "opted_out"
    assert twilio.messages == [] and twilio.requests_to(
        f"/2010-04-01/Accounts/{number.account_sid}/Messages.json", "POST"
    ) == []
    assert _sent_messages(organization) == []
    assert _event_kinds(call)[-1] == "engine.text_refused"


def test_a_caller_on_the_do_not_call_list_is_not_texted(organization, owner, twilio, number):
    call = _ringing_call(organization, twilio, number)
    do_not_call_add(organization=organization, actor=owner, number=CALLER)

    with pytest.raises(ToolFailed) as refused:
        send_text(conversation_settings(call), ADDRESS)

    assert refused.value.reason == "do_not_call" and _speakable(str(refused.value))
    assert "can't send a text to your number" in str(refused.value)
    assert twilio.messages == [] and _sent_messages(organization) == []


@pytest.mark.parametrize("cause", ["spend_cap_reached", "billing_restricted"])
def test_the_organizations_own_limits_refuse_the_text_without_blaming_the_callers_number(
    organization, twilio, number, cause
):
    call = _ringing_call(organization, twilio, number)
    if cause == "spend_cap_reached":
        BillingAccount.objects.create(organization=organization, spend_cap_cents=5_000)
        organization_spend_cap_mark(organization=organization, reached_month=month_start(timezone.now()).date())
    else:
        organization_billing_update(organization=organization, standing=Standing.RESTRICTED, reason="test")

    with pytest.raises(ToolFailed) as refused:
        send_text(conversation_settings(call), ADDRESS)

    assert refused.value.reason == cause and _speakable(str(refused.value))
    assert str(refused.value) == "I'm sorry, I can't send texts from this line right now."
    assert twilio.messages == [] and _sent_messages(organization) == []
    event = CallEvent.objects.for_org(organization).filter(call=call).latest("id")
    assert (event.kind, event.details) == ("engine.text_refused", {"reason": cause})


def test_a_text_twilio_does_not_take_is_said_not_sent_and_nothing_is_stored(organization, twilio, number):
    """Twilio answers 21606 (the number cannot text at Twilio, whatever we thought): the agent says it could not
    send the text now; no message is stored."""
    call = _ringing_call(organization, twilio, number)
    (at_twilio,) = [n for n in twilio.numbers.values() if n.phone_number == number.number]
    at_twilio.sms = False

    with pytest.raises(ToolFailed) as failed:
        send_text(conversation_settings(call), ADDRESS)

    assert str(failed.value) == TEXT_NOT_SENT and _speakable(TEXT_NOT_SENT)
    assert twilio.messages == [] and _sent_messages(organization) == []
    assert _event_kinds(call)[-1] == "engine.text_failed"


@pytest.mark.parametrize(("body", "reason"), [("   ", "empty_message"), ("x" * 481, "too_long")])
def test_an_empty_or_overlong_text_is_refused_before_twilio(organization, twilio, number, body, reason):
    call = _ringing_call(organization, twilio, number)
    with pytest.raises(ToolFailed) as refused:
        send_text(conversation_settings(call), body)
    assert refused.value.reason == reason
    assert twilio.messages == [] and _sent_messages(organization) == []


# --- when it is offered -----------------------------------------------------------------------------------


def _offered(conversation_settings_) -> list[str]:
    """The functions the engine puts before the LLM for these settings."""
    link = ConsumerLink(_discard, serializer=None)
    schema = Conversation(conversation_settings_, link)._tools()
    return [tool.name for tool in schema.standard_tools] if schema else []


async def _discard(data):
    return None


def test_the_tool_is_offered_on_a_call_from_a_number_that_texts(organization, twilio, number):
    settings_ = conversation_settings(_ringing_call(organization, twilio, number))
    assert [t["type"] for t in settings_.tools] == ["end_call", "send_sms"]
    assert _offered(settings_) == ["send_sms", "end_call"]
    schema = Conversation(settings_, ConsumerLink(_discard, serializer=None))._tools()
    (send_sms,) = [tool for tool in schema.standard_tools if tool.name == "send_sms"]
    assert "Our address and where to park." in send_sms.description  # the agent's own words of what it texts
    assert send_sms.required == ["body"]


def test_the_tool_is_not_offered_when_the_calls_number_cannot_text(organization, twilio, number):
    number.sms_enabled = False
    number.save(update_fields=["sms_enabled"])
    settings_ = conversation_settings(_ringing_call(organization, twilio, number))
    assert [t["type"] for t in settings_.tools] == ["end_call"]
    assert _offered(settings_) == ["end_call"]


def test_the_tool_is_not_offered_when_the_plan_does_not_include_texts(organization, twilio, number):
    organization.plan_code = "unknown"
    organization.save(update_fields=["plan_code"])
    settings_ = conversation_settings(_ringing_call(organization, twilio, number))
    assert "send_sms" not in _offered(settings_)


@pytest.mark.parametrize("channel", ["browser", "text"])
def test_the_tool_is_not_offered_in_a_test_from_the_agents_page(organization, number, channel):
    settings_ = agent_page_test_settings(number.agent, session="a-test", channel=channel)
    assert "send_sms" not in [t["type"] for t in settings_.tools]
    assert "send_sms" not in _offered(settings_)
    with pytest.raises(ToolFailed, match="no one to text in a test"):
        send_text(settings_, ADDRESS)


def test_booking_is_not_offered(organization, twilio, number):
    agent = number.agent
    agent.tools = [SEND_SMS, {"type": "book_appointment", "description": "A cleaning"}]
    agent.save(update_fields=["tools"])
    settings_ = conversation_settings(_ringing_call(organization, twilio, number))
    assert [t["type"] for t in settings_.tools] == ["send_sms"]


# --- the engine's side: the tool's turns and its limit per call -----------------------------------------


class _Results:
    def __init__(self) -> None:
        self.given: list[dict] = []

    async def __call__(self, result, *, properties=None):
        self.given.append(result)


def _run_tool(conversation: Conversation, body: str) -> dict:
    results = _Results()
    params = FunctionCallParams(
        function_name="send_sms",
        tool_call_id="call_1",
        arguments={"body": body},
        llm=None,
        pipeline_worker=None,
        context=None,
        result_callback=results,
    )
    async_to_sync(conversation._tool_send_sms)(params)
    (result,) = results.given
    return result


@pytest.mark.django_db(transaction=True)  # the engine reaches the database from its worker thread
def test_each_text_is_a_tool_turn_and_a_call_sends_at_most_a_few(organization, twilio, number):
    call = _ringing_call(organization, twilio, number)
    conversation = Conversation(conversation_settings(call), ConsumerLink(_discard, serializer=None))

    results = [_run_tool(conversation, f"{ADDRESS} ({n})") for n in range(MAX_TEXTS_PER_CALL + 1)]

    assert results[:MAX_TEXTS_PER_CALL] == [{"ok": True, "result": TEXT_SENT}] * MAX_TEXTS_PER_CALL
    assert results[-1]["ok"] is False and _speakable(results[-1]["error"])
    assert len(twilio.messages) == MAX_TEXTS_PER_CALL == len(_sent_messages(organization))
    turns = list(ConversationTurn.objects.for_org(organization).filter(call=call, role="tool").order_by("index"))
    assert [t.tool for t in turns] == [{"name": "send_sms", "ok": True}] * MAX_TEXTS_PER_CALL + [
        {"name": "send_sms", "ok": False, "reason": "limit"}
    ]
    assert [t.text for t in turns][:1] == [TEXT_SENT]


@pytest.mark.django_db(transaction=True)
def test_a_refusal_is_a_failed_tool_turn_with_what_the_agent_says(organization, twilio, number):
    call = _ringing_call(organization, twilio, number)
    subscription_set(
        phone_number=number, recipient=CALLER, subscribed=False, via=ChangeVia.KEYWORD,
        actor=webhook_actor(organization), keyword="STOP",
    )  # fmt: skip
    conversation = Conversation(conversation_settings(call), ConsumerLink(_discard, serializer=None))

    result = _run_tool(conversation, ADDRESS)

    assert result["ok"] is False and "can't text your number" in result["error"]
    (turn,) = ConversationTurn.objects.for_org(organization).filter(call=call, role="tool")
    assert turn.tool == {"name": "send_sms", "ok": False, "reason": "opted_out"}
    assert turn.text == result["error"]
    assert CALLER not in str(turn.tool) and CALLER not in turn.text
    assert twilio.messages == []


# --- on a real call ----------------------------------------------------------------------------------------


def _wait(predicate, timeout=10.0):
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.05)
    return predicate()


@pytest.mark.django_db(transaction=True)
def test_on_a_call_the_llm_texts_the_caller_and_hears_what_happened(
    asgi_live_server, providers, settings, organization
):
    """The Twilio stand-in calls in and a scripted caller asks for a text; the LLM (its stand-in) calls send_sms:
    Twilio sends it from the call's number, the LLM is given the result and answers, and the transcript has the
    tool's turn."""
    from jagcall.kernel.standins.twilio.media import Hangup, Say

    settings.PUBLIC_BASE_URL = asgi_live_server
    twilio, deepgram, openai = providers.twilio, providers.deepgram, providers.openai
    twilio.message_autodeliver = False
    phone_number = line(organization)
    phone_number.sms_enabled = True
    phone_number.save(update_fields=["sms_enabled"])
    agent = phone_number.agent
    agent.first_message = "Thanks for calling Bright Smile Dental, how can I help?"
    agent.ai_disclosure_enabled = False
    agent.recording_disclosure_enabled = False
    agent.tools = [SEND_SMS]
    agent.save()
    deepgram.live_script = ["Can you text me your address please?"]
    openai.replies = [{"tool": "send_sms", "arguments": {"body": ADDRESS}}, "Done, it's on its way to your phone."]
    twilio.media_caller_script = [
        Say("Can you text me your address please?", min_gap=1.2),
        Hangup(after="agent_done", min_gap=1.0, give_up_after=30),
    ]

    answer = twilio.inbound_call(phone_number.number, CALLER)
    assert twilio.media_callers[answer.call_sid].wait(60).error is None
    call = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)
    assert _wait(lambda: "stream.stopped" in _event_kinds(call))

    (at_twilio,) = twilio.messages
    assert (at_twilio.to, at_twilio.from_, at_twilio.body) == (CALLER, phone_number.number, ADDRESS)
    offered = [tool["function"]["name"] for tool in openai.completions[0]["tools"]]
    assert offered == ["send_sms"]
    # The LLM ran again with the tool's result, and its answer was spoken.
    results = [m for m in openai.completions[1]["messages"] if m.get("role") == "tool"]
    assert results and TEXT_SENT in results[-1]["content"]
    turns = list(ConversationTurn.objects.for_org(organization).filter(call=call).order_by("index"))
    (tool,) = [t for t in turns if t.role == "tool"]
    assert tool.tool == {"name": "send_sms", "ok": True} and tool.text == TEXT_SENT
    assert [t.generated or t.text for t in turns if t.role == "agent"][-1] == "Done, it's on its way to your phone."
    (message,) = _sent_messages(organization)
    assert message.sender_type == SenderType.AGENT
