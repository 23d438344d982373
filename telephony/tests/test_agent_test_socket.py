"""Testing an agent from its page over its websocket (/ws/o/<slug>/agents/<id>/test/).

The real ASGI application and Redis channel layer, a real signed-in session; the providers are
their local stand-ins (the LLMs, Deepgram's live API, ElevenLabs' streaming TTS), spoken to by
Pipecat's own services.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.db import connection
from django.test import Client

from accounts.tests.conftest import redis_channel_layer  # noqa: F401  (the real layer, per test loop)
from jagcall.asgi import application
from telephony.models import ConversationTurn
from telephony.tests.factories import AgentFactory

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("redis_channel_layer")]

ORIGIN = (b"origin", b"http://127.0.0.1")
REPLY = "We are open from nine to five on weekdays, and from nine to one on Saturdays."


def _cookie(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{settings.SESSION_COOKIE_NAME}={client.cookies[settings.SESSION_COOKIE_NAME].value}".encode()


async def _open(organization, agent_id, user):
    headers = [ORIGIN, (b"cookie", await sync_to_async(_cookie)(user))]
    communicator = WebsocketCommunicator(application, f"/ws/o/{organization.slug}/agents/{agent_id}/test/", headers=headers)
    connected, code = await communicator.connect(timeout=5)
    return communicator, connected, code


@contextlib.asynccontextmanager
async def _socket(organization, agent_id, user):
    """An open test socket (closed at the end whatever happens, so no conversation outlives the test)."""
    communicator, connected, code = await _open(organization, agent_id, user)
    assert connected, code
    try:
        ready = await communicator.receive_json_from(timeout=5)
        assert ready["type"] == "ready"
        yield communicator
    finally:
        await communicator.disconnect()


async def _until(communicator, predicate, timeout=20.0, seen=None):
    """Messages until one satisfies ``predicate`` (all of them go into ``seen``)."""
    while True:
        message = await communicator.receive_json_from(timeout=timeout)
        if seen is not None:
            seen.append(message)
        if predicate(message):
            return message


@pytest.fixture
def agent(organization):
    return AgentFactory(
        organization=organization,
        name="Front desk",
        system_prompt="You are the receptionist of Bright Smile Dental.",
        first_message="Thanks for calling Bright Smile Dental, how can I help?",
    )


async def test_a_text_chat_gets_the_agents_reply_and_stores_the_turns_of_the_session(
    organization, owner, agent, providers
):
    providers.openai.replies = [REPLY]
    async with _socket(organization, agent.id, owner) as communicator:
        await communicator.send_json_to({"type": "text", "text": "When are you open?"})
        seen = []
        reply = await _until(communicator, lambda m: m["type"] == "turn" and m["turn"]["role"] == "agent", seen=seen)
    assert reply["turn"]["text"] == REPLY
    started = [m for m in seen if m["type"] == "started"]
    assert started and started[0]["channel"] == "text"
    # The reply streamed in before it was stored.
    assert [m["text"] for m in seen if m["type"] == "live"][-1] == REPLY
    caller = [m["turn"] for m in seen if m["type"] == "turn" and m["turn"]["role"] == "caller"]
    assert [t["text"] for t in caller] == ["When are you open?"]
    latency = reply["turn"]["latency"]
    assert latency["end_of_turn_ms"] is not None and latency["llm_first_token_ms"] is not None
    assert latency["end_of_turn_ms"] <= latency["retrieved_ms"] <= latency["llm_first_token_ms"]
    assert latency["tts_first_byte_ms"] is None  # nothing was spoken
    # The LLM was asked with the agent's prompt and the tester's message.
    asked = providers.openai.completions[-1]
    assert any(
        m["role"] == "system" and m["content"].startswith("You are the receptionist of Bright Smile Dental.")
        for m in asked["messages"]
    )
    assert asked["messages"][-1] == {"role": "user", "content": "When are you open?"}
    assert asked["stream"] is True and asked["store"] is False  # OpenAI keeps no copy of the conversation

    turns = await sync_to_async(lambda: list(ConversationTurn.objects.for_org(organization).filter(agent=agent)))()
    assert [t.role for t in turns] == ["caller", "agent"]
    assert all(t.call_id is None and t.session == started[0]["session"] for t in turns)
    # Stored encrypted, like a call's turns.
    def stored():
        with connection.cursor() as cursor:
            cursor.execute("SELECT text FROM telephony_conversationturn WHERE id = %s", [turns[1].pk])
            return cursor.fetchone()[0]

    assert "Saturdays" not in str(await sync_to_async(stored)())


async def test_an_agent_on_anthropic_answers_through_anthropics_streaming_api(organization, owner, providers):
    agent = await sync_to_async(AgentFactory)(
        organization=organization, name="Front desk", llm_provider="anthropic", llm_model="claude-3-5-haiku-latest",
        system_prompt="You are the receptionist of Bright Smile Dental.",
    )  # fmt: skip
    providers.anthropic.replies = [REPLY]
    async with _socket(organization, agent.id, owner) as communicator:
        await communicator.send_json_to({"type": "text", "text": "When are you open?"})
        reply = await _until(communicator, lambda m: m["type"] == "turn" and m["turn"]["role"] == "agent")
    assert reply["turn"]["text"] == REPLY
    (asked,) = providers.anthropic.messages
    assert asked["model"] == "claude-3-5-haiku-latest" and asked["stream"] is True
    # The agent's prompt is Anthropic's system parameter, not lost to another instruction.
    assert json.dumps(asked["system"]).startswith('"You are the receptionist of Bright Smile Dental.')
    assert asked["messages"][-1]["role"] == "user" and "When are you open?" in json.dumps(asked["messages"][-1])
    assert not providers.openai.completions  # the agent's provider, not another


async def test_a_voice_test_in_the_browser_hears_the_tester_and_answers_with_audio(
    organization, owner, agent, providers
):
    from jagcall.kernel.standins.speech import render

    def quiet_agent():
        agent.ai_disclosure_enabled = False
        agent.recording_disclosure_enabled = False
        agent.first_message = ""  # the tester speaks first
        agent.save()

    await sync_to_async(quiet_agent)()
    providers.deepgram.live_script = ["What are your opening hours on Saturday?"]
    providers.openai.replies = [REPLY]
    speech = await sync_to_async(render)("What are your opening hours on Saturday?", sample_rate=16000, encoding="pcm16")
    audio = speech + b"\x00\x00" * 16000 * 2  # then two seconds of silence
    seen = []
    async with _socket(organization, agent.id, owner) as communicator:
        await communicator.send_json_to({"type": "start", "channel": "browser"})
        started = await _until(communicator, lambda m: m["type"] == "started", seen=seen)
        assert started["channel"] == "browser"
        for offset in range(0, len(audio), 3200):  # 100 ms a message, in real time
            chunk = audio[offset : offset + 3200]
            await communicator.send_json_to({"type": "audio", "pcm": base64.b64encode(chunk).decode()})
            await asyncio.sleep(0.1)
        await _until(communicator, lambda m: m["type"] == "turn" and m["turn"]["role"] == "agent", timeout=30, seen=seen)
        await communicator.send_json_to({"type": "stop"})
        ended = await _until(communicator, lambda m: m["type"] == "ended", seen=seen)
    assert ended["reason"] == "stopped"
    caller = [m["turn"]["text"] for m in seen if m["type"] == "turn" and m["turn"]["role"] == "caller"]
    assert caller == ["What are your opening hours on Saturday?"]
    reply = [m["turn"] for m in seen if m["type"] == "turn" and m["turn"]["role"] == "agent"][0]
    assert reply["text"] == REPLY
    # The agent's voice came back as 16 kHz PCM16 in base64, and every stage of the reply was timed.
    voice = b"".join(base64.b64decode(m["pcm"]) for m in seen if m["type"] == "audio")
    assert len(voice) > 16000 and len(voice) % 2 == 0
    latency = reply["latency"]
    assert 0 < latency["end_of_turn_ms"] <= latency["llm_first_token_ms"] <= latency["tts_first_byte_ms"]
    assert latency["first_audio_ms"] is not None
    assert any(m["type"] == "live" and m["role"] == "caller" for m in seen)
    turns = await sync_to_async(lambda: list(ConversationTurn.objects.for_org(organization).filter(agent=agent)))()
    assert {t.role for t in turns} == {"caller", "agent"} and all(t.call_id is None and t.session for t in turns)


async def test_bad_messages_are_answered_with_errors_and_the_socket_stays_open(organization, owner, agent, providers):
    async with _socket(organization, agent.id, owner) as communicator:
        async def answer(text_data):
            await communicator.send_to(text_data=text_data)
            return await communicator.receive_json_from(timeout=5)

        assert "not valid JSON" in (await answer("{nope"))["message"]
        assert '"type"' in (await answer("[1, 2]"))["message"]
        assert "Unknown message type" in (await answer(json.dumps({"type": "dance"})))["message"]
        assert "channel" in (await answer(json.dumps({"type": "start", "channel": "fax"})))["message"]
        assert "Start a voice test first" in (await answer(json.dumps({"type": "audio", "pcm": "AAAA"})))["message"]
        assert "non-empty" in (await answer(json.dumps({"type": "text", "text": "  "})))["message"]
        assert "2,000" in (await answer(json.dumps({"type": "text", "text": "a" * 2001})))["message"]
        assert "at most" in (await answer(json.dumps({"type": "audio", "pcm": "A" * 70000})))["message"]
        await communicator.send_to(bytes_data=b"\x00\x01")
        assert (await communicator.receive_json_from(timeout=5))["type"] == "error"
        # A voice test refuses audio that is not whole 16-bit samples, or too long.
        await communicator.send_json_to({"type": "start", "channel": "browser"})
        await _until(communicator, lambda m: m["type"] == "started")
        odd = await answer(json.dumps({"type": "audio", "pcm": base64.b64encode(b"\x00" * 3).decode()}))
        assert "16-bit" in odd["message"]
        long = await answer(json.dumps({"type": "audio", "pcm": base64.b64encode(b"\x00" * 40000).decode()}))
        assert "one second" in long["message"]
        # Audio faster than real time is refused (a microphone cannot get ahead of the clock).
        second = json.dumps({"type": "audio", "pcm": base64.b64encode(b"\x00" * 32000).decode()})
        answers = []
        for _ in range(4):
            await communicator.send_to(text_data=second)
        for _ in range(2):
            answers.append(await communicator.receive_json_from(timeout=5))
        assert all("faster than it is spoken" in a["message"] for a in answers)
        # One conversation per socket.
        again = await answer(json.dumps({"type": "start", "channel": "text"}))
        assert "already ran its test" in again["message"]
        text = await answer(json.dumps({"type": "text", "text": "hello"}))
        assert "voice test" in text["message"]


async def test_a_test_without_the_providers_keys_says_what_to_set_up(organization, owner, agent, settings):
    settings.OPENAI_API_KEY = ""
    settings.SIMULATED_PROVIDERS = False
    async with _socket(organization, agent.id, owner) as communicator:
        await communicator.send_json_to({"type": "text", "text": "Hello?"})
        error = await communicator.receive_json_from(timeout=5)
    assert error["type"] == "error" and "OpenAI" in error["message"] and "Provider accounts" in error["message"]


async def test_only_members_who_may_edit_agents_test_their_own_organizations_agents(
    organization, owner, member, other_organization, other_owner, agent
):
    from telephony.tests.factories import AgentFactory

    other_agent = await sync_to_async(AgentFactory)(organization=other_organization)
    # Another organization's agent, through one's own organization: as if it did not exist.
    communicator, connected, _ = await _open(organization, other_agent.id, owner)
    try:
        # The access check passed (the owner's own organization); the agent is not found in it.
        assert connected
        assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4404}
    finally:
        await communicator.disconnect()
    # A stranger to the organization.
    _, connected, code = await _open(organization, agent.id, other_owner)
    assert (connected, code) == (False, 4404)
    # A member whose role may not edit agents.
    _, connected, code = await _open(organization, agent.id, member)
    assert (connected, code) == (False, 4403)


async def test_a_text_reply_shows_the_knowledge_passages_it_was_given(providers):
    """The demo agent answers from its indexed handbook: the passages go to the LLM, their documents onto the turn."""
    from io import StringIO

    from django.core.management import call_command

    from accounts.models import Organization
    from accounts.tests.factories import MembershipFactory, UserFactory
    from knowledge.models import Document
    from telephony.models import Agent

    def demo():
        call_command("seed_demo", stdout=StringIO())
        organization = Organization.objects.get(slug="acme-dental")
        owner = UserFactory(email="tester@acme.test")
        MembershipFactory(organization=organization, user=owner, role="owner")
        agent = Agent.objects.for_org(organization).get(name="Front desk")
        return organization, owner, agent, Document.objects.for_org(organization).get().name

    organization, owner, agent, document = await sync_to_async(demo)()
    providers.openai.replies = ["You can park on Elm Street, right behind the practice."]
    async with _socket(organization, agent.id, owner) as communicator:
        await communicator.send_json_to({"type": "text", "text": "Can I park my car at the practice?"})
        reply = await _until(communicator, lambda m: m["type"] == "turn" and m["turn"]["role"] == "agent")
    assert document in reply["turn"]["sources"]
    assert reply["turn"]["latency"]["retrieved_ms"] is not None
    system = " ".join(m["content"] for m in providers.openai.completions[-1]["messages"] if m["role"] == "system")
    assert "Elm Street" in system
