"""A phone call with the agent, end to end and offline.

The Twilio stand-in rings our voice webhook (served for real on a port), follows the TwiML to
our media stream and plays a scripted caller into it: real mu-law speech (espeak-ng, sox) paced
in real time. Deepgram's live API, the LLM's streaming API and ElevenLabs' streaming TTS are
their stand-ins, spoken to over their wire protocols by Pipecat's own services.
"""

from __future__ import annotations

import time

import pytest
from django.db import connection

from jagcall.kernel.standins import speech
from jagcall.kernel.standins.twilio.media import BargeIn, Dtmf, Hangup, Pause, Say
from telephony.models import Call, CallEvent, ConversationTurn
from telephony.tests.calls_support import line

pytestmark = pytest.mark.django_db(transaction=True)

REPLY = (
    "On Saturdays we are open from nine in the morning until one in the afternoon. "
    "Our hygienists are in on Saturdays too, and the front desk can book you a cleaning, "
    "a check up or an emergency visit. Is there anything else I can help you with today?"
)


def _wait(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def _kinds(call):
    return list(CallEvent.objects.for_org(call.organization_id).filter(call=call).values_list("kind", flat=True))


@pytest.fixture
def phone(asgi_live_server, providers, settings, organization):
    """A number answered by an agent who discloses, greets, may transfer to the front desk."""
    settings.PUBLIC_BASE_URL = asgi_live_server
    number = line(organization)
    agent = number.agent
    agent.system_prompt = "You are the receptionist of Bright Smile Dental."
    agent.first_message = "Thanks for calling Bright Smile Dental, how can I help?"
    agent.ai_disclosure = "You are speaking with an automated assistant."
    agent.recording_disclosure_enabled = False
    agent.tools = [{"type": "transfer", "number": "+14155550199", "description": "the front desk"}]
    agent.save()
    return number


def test_a_caller_hears_the_disclosure_gets_an_answer_interrupts_and_is_transferred(phone, providers, organization):
    twilio, deepgram, openai = providers.twilio, providers.deepgram, providers.openai
    deepgram.live_script = ["What are your opening hours on Saturday?", "Wait, I need to talk to a person please."]
    openai.replies = [REPLY, {"tool": "transfer_call", "arguments": {"destination": 1}}]
    twilio.media_caller_script = [
        Say("What are your opening hours on Saturday?", min_gap=1.2),
        BargeIn("Wait, I need to talk to a person please.", after_agent_audio_seconds=1.5),
        Pause(30),
    ]
    answer = twilio.inbound_call(phone.number, "+14155550100")
    assert "<Connect><Stream" in answer
    caller = twilio.media_callers[answer.call_sid].wait(45)
    assert caller.error is None

    call = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)
    # The transfer went through Twilio: the call now dials the front desk from our number.
    dial = twilio.call_twiml[answer.call_sid][-1]
    assert "<Dial" in dial and "+14155550199" in dial and phone.number in dial
    assert _wait(lambda: "stream.stopped" in _kinds(call))
    # The transfer's turn is written once Twilio has confirmed the move, and the move itself ends the media
    # stream: the turn may land a moment after the stream's end.
    assert _wait(lambda: ConversationTurn.objects.for_org(organization).filter(call=call, role="tool").exists())
    kinds = _kinds(call)
    assert kinds.index("engine.disclosures_played") < kinds.index("engine.transferred")
    assert kinds.count("engine.barge_in") == 1  # one caller spoke over the agent, once
    assert kinds.index("stream.started") < kinds.index("in-progress")  # answered when the stream opened

    turns = list(ConversationTurn.objects.for_org(organization).filter(call=call).order_by("index"))
    roles = [t.role for t in turns]
    assert roles[:2] == ["disclosure", "agent"], roles  # the disclosure, then the first message
    assert turns[0].text == "You are speaking with an automated assistant."
    assert turns[1].text == "Thanks for calling Bright Smile Dental, how can I help?"
    caller_turns = [t.text for t in turns if t.role == "caller"]
    assert caller_turns == ["What are your opening hours on Saturday?", "Wait, I need to talk to a person please."]
    answered = [t for t in turns if t.role == "agent" and t.generated]
    assert answered, roles
    reply = answered[0]
    # Barge-in: what was stored is what the caller heard, a prefix of what was generated.
    assert reply.interrupted and reply.generated.strip() == REPLY
    assert reply.text and len(reply.text) < len(REPLY) and REPLY.startswith(reply.text.split(" ")[0])
    assert caller.clears, "Twilio was never told to clear the agent's audio"
    # Every stage of the answered turn was measured, in order: Smart Turn's decision comes before the turn
    # is handed to the LLM, which waits for the speech-to-text service's final text as well.
    assert 0 < reply.end_of_turn_ms <= reply.handed_over_ms <= reply.llm_first_token_ms
    assert reply.llm_first_token_ms <= reply.tts_first_byte_ms <= reply.first_audio_ms
    transfer = [t for t in turns if t.role == "tool"]
    assert transfer and transfer[0].tool == {"name": "transfer_call", "ok": True, "target": "the front desk"}
    # The conversation text is encrypted at rest.
    with connection.cursor() as cursor:
        cursor.execute("SELECT text FROM telephony_conversationturn WHERE id = %s", [reply.pk])
        (stored,) = cursor.fetchone()
    assert "Saturday" not in str(stored) and "nine" not in str(stored)


