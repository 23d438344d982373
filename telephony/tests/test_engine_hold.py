"""Holding the agent's voice while the caller speaks over it: the conversation's side, with the transport
and the pipeline stood in (the whole path runs in telephony/tests/test_engine_call.py)."""

from __future__ import annotations

import asyncio

from pipecat.frames.frames import TTSSpeakFrame

from telephony.engine.conversation import GOODBYE_TIME_LIMIT, Conversation
from telephony.tests.engine_support import browser_settings


class _Output:
    """What the conversation asks of the output transport."""

    def __init__(self):
        self.holding = False
        self.calls: list[str] = []
        self.plays_until = 0.0
        self.leads: list[float | None] = []

    def set_lead(self, seconds):
        self.leads.append(seconds)

    async def hold(self):
        self.holding = True
        self.calls.append("hold")

    async def release(self):
        self.holding = False
        self.calls.append("release")


class _Task:
    def __init__(self, conversation):
        self.frames = []
        self._conversation = conversation

    async def queue_frame(self, frame):
        self.frames.append(frame)
        if isinstance(frame, TTSSpeakFrame):  # the goodbye plays (only if nothing holds the voice)
            asyncio.get_running_loop().call_later(0.05, self._played)

    def _played(self):
        quiet = getattr(self._conversation, "_quiet", None)
        if quiet is not None and not self._conversation._output.holding:
            quiet.set()


def _conversation(settings) -> Conversation:
    config = browser_settings()
    conversation = Conversation(config, link=None)
    conversation._output = _Output()
    conversation._task = _Task(conversation)
    conversation._bot_speaking = True
    return conversation


async def test_the_caller_speaking_holds_the_agent_and_quiet_releases_it(settings):
    settings.ENGINE_BARGE_IN_RELEASE_SECONDS = 0.05
    conversation = _conversation(settings)
    conversation.caller_voice_started()
    await asyncio.sleep(0.01)
    assert conversation._output.calls == ["hold"]
    conversation.caller_voice_started()  # still speaking: one hold
    conversation.caller_voice_stopped()
    await asyncio.sleep(0.2)
    assert conversation._output.calls == ["hold", "release"]


async def test_no_hold_when_the_agent_is_silent_or_holding_is_off(settings):
    conversation = _conversation(settings)
    conversation._bot_speaking = False
    conversation.caller_voice_started()
    settings.ENGINE_BARGE_IN_HOLD = False
    other = _conversation(settings)
    other.caller_voice_started()
    await asyncio.sleep(0.01)
    assert conversation._output.calls == [] and other._output.calls == []


async def test_a_hold_at_the_end_is_released_so_the_goodbye_is_heard(settings):
    settings.ENGINE_BARGE_IN_HOLD_MAX_SECONDS = 30  # the caller would talk on: no timer frees it in time
    conversation = _conversation(settings)
    conversation.caller_voice_started()
    await asyncio.sleep(0.01)
    assert conversation._output.holding
    ended = asyncio.get_running_loop().time()
    await asyncio.wait_for(conversation.end("time_limit", goodbye=GOODBYE_TIME_LIMIT), 5)
    assert asyncio.get_running_loop().time() - ended < 2  # not the 15 s wait for a goodbye that never plays
    assert conversation._output.calls == ["hold", "release"]
    assert [f.text for f in conversation._task.frames if isinstance(f, TTSSpeakFrame)] == [GOODBYE_TIME_LIMIT]


async def test_the_first_message_is_asked_for_as_the_disclosures_last_audio_goes_and_they_play_out_uninterrupted(
    settings, monkeypatch
):
    import dataclasses
    import time

    conversation = _conversation(settings)
    conversation.settings = dataclasses.replace(
        conversation.settings, disclosures=("This call is with an AI assistant.",), first_message="Hello!"
    )
    conversation.disclosures_done = False
    output = conversation._output
    output.plays_until = time.monotonic() + 0.3  # their audio went ahead; it plays for 0.3 s more
    order = []

    async def slow_record(**fields):
        order.append(("record", fields["role"]))
        await asyncio.sleep(0.2)  # the database on a busy server

    async def slow_event(kind, details=None):
        order.append(("event", kind))

    monkeypatch.setattr(conversation, "_record_turn", slow_record)
    monkeypatch.setattr(conversation, "_event", slow_event)
    conversation.speech_ended()  # the disclosures' last audio went out
    await asyncio.sleep(0.05)

    (first,) = [frame for frame in conversation._task.frames if isinstance(frame, TTSSpeakFrame)]
    assert first.text == "Hello!"  # already being synthesized: ready when the disclosures end
    assert output.leads == [None]  # what follows goes out at the usual lead again
    conversation.caller_voice_started()  # the caller speaks over the end of the disclosures
    await asyncio.sleep(0.01)
    assert not conversation.disclosures_done and output.calls == [] and order == []  # muted: not cut short

    await asyncio.sleep(0.3)  # they have played
    assert conversation.disclosures_done
    assert order == [("record", "disclosure")]  # the call's first turn
    await asyncio.sleep(0.3)
    assert order == [("record", "disclosure"), ("event", "engine.disclosures_played")]
    conversation.caller_voice_started()
    await asyncio.sleep(0.01)
    assert output.calls == ["hold"]  # from now on the caller's voice holds the agent's
