"""A number's agent answers texts: the same LLM and knowledge as its calls, a loop guard, a member's take-over.

The LLM is OpenAI's SDK against its stand-in; the reply leaves through the Twilio SDK against its
stand-in. The end-to-end test runs the queued reply in a real Celery worker.
"""

from __future__ import annotations

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from accounts.models import Organization
from messaging.models import Conversation, Direction, Message, NumberMessaging, SenderType
from messaging.services.agent_replies import agent_reply_send
from messaging.tests.support import sms_line, text
from telephony.models import Agent
from telephony.tests.test_pipeline import pipeline_worker, wait_for  # noqa: F401  (the real worker fixture)

PUBLIC = "https://app.jagcall.test"
TEXTER = "+12129870188"


def _demo_line(organization, agent, replies=True):
    number = sms_line(organization, "+14155550123")
    number.agent = agent
    number.save(update_fields=["agent"])
    NumberMessaging.objects.create(organization=organization, phone_number=number, agent_replies=replies)
    return number


@pytest.fixture
def demo(db, settings, twilio_standin, openai_standin, client):
    """Acme Dental from the demo data: its agent answers from its indexed handbook."""
    settings.PUBLIC_BASE_URL = PUBLIC
    settings.MESSAGING_AGENT_REPLIES_PER_WINDOW = 100
    twilio_standin.message_autodeliver = False
    call_command("seed_demo", stdout=StringIO())
    organization = Organization.objects.get(slug="acme-dental")
    agent = Agent.objects.for_org(organization).get(name="Front desk")
    agent.llm_provider, agent.llm_model = "openai", "gpt-4o-mini"
    agent.save(update_fields=["llm_provider", "llm_model"])
    return organization, agent, _demo_line(organization, agent)


def _inbound(organization) -> Message:
    return Message.objects.for_org(organization).filter(direction=Direction.INBOUND).order_by("-created_at").first()


def _agent_replies(organization) -> list[Message]:
    return list(Message.objects.for_org(organization).filter(sender_type=SenderType.AGENT).order_by("created_at"))


@pytest.mark.django_db
def test_the_agent_answers_from_its_knowledge_with_the_conversation_as_context(
    client, demo, openai_standin, twilio_standin, django_capture_on_commit_callbacks
):
    organization, agent, number = demo
    openai_standin.replies = ["You can park on Elm Street, right behind the practice."]
    with django_capture_on_commit_callbacks(execute=False) as queued:
        text(client, number, "Hi, I have an appointment tomorrow.", sender=TEXTER)
    assert sum("agent_reply_queue" in repr(c) for c in queued) == 1  # queued on commit, not run in the webhook
    text(client, number, "Can I park my car at the practice?", sender=TEXTER)
    reply = agent_reply_send(message_id=_inbound(organization).id)
    assert reply.body == "You can park on Elm Street, right behind the practice."
    assert reply.sender_type == SenderType.AGENT and reply.sender_label == agent.name
    assert twilio_standin.messages[-1].body == reply.body and twilio_standin.messages[-1].to == TEXTER
    request = openai_standin.completions[-1]
    system = request["messages"][0]["content"]
    assert agent.system_prompt.strip()[:40] in system and "text message" in system
    assert "Passages from the organization's knowledge base" in system  # its handbook, retrieved for the text
    assert [m["content"] for m in request["messages"][1:]] == [
        "Hi, I have an appointment tomorrow.", "Can I park my car at the practice?",
    ]  # fmt: skip
    assert request["store"] is False


@pytest.mark.django_db
def test_keywords_are_never_answered_by_the_agent(client, demo, django_capture_on_commit_callbacks):
    organization, _agent, number = demo
    for body in ("STOP", "START", "HELP"):
        with django_capture_on_commit_callbacks(execute=False) as queued:
            text(client, number, body, sender=TEXTER)
        assert not [c for c in queued if "agent_reply" in repr(c)]
    assert _agent_replies(organization) == []


