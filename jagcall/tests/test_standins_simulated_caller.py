"""Ringing a simulated caller through the Twilio stand-in's own route (/stand-in/..., twilio/control.py),
as the web process of `make run` does: credentials like every route, a number of the account, a named
script spoken into the Media Stream that the voice webhook's answer connects."""

from __future__ import annotations

import json
import time
import uuid

import pytest
import requests

from jagcall.kernel.providers import twilio_client
from jagcall.kernel.standins import speech
from jagcall.kernel.standins.deepgram import DEFAULT_LIVE_SCRIPT
from jagcall.kernel.standins.simulated import CALLER_SCRIPTS, DEFAULT_CALLER_SCRIPT, opening_hours_caller, start_all
from jagcall.kernel.standins.twilio.control import SimulatedCallerUnavailable, ring_simulated_caller
from jagcall.kernel.standins.twilio.media import BargeIn, Hangup, MediaStreamCaller, Pause, Say
from jagcall.tests.test_standins_media import SPOKEN, StreamServer, VoiceAnswer, media, waits_for_stop

CALLER = "+14155550134"


@pytest.fixture
def line(twilio_standin):
    """A number of a subaccount whose voice webhook connects a Media Stream to the test's own server."""
    server = StreamServer(waits_for_stop).__enter__()
    answering = VoiceAnswer()
    answering.twiml = f'<Response><Connect><Stream url="{server.url}"/></Connect></Response>'
    answering.start()
    account = twilio_client().api.v2010.accounts.create(friendly_name="Acme Dental")
    number = twilio_client(subaccount_sid=account.sid).incoming_phone_numbers.create(
        phone_number="+14155550123", voice_url=answering.base_url + "/voice",
        status_callback=answering.base_url + "/status",
    )  # fmt: skip
    twilio_standin.caller_scripts = {"short": lambda: [Pause(0.2), Hangup()]}
    yield account, number, server
    answering.stop()
    server.__exit__(None, None, None)


def _route(standin, account_sid: str) -> str:
    return f"{standin.base_url}/stand-in/Accounts/{account_sid}/SimulatedCalls.json"


def _ring(standin, account, number, **changes):
    values = {"account_sid": account.sid, "username": standin.account_sid, "password": standin.auth_token,
              "to": number.phone_number, "from_": CALLER, "script": "short", **changes}  # fmt: skip
    return ring_simulated_caller(standin.base_url, **values)


def test_the_route_refuses_requests_without_the_accounts_credentials(twilio_standin, line):
    account, number, _ = line
    form = {"To": number.phone_number, "From": CALLER, "Script": "short"}
    anonymous = requests.post(_route(twilio_standin, account.sid), data=form, timeout=5)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == 20003
    url = _route(twilio_standin, account.sid)
    wrong = requests.post(url, data=form, auth=(account.sid, "not-the-token"), timeout=5)
    assert wrong.status_code == 401
    # Another account's credentials do not open this one (a sibling subaccount).
    sibling = twilio_client().api.v2010.accounts.create(friendly_name="Globex")
    foreign = requests.post(url, data=form, auth=(sibling.sid, sibling.auth_token), timeout=5)
    assert foreign.status_code == 401
    with pytest.raises(SimulatedCallerUnavailable) as refused:
        _ring(twilio_standin, account, number, password="not-the-token")
    assert refused.value.status == 401
    assert not twilio_standin.calls  # nothing rang


def test_a_named_script_rings_the_number_and_is_spoken_into_its_stream(twilio_standin, line):
    account, number, server = line
    sid = _ring(twilio_standin, account, number)  # the parent's credentials open the subaccount
    assert sid.startswith("CA") and twilio_standin.calls[sid].from_ == CALLER
    assert twilio_standin.calls[sid].direction == "inbound" and twilio_standin.calls[sid].account_sid == account.sid
    deadline = time.monotonic() + 10
    while sid not in twilio_standin.media_callers and time.monotonic() < deadline:
        time.sleep(0.02)
    caller = twilio_standin.media_callers[sid].wait(10)
    assert caller.error is None and caller.closed_by == "caller" and caller.script_done
    assert server.of("start")[0][1]["start"]["callSid"] == sid and server.of("stop")
    client = twilio_client(subaccount_sid=account.sid)
    deadline = time.monotonic() + 5  # the stream's end completes the call, from the stand-in's own thread
    while client.calls(sid).fetch().status != "completed" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert client.calls(sid).fetch().status == "completed"
    voice = twilio_standin.callbacks_for(sid, "voice")
    assert voice and voice[0].params["From"] == CALLER and voice[0].params["To"] == number.phone_number
    # The subaccount's own credentials work too.
    assert _ring(twilio_standin, account, number, username=account.sid, password=account.auth_token).startswith("CA")
    twilio_standin.stop_media_streams()


