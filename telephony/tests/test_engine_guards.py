"""The conversation's guards, on a real call (offline, as telephony/tests/test_engine_call.py).

A call longer than the agent's maximum is ended with a goodbye; a silent caller is asked once if they
are still there, then told goodbye and hung up on; an answering machine is hung up on, or left the
agent's message (after the disclosures), as the agent is set; a fax is hung up on.
"""

from __future__ import annotations

import datetime as dt
import time

import pytest

from jagcall.kernel.standins.twilio.media import Hangup, Pause, Say
from telephony.engine.conversation import GOODBYE_SILENT, GOODBYE_TIME_LIMIT, STILL_THERE
from telephony.models import Call, CallEvent, ConversationTurn, VoicemailAction
from telephony.services.outbound import place_call
from telephony.tests.calls_support import line

pytestmark = pytest.mark.django_db(transaction=True)

CALLEE = "+14155550100"
NOON_IN_SAN_FRANCISCO = dt.datetime(2027, 1, 15, 20, 0, tzinfo=dt.UTC)


def _wait(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    return predicate()


def _events(call) -> list[CallEvent]:
    return list(CallEvent.objects.for_org(call.organization_id).filter(call=call).order_by("occurred_at", "created_at"))


def _kinds(call) -> list[str]:
    return [event.kind for event in _events(call)]


def _ended_by_engine(call) -> dict | None:
    return next((event.details for event in _events(call) if event.kind == "engine.ended"), None)


def _spoken(elevenlabs) -> str:
    """Everything the ElevenLabs stand-in was asked to say, in order, as one text."""
    texts = [text for session in list(elevenlabs.tts_sessions) for _, text in list(session.spoken)]
    return " ".join(" ".join(texts).split())


def _turns(call) -> list[ConversationTurn]:
    return list(ConversationTurn.objects.for_org(call.organization_id).filter(call=call).order_by("index"))


@pytest.fixture
def number(asgi_live_server, providers, settings, organization):
    settings.PUBLIC_BASE_URL = asgi_live_server
    number = line(organization)
    agent = number.agent
    agent.system_prompt = "You are the receptionist of Bright Smile Dental."
    agent.first_message = "Thanks for calling Bright Smile Dental, how can I help?"
    agent.ai_disclosure = "You are speaking with an automated assistant."
    agent.recording_disclosure_enabled = False
    agent.save()
    return number


def test_a_call_over_the_agents_time_limit_is_told_so_and_hung_up(number, providers, organization):
    agent = number.agent
    agent.max_call_seconds = 6
    agent.save()
    twilio = providers.twilio
    twilio.media_caller_script = [Pause(40)]  # listens, says nothing: the silence guard is further off
    began = time.monotonic()
    answer = twilio.inbound_call(number.number, CALLEE)
    caller = twilio.media_callers[answer.call_sid].wait(40)
    call = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)

    assert _wait(lambda: _ended_by_engine(call)) == {"reason": "time_limit"}
    assert time.monotonic() - began < 30 and not caller.script_done  # hung up before the caller was done
    kinds = _kinds(call)
    assert kinds.index("engine.disclosures_played") < kinds.index("engine.time_limit") < kinds.index("engine.ended")
    assert next(e for e in _events(call) if e.kind == "engine.time_limit").details == {"seconds": 6}
    assert twilio.calls[answer.call_sid].status == "completed"
    # The goodbye was spoken before the hang-up: the ElevenLabs stand-in was asked for it.
    assert GOODBYE_TIME_LIMIT in _spoken(providers.elevenlabs)


def test_a_silent_caller_is_asked_once_then_told_goodbye_and_hung_up(number, providers, organization, settings):
    settings.ENGINE_SILENCE_TIMEOUT_SECONDS = 2.0
    settings.ENGINE_SILENCE_PROMPTS = 1
    twilio = providers.twilio
    twilio.media_caller_script = [Pause(40)]
    answer = twilio.inbound_call(number.number, CALLEE)
    twilio.media_callers[answer.call_sid].wait(40)
    call = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)

    assert _wait(lambda: _ended_by_engine(call)) == {"reason": "silence"}
    kinds = _kinds(call)
    # The silence is counted from the end of the first message, never during the disclosure.
    assert kinds.index("engine.disclosures_played") < kinds.index("engine.silence_prompt")
    assert kinds.count("engine.silence_prompt") == 1
    assert kinds.index("engine.silence_prompt") < kinds.index("engine.silence_timeout") < kinds.index("engine.ended")
    spoken = _spoken(providers.elevenlabs)
    assert spoken.index(STILL_THERE) < spoken.index(GOODBYE_SILENT)