@pytest.mark.django_db
def test_the_loop_guard_stops_after_consecutive_automatic_replies(client, demo, openai_standin, settings):
    organization, _agent, number = demo
    settings.MESSAGING_AGENT_MAX_CONSECUTIVE_REPLIES = 3
    openai_standin.default_reply = "Thanks for your message!"
    sent = []
    for turn in range(5):  # another bot answering every reply
        text(client, number, f"Automated notice {turn}: thanks for your message!", sender=TEXTER)
        sent.append(agent_reply_send(message_id=_inbound(organization).id))
    assert [s is not None for s in sent] == [True, True, True, False, False]
    assert len(_agent_replies(organization)) == 3


@pytest.mark.django_db
def test_the_rate_limit_per_conversation(client, demo, openai_standin, settings):
    organization, _agent, number = demo
    settings.MESSAGING_AGENT_REPLIES_PER_WINDOW = 2
    sent = []
    for turn in range(3):
        text(client, number, f"Question {turn}?", sender=TEXTER)
        sent.append(agent_reply_send(message_id=_inbound(organization).id))
        Conversation.objects.for_org(organization).update(consecutive_auto_replies=0)
    assert [s is not None for s in sent] == [True, True, False]


@pytest.mark.django_db
def test_a_member_taking_over_pauses_the_agent(client, demo):
    organization, _agent, number = demo
    text(client, number, "Can I speak to a person?", sender=TEXTER)
    conversation = Conversation.objects.for_org(organization).get()
    conversation.taken_over_at = timezone.now()
    conversation.save(update_fields=["taken_over_at"])
    assert agent_reply_send(message_id=_inbound(organization).id) is None
    assert _agent_replies(organization) == []


@pytest.mark.django_db
def test_replies_off_or_no_agent_means_no_reply(client, demo):
    organization, _agent, number = demo
    NumberMessaging.objects.for_org(organization).update(agent_replies=False)
    text(client, number, "Hello?", sender=TEXTER)
    assert agent_reply_send(message_id=_inbound(organization).id) is None
    NumberMessaging.objects.for_org(organization).update(agent_replies=True)
    number.agent = None
    number.save(update_fields=["agent"])
    assert agent_reply_send(message_id=_inbound(organization).id) is None


@pytest.mark.django_db
def test_only_the_latest_text_of_a_burst_is_answered(client, demo):
    organization, _agent, number = demo
    text(client, number, "Hi", sender=TEXTER)
    first = _inbound(organization)
    Message.objects.for_org(organization).filter(pk=first.pk).update(created_at=timezone.now() - dt.timedelta(seconds=5))
    text(client, number, "are you open on Saturday?", sender=TEXTER)
    assert agent_reply_send(message_id=first.id) is None  # the later text is answered with this one as context
    assert agent_reply_send(message_id=_inbound(organization).id) is not None


@pytest.mark.django_db
def test_an_opt_out_in_between_stops_the_reply_at_the_gate(client, demo, twilio_standin):
    organization, _agent, number = demo
    text(client, number, "What are your hours?", sender=TEXTER)
    question = _inbound(organization)
    text(client, number, "actually, stop texting me", sender=TEXTER)
    Message.objects.for_org(organization).filter(pk=question.pk).update(created_at=timezone.now() + dt.timedelta(hours=1))
    before = len(twilio_standin.messages)
    assert agent_reply_send(message_id=question.id) is None
    assert len(twilio_standin.messages) == before and _agent_replies(organization) == []


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_text_is_answered_through_the_queue_by_a_real_worker(
    client, settings, twilio_standin, openai_standin, pipeline_worker  # noqa: F811
):
    settings.PUBLIC_BASE_URL = PUBLIC
    call_command("seed_demo", stdout=StringIO())
    organization = Organization.objects.get(slug="acme-dental")
    agent = Agent.objects.for_org(organization).get(name="Front desk")
    agent.llm_provider, agent.llm_model = "openai", "gpt-4o-mini"
    agent.save(update_fields=["llm_provider", "llm_model"])
    number = _demo_line(organization, agent)
    openai_standin.replies = ["We're open 8 to 6 on weekdays."]
    answer = text(client, number, "When are you open?", sender=TEXTER)
    assert answer.status_code == 200
    replies = wait_for(lambda: _agent_replies(organization), pipeline_worker)
    assert replies[0].body == "We're open 8 to 6 on weekdays." and replies[0].twilio_sid
    assert any(m.body == "We're open 8 to 6 on weekdays." for m in twilio_standin.messages)
