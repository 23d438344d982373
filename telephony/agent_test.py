"""Testing an agent from its page: ``/ws/o/<org_slug>/agents/<agent id>/test/``.

A member who may edit agents talks with the agent before it goes live, by text (a chat through
the same engine, no phone) or by voice in the browser (the microphone's audio through this
socket into the same pipeline, the agent's voice back). One conversation per socket, bounded
in time; its turns are stored like a call's, with the test's ``session`` instead of a call.

JSON messages only.

From the page:
    {"type": "start", "channel": "text" | "browser"}   open the conversation (text is opened by the first message too)
    {"type": "text", "text": "..."}                      a chat message (text channel)
    {"type": "audio", "pcm": "<base64>"}                 microphone audio: 16-bit mono PCM, 16 kHz (browser channel)
    {"type": "stop"}                                     end the test

To the page:
    {"type": "ready", ...}                 the socket is open: the agent, the limits, simulated or not
    {"type": "started", "channel": ...}    the conversation runs
    {"type": "live", "role", "text"}       what is being said right now (the agent's reply streaming in)
    {"type": "turn", "turn": {...}}        a stored turn (telephony.services.conversations.turn_payload)
    {"type": "audio", "pcm": "<base64>"}   the agent's voice, same format
    {"type": "clear"}                      the tester interrupted: stop playing the agent's voice
    {"type": "error", "message": "..."}    a message that could not be used, or a provider's failure
    {"type": "ended", "reason": "..."}     the conversation is over (the socket closes after it)

[!!] The agent is looked up in the organization the access check opened (``agent_get`` with
``self.organization``): another organization's agent closes the socket with 4404, like a stranger.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import time
import uuid

from channels.db import database_sync_to_async
from django.http import Http404

from accounts.consumers import CLOSE_NOT_FOUND, OrganizationConsumer
from telephony.engine.analyzers import warm_up
from telephony.engine.browser import BrowserFrameSerializer, pcm_from_message
from telephony.engine.conversation import Conversation
from telephony.engine.transports import ConsumerLink

logger = logging.getLogger("jagcall.telephony")

PERMISSION = "agents.manage"  # the same right as editing the agent (telephony/views/agents.py)
CHANNELS = ("text", "browser")
MAX_TEST_SECONDS = 600  # a test never runs longer than this, whatever the agent's maximum call length
MAX_MESSAGE_CHARS = 64_000  # the largest JSON message read at all (a second of base64 audio is ~43,000)
MAX_AUDIO_BYTES = 32_000  # one second of 16 kHz 16-bit mono audio per message
MAX_TEXT_CHARS = 2_000
MAX_TEXT_MESSAGES = 50  # typed messages in one test (each one is a run of the agent's model)
AUDIO_SPEED_LIMIT = 1.5  # audio may arrive at most this much faster than real time (plus AUDIO_BURST_SECONDS)
AUDIO_BURST_SECONDS = 2.0
CLOSE_NORMAL = 1000

END_MESSAGES = {
    "stopped": "You ended the test.",
    "time_limit": "The test reached its time limit.",
    "silence": "The agent ended the test after hearing nothing for a while.",
    "agent_ended": "The agent ended the conversation.",
    "error": "The conversation stopped because a provider failed.",
}

warm_up()  # Pipecat and the ONNX models load with the web process, never inside a test


@database_sync_to_async
def _agent(organization, agent_id):
    from telephony.selectors.agents import agent_get

    return agent_get(organization=organization, id=agent_id)


@database_sync_to_async
def _settings(agent, *, session: str, channel: str):
    from telephony.services.conversations import test_conversation_settings

    return test_conversation_settings(agent, session=session, channel=channel)


def _simulated() -> bool:
    from jagcall.kernel.providers import simulated_mode

    return simulated_mode()


def missing_keys_message(providers: list[str]) -> str:
    names = {"openai": "OpenAI", "anthropic": "Anthropic", "deepgram": "Deepgram", "elevenlabs": "ElevenLabs"}
    listed = ", ".join(names.get(p, p) for p in providers)
    return (
        f"This test needs an account with {listed}, and none is set up. An owner or admin can connect the "
        "organization's own account under Settings → Provider accounts, or whoever runs JagCall can set the "
        "platform's key."
    )


class AgentTestConsumer(OrganizationConsumer):
    """One test conversation with one agent of the organization."""

    permission_required = PERMISSION
    agent = None
    conversation: Conversation | None = None
    channel = ""
    _used = False
    _closing = False
    _deadline: asyncio.Task | None = None
    _watch: asyncio.Task | None = None
    _texts = 0
    _audio_seconds = 0.0
    _started_at = 0.0

    @property
    def agent_id(self):
        return self.scope["url_route"]["kwargs"]["agent_id"]

    @property
    def limit_seconds(self) -> int:
        return min(MAX_TEST_SECONDS, int(self.agent.max_call_seconds or MAX_TEST_SECONDS))

    async def joined(self):
        try:
            self.agent = await _agent(self.organization, self.agent_id)
        except Http404:
            await self.close(code=CLOSE_NOT_FOUND)
            return
        self._deadline = asyncio.ensure_future(self._time_limit())
        await self.send_json(
            {
                "type": "ready",
                "agent": self.agent.name,
                "channels": list(CHANNELS),
                "max_seconds": self.limit_seconds,
                "simulated": _simulated(),
            }
        )

    async def left(self):
        for task in (self._deadline, self._watch):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
        conversation, self.conversation = self.conversation, None
        if conversation is not None:
            await conversation.stop()

    # --- messages from the page ---------------------------------------------------------------

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if self.agent is None or self._closing:
            return
        if text_data is None:
            await self.error("Send JSON text messages; binary messages are not read.")
            return
        if len(text_data) > MAX_MESSAGE_CHARS:
            await self.error(f"A message may be at most {MAX_MESSAGE_CHARS:,} characters; send audio in smaller chunks.")
            return
        try:
            message = json.loads(text_data)
        except ValueError:
            await self.error("That message is not valid JSON.")
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            await self.error('Each message is a JSON object with a "type".')
            return
        handler = {
            "start": self.on_start,
            "text": self.on_text,
            "audio": self.on_audio,
            "stop": self.on_stop,
        }.get(message["type"])
        if handler is None:
            await self.error(f"Unknown message type {message['type'][:40]!r}: use start, text, audio or stop.")
            return
        await handler(message, text_data)

    async def on_start(self, message: dict, raw: str):
        channel = message.get("channel")
        if channel not in CHANNELS:
            await self.error('"channel" must be "text" or "browser".')
            return
        await self.begin(channel)

    async def on_text(self, message: dict, raw: str):
        text = message.get("text")
        if not isinstance(text, str) or not text.strip():
            await self.error('A text message needs a non-empty "text".')
            return
        if len(text) > MAX_TEXT_CHARS:
            await self.error(f"A message may be at most {MAX_TEXT_CHARS:,} characters.")
            return
        if self.conversation is None and not self._used and not await self.begin("text"):
            return
        if self.channel != "text" or self.conversation is None:
            await self.error("This test is a voice test: speak, or start a new test to chat by text.")
            return
        if self._texts >= MAX_TEXT_MESSAGES:
            await self.error(f"A test takes at most {MAX_TEXT_MESSAGES} messages. Start a new test to go on.")
            return
        self._texts += 1
        await self.conversation.send_text(text)

    async def on_audio(self, message: dict, raw: str):
        if self.channel != "browser" or self.conversation is None:
            await self.error('Start a voice test first: {"type": "start", "channel": "browser"}.')
            return
        pcm = pcm_from_message(message)
        if pcm is None:
            await self.error('"pcm" must be base64 of 16-bit mono PCM at 16 kHz.')
            return
        if len(pcm) > MAX_AUDIO_BYTES:
            await self.error(f"An audio message may hold at most one second ({MAX_AUDIO_BYTES:,} bytes) of audio.")
            return
        # [!!] A microphone sends in real time: audio far ahead of the clock is a client replaying or flooding.
        seconds = len(pcm) / 2 / 16000
        elapsed = time.monotonic() - self._started_at
        if self._audio_seconds + seconds > elapsed * AUDIO_SPEED_LIMIT + AUDIO_BURST_SECONDS:
            await self.error("Audio arrives faster than it is spoken; send the microphone's audio as it is recorded.")
            return
        self._audio_seconds += seconds
        self.conversation.link.feed(raw)  # only queued: the pipeline reads it in its own task

    async def on_stop(self, message: dict, raw: str):
        await self.finish("stopped")

    # --- the conversation ---------------------------------------------------------------------

    async def begin(self, channel: str) -> bool:
        if self._used:
            await self.error("This connection already ran its test. Start a new test to talk again.")
            return False
        settings = await _settings(self.agent, session=uuid.uuid4().hex, channel=channel)
        missing = settings.missing_keys()
        if missing:
            await self.error(missing_keys_message(missing))
            return False
        self._used = True
        self.channel = channel
        self._started_at = time.monotonic()
        settings = dataclasses.replace(settings, max_call_seconds=self.limit_seconds)
        serializer = BrowserFrameSerializer()
        link = ConsumerLink(self._send_link, serializer=serializer)
        self.conversation = Conversation(settings, link, events=self._event)
        self.conversation.start()
        logger.info("agent test %s started: agent %s, %s channel", settings.session, self.agent.pk, channel)
        self._watch = asyncio.ensure_future(self._watch_end(self.conversation))
        await self.send_json({"type": "started", "channel": channel, "session": settings.session})
        return True

    async def _watch_end(self, conversation: Conversation):
        """The conversation ended by itself (silence, the time limit, a failure): say so and close."""
        try:
            await conversation.ended.wait()
        except asyncio.CancelledError:
            return
        if self.conversation is conversation:
            await self.finish(conversation.end_reason or "ended")

    async def _time_limit(self):
        try:
            await asyncio.sleep(self.limit_seconds + 20)  # a voice test says goodbye itself at the limit
        except asyncio.CancelledError:
            return
        await self.finish("time_limit")

    async def finish(self, reason: str):
        if self._closing:
            return
        self._closing = True
        conversation, self.conversation = self.conversation, None
        if conversation is not None:
            await conversation.stop()
        await self.send_json({"type": "ended", "reason": reason, "message": END_MESSAGES.get(reason, "The test ended.")})
        await self.close(code=CLOSE_NORMAL)

    async def error(self, text: str):
        await self.send_json({"type": "error", "message": text})

    async def _event(self, event: dict):
        if not self._closing:
            await self.send_json(event)

    async def _send_link(self, data):
        await self.send(text_data=data if isinstance(data, str) else data.decode())