def test_a_caller_who_answers_the_prompt_is_asked_again_before_being_hung_up(number, providers, organization, settings):
    """Speaking resets the count: the next silence gets its prompt again, not the goodbye at once."""
    settings.ENGINE_SILENCE_TIMEOUT_SECONDS = 3.0
    settings.ENGINE_SILENCE_PROMPTS = 1
    twilio, deepgram, openai = providers.twilio, providers.deepgram, providers.openai
    deepgram.live_script = ["Yes, I am still here, sorry."]
    openai.replies = ["No problem, take your time."]
    # The opening (disclosure and first message) takes about 6 s; the prompt comes 3 s after it. The caller
    # waits past the opening, answers once the prompt has played, then stays silent until hung up on.
    twilio.media_caller_script = [Pause(7.5), Say("Yes, I am still here, sorry.", min_gap=0.4), Pause(40)]
    answer = twilio.inbound_call(number.number, CALLEE)
    twilio.media_callers[answer.call_sid].wait(60)
    call = Call.objects.for_org(organization).get(twilio_sid=answer.call_sid)

    assert _wait(lambda: _ended_by_engine(call)) == {"reason": "silence"}
    kinds = _kinds(call)
    prompts = [i for i, kind in enumerate(kinds) if kind == "engine.silence_prompt"]
    assert len(prompts) == 2, kinds
    assert prompts[1] < kinds.index("engine.silence_timeout")
    assert "Yes, I am still here, sorry." in [t.text for t in _turns(call) if t.role == "caller"]
    spoken = _spoken(providers.elevenlabs)
    assert spoken.index(STILL_THERE) < spoken.index("No problem, take your time.") < spoken.rindex(STILL_THERE)


def _outbound(number, owner, organization, twilio, *, answered_by: str) -> Call:
    """Place a call with the number's agent and let Twilio's machine detection answer ``answered_by``."""
    call = place_call(
        organization=organization, actor=owner, agent=number.agent, to_number=CALLEE, from_number=number,
        now=NOON_IN_SAN_FRANCISCO,  # the calling window is the callee's clock, not the test run's
    )
    call.refresh_from_db()
    twilio.advance(call.twilio_sid, "ringing")
    twilio.advance(call.twilio_sid, "in-progress", AnsweredBy=answered_by)
    return call


def test_an_answering_machine_is_hung_up_on_when_the_agent_says_so(number, providers, organization, owner):
    twilio = providers.twilio
    twilio.media_caller_script = [Pause(30)]
    call = _outbound(number, owner, organization, twilio, answered_by="machine_start")
    caller = twilio.media_callers[call.twilio_sid].wait(30)

    assert _wait(lambda: _ended_by_engine(call)) == {"reason": "voicemail"}
    assert caller.agent_audio_bytes == 0  # not a word to the machine
    voicemail = next(e for e in _events(call) if e.kind == "engine.voicemail")
    assert voicemail.details == {"action": "hang_up", "answered_by": "machine_start"}
    assert twilio.calls[call.twilio_sid].status == "completed"
    assert [t.role for t in _turns(call)] == []


def test_an_answering_machine_is_left_the_agents_message_after_the_beep(number, providers, organization, owner):
    agent = number.agent
    agent.voicemail_action = VoicemailAction.LEAVE_MESSAGE
    agent.voicemail_message = "Hi, this is Bright Smile Dental reminding you of your cleaning tomorrow at ten."
    agent.save()
    twilio = providers.twilio
    twilio.media_caller_script = [Pause(40)]
    call = _outbound(number, owner, organization, twilio, answered_by="machine_end_beep")
    (creation,) = twilio.requests_to(f"/2010-04-01/Accounts/{number.account_sid}/Calls.json", "POST")
    assert creation.form["MachineDetection"] == "DetectMessageEnd"  # the message starts after the greeting
    caller = twilio.media_callers[call.twilio_sid].wait(40)

    assert _wait(lambda: _ended_by_engine(call)) == {"reason": "voicemail_left"}
    assert caller.agent_audio_seconds > 2  # the message was played
    voicemail = next(e for e in _events(call) if e.kind == "engine.voicemail")
    assert voicemail.details == {"action": "leave_message", "answered_by": "machine_end_beep"}
    left = [t.text for t in _turns(call) if t.role == "agent"]
    assert left == [f"You are speaking with an automated assistant. {agent.voicemail_message}"]


def test_a_fax_is_hung_up_on_whatever_the_voicemail_setting(number, providers, organization, owner):
    agent = number.agent
    agent.voicemail_action = VoicemailAction.LEAVE_MESSAGE
    agent.save()
    twilio = providers.twilio
    twilio.media_caller_script = [Pause(30)]
    call = _outbound(number, owner, organization, twilio, answered_by="fax")
    caller = twilio.media_callers[call.twilio_sid].wait(30)
    assert _wait(lambda: _ended_by_engine(call)) == {"reason": "voicemail"}
    assert caller.agent_audio_bytes == 0
    voicemail = next(e for e in _events(call) if e.kind == "engine.voicemail")
    assert voicemail.details == {"action": "hang_up", "answered_by": "fax"}


def test_a_person_who_answers_an_outbound_call_hears_the_agent(number, providers, organization, owner):
    twilio = providers.twilio
    # Long enough for the disclosure and the agent's first words on a busy machine, before the person hangs up.
    twilio.media_caller_script = [Pause(10), Hangup()]
    call = _outbound(number, owner, organization, twilio, answered_by="human")
    twilio.media_callers[call.twilio_sid].wait(30)
    assert _wait(lambda: "engine.disclosures_played" in _kinds(call))
    assert "engine.voicemail" not in _kinds(call)
    # The turns are stored as the call ends: wait for them rather than read them once.
    assert _wait(lambda: [t.role for t in _turns(call)][:2] == ["disclosure", "agent"]), [t.role for t in _turns(call)]