@pytest.mark.parametrize(
    "changes,status,says",
    [
        ({"script": "sing-a-song"}, 400, "Unknown Script 'sing-a-song'; known scripts: short"),
        ({"from_": "12"}, 400, "Invalid 'From' Phone Number: 12"),
        ({"to": "+14155550199"}, 404, "+14155550199 is not a number of"),
        ({"to": ""}, 400, "No 'To' number is specified"),
    ],
)
def test_bad_rings_are_refused_with_what_to_fix(twilio_standin, line, changes, status, says):
    account, number, _ = line
    with pytest.raises(SimulatedCallerUnavailable) as refused:
        _ring(twilio_standin, account, number, **changes)
    assert refused.value.status == status and says in str(refused.value)
    assert not twilio_standin.calls


def test_a_caller_who_cannot_speak_never_rings(twilio_standin, line, monkeypatch):
    account, number, _ = line
    sentence = f"A sentence never spoken before, number {uuid.uuid4().hex}."  # not in the speech cache

    def missing(name):
        raise speech.SpeechUnavailable(f"{name} is not installed; on Debian: apt-get install {name}")

    monkeypatch.setattr(speech, "_tool", missing)
    twilio_standin.caller_scripts["mute"] = lambda: [Say(sentence), Hangup()]
    with pytest.raises(SimulatedCallerUnavailable) as refused:
        _ring(twilio_standin, account, number, script="mute")
    assert refused.value.status == 503
    assert "cannot speak: espeak-ng is not installed; on Debian: apt-get install espeak-ng" in str(refused.value)
    assert not twilio_standin.calls


def test_a_number_of_another_account_is_not_found(twilio_standin, line):
    _, number, _ = line
    other = twilio_client().api.v2010.accounts.create(friendly_name="Globex")
    with pytest.raises(SimulatedCallerUnavailable) as refused:
        _ring(twilio_standin, other, number)
    assert refused.value.status == 404


def test_an_unreachable_stand_in_says_so():
    with pytest.raises(SimulatedCallerUnavailable, match="did not answer"):
        ring_simulated_caller("http://127.0.0.1:9", account_sid="AC" + "0" * 32, username="AC" + "0" * 32,
                              password="x", to="+14155550123", from_=CALLER, script="short", timeout=2)  # fmt: skip


async def agent_speaks_half_a_second(websocket, server: StreamServer) -> None:
    await server.next(websocket, "start")
    server.times["reply_sent"] = time.monotonic()
    for _ in range(25):
        await websocket.send(media(SPOKEN))
    await server.next(websocket, "stop")
    server.times["stop"] = time.monotonic()
    await server.drain(websocket)


def test_a_hang_up_after_the_agent_waits_for_its_answer_to_play_out():
    with StreamServer(agent_speaks_half_a_second) as server:
        caller = MediaStreamCaller(server.url, script=[Hangup(after="agent_done", min_gap=0.8)])
        caller.start().wait(10)
    waited = server.times["stop"] - server.times["reply_sent"]
    assert 0.8 <= waited < 2.0, waited  # the half second played in real time, and no new audio for the gap
    assert caller.closed_by == "caller" and not caller.events("gave_up_waiting")


def test_simulated_mode_registers_a_caller_the_deepgram_stand_in_transcribes(settings):
    providers = start_all()
    try:
        assert providers.twilio.caller_scripts == CALLER_SCRIPTS and DEFAULT_CALLER_SCRIPT in CALLER_SCRIPTS
    finally:
        providers.stop()
    steps = opening_hours_caller()
    spoken = [step.text for step in steps if isinstance(step, (Say, BargeIn))]
    # The Deepgram stand-in gives each stretch of speech the next line of its live script.
    assert spoken == DEFAULT_LIVE_SCRIPT[: len(spoken)]
    assert isinstance(steps[0], Say) and "opening hours" in steps[0].text
    assert isinstance(steps[1], BargeIn) and len(steps[1].text.split()) <= 3
    assert isinstance(steps[-1], Hangup) and steps[-1].after == "agent_done"
    assert json.dumps([type(step).__name__ for step in steps]) == '["Say", "BargeIn", "Hangup"]'