def test_keys_pressed_are_part_of_the_transcript(phone, providers, organization):
    twilio = providers.twilio
    twilio.media_caller_script = [Pause(1.0), Dtmf("4"), Pause(1.0), Hangup()]
    answer = twilio.inbound_call(phone.number, "+14155550100")
    twilio.media_callers[answer.call_sid].wait(30)
    call = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)
    keypad = _wait(lambda: list(ConversationTurn.objects.for_org(organization).filter(call=call, role="keypad")))
    assert [t.text for t in keypad] == ["4"]


def test_an_ended_call_gives_the_memory_it_freed_back_to_the_system(phone, providers, organization, settings,
                                                                     monkeypatch):
    from jagcall.kernel import memory

    if memory._malloc_trim() is None:
        pytest.skip("this C library has no malloc_trim")
    settings.MEMORY_TRIM_INTERVAL_SECONDS = 60
    monkeypatch.setattr(memory, "_last_trim", float("-inf"))
    twilio = providers.twilio
    twilio.media_caller_script = [Pause(1.0), Hangup()]
    began = time.monotonic()
    answer = twilio.inbound_call(phone.number, "+14155550100")
    twilio.media_callers[answer.call_sid].wait(30)
    assert _wait(lambda: memory._last_trim >= began), "no malloc_trim after the call ended"


def test_a_backchannel_holds_the_agents_voice_a_moment_and_it_goes_on_without_losing_a_word(
    phone, providers, organization
):
    """The caller's "okay" over the agent: Twilio is told to clear at once (the agent holds), the word is too
    short to interrupt, and the agent goes on from where Twilio stopped: every byte of its speech arrives."""
    from jagcall.kernel.standins import speech

    twilio, deepgram, openai = providers.twilio, providers.deepgram, providers.openai
    deepgram.live_script = ["What are your opening hours on Saturday?", "Okay."]
    openai.replies = [REPLY]
    twilio.media_caller_script = [
        Say("What are your opening hours on Saturday?", min_gap=1.2),
        BargeIn("Okay.", after_agent_audio_seconds=1.5),
        Hangup(after="agent_done", min_gap=2.0, give_up_after=40),
    ]
    answer = twilio.inbound_call(phone.number, "+14155550100")
    caller = twilio.media_callers[answer.call_sid].wait(60)
    assert caller.error is None
    call = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)
    assert _wait(lambda: "stream.stopped" in _kinds(call))

    (okay,) = [u for u in caller.utterances if u.barge_in]
    assert okay.clear_delay is not None and okay.clear_delay < 1.0  # held on the voice, not on the words
    # The agent went quiet while the caller spoke, then on.
    arrivals = [at for at, _ in caller.frames_received if at > okay.started_at]
    gaps = [later - earlier for earlier, later in zip(arrivals, arrivals[1:])]
    assert gaps and max(gaps) > 0.25 and arrivals[-1] - okay.ended_at > 1.0
    # Nothing the agent said was lost to the clear: what was held was sent again.
    spoken = [text for session in providers.elevenlabs.tts_sessions for _, text in session.spoken]
    produced = sum(len(speech.render(text.strip(), sample_rate=8000, encoding="mulaw")) for text in spoken)
    assert caller.agent_audio_bytes >= produced - 160, (caller.agent_audio_bytes, produced)

    kinds = _kinds(call)
    assert "engine.barge_in" not in kinds  # a backchannel is not an interruption
    answered = [t for t in ConversationTurn.objects.for_org(organization).filter(call=call, role="agent")
                if t.generated]  # fmt: skip
    assert answered and not answered[0].interrupted and answered[0].text == REPLY


