"""A call's page shows its conversation: the stored turns (decrypted), who spoke, interrupted replies, the
knowledge and tools used, each reply's latencies and the call's median first audio; the same turn shape
(turn_payload) goes live to the organization's events socket over the real Redis channel layer."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from accounts.tests.conftest import redis_channel_layer  # noqa: F401  (the real layer, per test loop)
from accounts.tests.test_consumers import _subscribed
from telephony.models import Call, CallDirection, ConversationTurn
from telephony.services.conversations import conversation_settings, conversation_turn_record, turn_payload
from telephony.tests.outbound_support import make_agent

EMPTY = "No conversation yet — when the agent answers, what is said appears here as it happens."


def _call(organization, *, status="in-progress", agent=None) -> Call:
    return Call.objects.create(
        organization=organization, direction=CallDirection.INBOUND, agent=agent or make_agent(organization),
        from_number="+14155550111", to_number="+14155550123", status=status,
    )  # fmt: skip


def _turn(call, index, role, text, *, seconds=0, **fields) -> ConversationTurn:
    return ConversationTurn.objects.create(
        organization=call.organization, call=call, agent=call.agent, index=index, role=role, text=text,
        started_at=timezone.now() - timedelta(minutes=5) + timedelta(seconds=seconds), **fields,
    )  # fmt: skip


def _latency(first_audio, **others):
    values = {"end_of_turn_ms": 120, "transcript_ms": 180, "handed_over_ms": 210, "retrieved_ms": 240,
              "llm_first_token_ms": 450, "tts_first_byte_ms": 610}  # fmt: skip
    values.update(others)
    return {**values, "first_audio_ms": first_audio}


def _page(client, call):
    return client.get(reverse("telephony:call-detail", kwargs={"org_slug": call.organization.slug, "call_id": call.id}))


def _turn_items(html: str) -> list[str]:
    return re.findall(r"<li class=\"turn[^\"]*\" data-turn data-role=\"[a-z]+\".*?</li>", html, flags=re.S)


@pytest.mark.django_db
def test_the_page_shows_each_turn_as_stored(client, organization, member):
    call = _call(organization)
    _turn(call, 1, "disclosure", "You are speaking with an automated assistant.")
    _turn(call, 2, "agent", "Thanks for calling Bright Smile Dental, how can I help?", seconds=3)
    _turn(call, 3, "caller", "What are your opening hours on Saturday?", seconds=8)
    _turn(call, 4, "agent", "On Saturdays we are open from nine", seconds=10, interrupted=True,
          generated="On Saturdays we are open from nine until one.",
          retrieved=[{"document": "Opening hours.pdf", "pages": "1", "score": 0.03, "chunk": "c1", "text": "..."},
                     {"document": "Opening hours.pdf", "pages": "2", "score": 0.02, "chunk": "c2", "text": "..."},
                     {"document": "Team.md", "pages": "", "score": 0.01, "chunk": "c3", "text": "..."}],
          **_latency(900))  # fmt: skip
    _turn(call, 5, "caller", "Wait, I need to talk to a person please.", seconds=12)
    _turn(call, 6, "tool", "Transferring you to the front desk.", seconds=14,
          tool={"name": "transfer_call", "ok": True, "target": "the front desk"})  # fmt: skip
    _turn(call, 7, "keypad", "4", seconds=15)
    client.force_login(member)

    response = _page(client, call)
    assert response.status_code == 200
    html = response.content.decode()
    items = _turn_items(html)
    assert [re.search(r'data-role="([a-z]+)"', item).group(1) for item in items] == [
        "disclosure", "agent", "caller", "agent", "caller", "tool", "keypad"
    ]
    assert "<strong class=\"turn-who\">Disclosure</strong>" in items[0] and "00:00" in items[0]
    assert "What are your opening hours on Saturday?" in items[2] and "00:08" in items[2]
    # The interrupted reply: marked, and what the caller heard (not what the LLM wrote).
    assert "Interrupted — the caller heard:</span> On Saturdays we are open from nine</p>" in items[3]
    assert "until one" not in html
    assert "Knowledge used:</span> Opening hours.pdf, Team.md" in items[3]
    for label, value in [("End of turn", 120), ("Transcript", 180), ("Handed to the LLM", 210), ("Knowledge", 240), ("LLM first token", 450),
                         ("TTS first byte", 610), ("First audio", 900)]:  # fmt: skip
        assert f"<dt>{label}</dt><dd>{value} ms</dd>" in items[3]
    assert "data-turn-latency" not in items[1]  # the greeting was not an answer: nothing measured
    assert "<code>transfer_call</code>" in items[5] and 'data-tool-ok="true">Done<' in items[5]
    assert "Transferring you to the front desk." in items[5]
    assert "Pressed <kbd>4</kbd>" in items[6]
    assert EMPTY in html and re.search(r"data-conversation-empty\s+hidden", html)  # there, for the live page, hidden


@pytest.mark.django_db
def test_the_median_first_audio_of_the_call_is_shown(client, organization, member):
    call = _call(organization, status="completed")
    for index, first_audio in enumerate([700, 1500, 900, None], start=1):
        _turn(call, 2 * index - 1, "caller", f"Question {index}?", seconds=4 * index)
        _turn(call, 2 * index, "agent", f"Answer {index}.", seconds=4 * index + 1,
              **(_latency(first_audio) if first_audio else {}))  # fmt: skip
    client.force_login(member)
    html = _page(client, call).content.decode()
    summary = re.search(r"<p class=\"conversation-summary\" data-conversation-summary>(.*?)</p>", html, flags=re.S)
    assert summary, "the summary is missing or hidden"
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", summary.group(1)))
    assert "Median first audio: 900 ms" in text and "over 3 replies" in text


@pytest.mark.django_db
def test_a_call_without_turns_says_what_will_appear(client, organization, member):
    call = _call(organization, status="ringing")
    client.force_login(member)
    html = _page(client, call).content.decode()
    assert EMPTY in html and not re.search(r"data-conversation-empty\s+hidden", html)
    assert "<ol class=\"conversation-turns\" data-call-turns" in html  # where live turns go
    assert re.search(r"data-conversation-summary\s+hidden", html)

    finished = _call(organization, status="no-answer")
    html = _page(client, finished).content.decode()
    assert "No conversation was recorded on this call: the agent never spoke with the caller." in html


@pytest.mark.django_db
def test_conversation_text_is_escaped(client, organization, member):
    call = _call(organization)
    _turn(call, 1, "caller", '<script>alert("hi")</script> & <b>bold</b>')
    client.force_login(member)
    html = _page(client, call).content.decode()
    assert "<script>alert" not in html and "<b>bold</b>" not in html
    assert "&lt;script&gt;alert(&quot;hi&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in html


@pytest.mark.django_db
def test_another_organizations_call_is_404(client, organization, other_organization, member):
    foreign = _call(other_organization)
    _turn(foreign, 1, "caller", "A secret of another organization.")
    client.force_login(member)
    url = reverse("telephony:call-detail", kwargs={"org_slug": organization.slug, "call_id": foreign.id})
    response = client.get(url)
    assert response.status_code == 404
    assert "A secret of another organization." not in response.content.decode()


@pytest.mark.django_db
def test_the_number_of_queries_does_not_grow_with_the_turns(client, organization, member):
    agent = make_agent(organization)
    short, long = _call(organization, agent=agent), _call(organization, agent=agent)
    for index in range(1, 3):
        _turn(short, index, "agent" if index % 2 else "caller", f"Turn {index}", **_latency(800))
    for index in range(1, 31):
        _turn(long, index, "agent" if index % 2 else "caller", f"Turn {index}", seconds=index, **_latency(800),
              retrieved=[{"document": "Prices.pdf", "pages": "1", "score": 0.1, "chunk": "c", "text": ""}])  # fmt: skip
    client.force_login(member)
    _page(client, short)  # caches warmed (the organization's keyset) for both
    with CaptureQueriesContext(connection) as few:
        assert _page(client, short).status_code == 200
    with CaptureQueriesContext(connection) as many:
        html = _page(client, long).content.decode()
    assert len(_turn_items(html)) == 30
    assert len(many.captured_queries) == len(few.captured_queries), [q["sql"] for q in many.captured_queries]


@pytest.mark.django_db(transaction=True)
@pytest.mark.usefixtures("redis_channel_layer")
async def test_a_stored_turn_is_announced_live_in_the_shape_the_page_renders(organization, member):
    call = await database_sync_to_async(_call)(organization)
    communicator = await _subscribed(organization.slug, member)
    try:
        settings = await database_sync_to_async(conversation_settings)(call)
        turn = await database_sync_to_async(conversation_turn_record)(
            settings, index=1, role="agent", text="We open at nine.", interrupted=True, latency=_latency(640.4)
        )
        message = await communicator.receive_json_from(timeout=5)
    finally:
        await communicator.disconnect()
    assert message["event"] == "call.turn"
    stored = await database_sync_to_async(ConversationTurn.objects.for_org(organization).get)(pk=turn.pk)
    expected = await database_sync_to_async(turn_payload)(stored)
    assert message["payload"] == {"call_id": str(call.id), **expected}
    assert message["payload"]["text"] == "We open at nine." and message["payload"]["latency"]["first_audio_ms"] == 640