def test_the_disclosure_is_heard_whole_whatever_the_caller_says_over_it(phone, providers, organization):
    """A caller speaking over the disclosure neither stops it nor reaches the LLM: it plays to the end, then
    the first message."""
    twilio, deepgram, openai = providers.twilio, providers.deepgram, providers.openai
    deepgram.live_script = ["Hello? Hello?"]
    twilio.media_caller_script = [
        BargeIn("Hello? Hello?", after_agent_audio_seconds=0.4),
        Hangup(after="agent_done", min_gap=1.5, give_up_after=30),
    ]
    answer = twilio.inbound_call(phone.number, "+14155550100")
    caller = twilio.media_callers[answer.call_sid].wait(45)
    assert caller.error is None
    call = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)
    assert _wait(lambda: "stream.stopped" in _kinds(call))

    assert caller.clears == []  # Twilio was never told to drop any of it
    kinds = _kinds(call)
    assert "engine.disclosures_played" in kinds and "engine.barge_in" not in kinds
    turns = list(ConversationTurn.objects.for_org(organization).filter(call=call).order_by("index"))
    assert [(t.role, t.text) for t in turns] == [
        ("disclosure", "You are speaking with an automated assistant."),
        ("agent", "Thanks for calling Bright Smile Dental, how can I help?"),
    ]
    assert not openai.completions  # what was said over the disclosure went nowhere


def test_a_first_message_cut_short_after_the_disclosure_is_stored_as_heard(phone, providers, organization):
    """The caller's mute ends with the disclosure: speaking over the first message interrupts it, and its
    turn holds the words of the first message the caller heard, none of the disclosure's."""
    twilio, deepgram = providers.twilio, providers.deepgram
    disclosure_seconds = len(speech.render("You are speaking with an automated assistant.")) / 8000
    deepgram.live_script = ["Sorry, who is this please?"]
    twilio.media_caller_script = [
        BargeIn("Sorry, who is this please?", after_agent_audio_seconds=disclosure_seconds + 1.0),
        Hangup(after="agent_done", min_gap=1.5, give_up_after=30),
    ]
    answer = twilio.inbound_call(phone.number, "+14155550100")
    caller = twilio.media_callers[answer.call_sid].wait(45)
    assert caller.error is None
    call = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)
    assert _wait(lambda: "stream.stopped" in _kinds(call))

    kinds = _kinds(call)
    assert "engine.disclosures_played" in kinds and kinds.count("engine.barge_in") == 1
    assert caller.clears
    turns = list(ConversationTurn.objects.for_org(organization).filter(call=call).order_by("index"))
    assert [t.role for t in turns[:3]] == ["disclosure", "agent", "caller"], [t.role for t in turns]
    greeting, first = "Thanks for calling Bright Smile Dental, how can I help?", turns[1]
    assert first.interrupted and first.text and len(first.text) < len(greeting), first.text
    assert greeting.startswith(first.text), first.text  # before: "You are speaking with ... Thanks for"
    assert turns[2].text == "Sorry, who is this please?"


def test_a_reply_cut_short_keeps_its_own_latencies_and_the_next_reply_gets_its_own(phone, providers, organization):
    """The caller interrupts with two short words: the interrupted reply's latencies are the ones measured up
    to its first audio (not overwritten by the interruption's own turn), and the reply to the interruption is
    measured too."""
    twilio, deepgram, openai = providers.twilio, providers.deepgram, providers.openai
    deepgram.live_script = ["What are your opening hours on Saturday?", "Okay, great."]
    openai.replies = [REPLY, "Glad to help. Anything else?"]
    twilio.media_caller_script = [
        Say("What are your opening hours on Saturday?", min_gap=1.2),
        BargeIn("Okay, great.", after_agent_audio_seconds=1.5),
        Hangup(after="agent_done", min_gap=1.5, give_up_after=30),
    ]
    answer = twilio.inbound_call(phone.number, "+14155550100")
    assert twilio.media_callers[answer.call_sid].wait(60).error is None
    call = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)
    assert _wait(lambda: "stream.stopped" in _kinds(call))

    replies = [t for t in ConversationTurn.objects.for_org(organization).filter(call=call, role="agent").order_by("index")
               if t.generated]  # fmt: skip
    assert [t.generated for t in replies] == [REPLY, "Glad to help. Anything else?"]
    assert replies[0].interrupted
    for reply in replies:
        assert 0 < reply.end_of_turn_ms <= reply.llm_first_token_ms <= reply.tts_first_byte_ms <= reply.first_audio_ms, (
            reply.generated, reply.end_of_turn_ms, reply.llm_first_token_ms, reply.first_audio_ms)  # fmt: skip
        assert reply.first_audio_ms < 5000
