"""A thread's actions: taking it over from the agent and handing it back, reviewing a free-text opt-out,
and what is announced live for the other members' pages."""

from __future__ import annotations

import asyncio
import html as html_lib
import re

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.contrib.messages import get_messages
from django.urls import reverse

from accounts.events import org_group_name
from compliance.models import AuditEvent
from messaging.models import ChangeVia, Conversation, NumberMessaging, SubscriptionChange
from messaging.selectors import subscription_for
from messaging.services.conversations import conversation_mark_read, conversation_take_over
from messaging.services.subscriptions import subscription_set, webhook_actor
from messaging.tests.support import make_conversation, make_message
from telephony.tests.factories import PhoneNumberFactory
from telephony.tests.outbound_support import make_agent

pytestmark = pytest.mark.django_db

CONTACT = "+12129870188"


class GroupListener:
    """The organization's websocket group, heard as a member's open page hears it (the real channel layer)."""

    def __init__(self, organization):
        self.layer = get_channel_layer()
        self.channel = async_to_sync(self.layer.new_channel)()
        async_to_sync(self.layer.group_add)(org_group_name(organization.id), self.channel)

    def events(self) -> list[dict]:
        async def run():
            seen = []
            while True:
                try:
                    seen.append(await asyncio.wait_for(self.layer.receive(self.channel), timeout=0.5))
                except asyncio.TimeoutError:
                    return seen

        return async_to_sync(run)()


def url(name, conversation):
    return reverse(name, kwargs={"org_slug": conversation.organization.slug, "conversation_id": conversation.id})


def flashed(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


def actions(organization, *names) -> list[str]:
    return list(AuditEvent.objects.for_org(organization).filter(action__in=names).values_list("action", flat=True))


@pytest.fixture
def member_client(client, member):
    client.force_login(member)
    return client


@pytest.fixture
def answered(organization):
    """A conversation on a number whose agent answers texts."""
    number = PhoneNumberFactory(organization=organization, agent=make_agent(organization, name="Front desk"))
    NumberMessaging.objects.create(organization=organization, phone_number=number, agent_replies=True)
    return make_conversation(organization, phone_number=number, contact_number=CONTACT, name="Ada")


# --- the agent's take-over --------------------------------------------------------------------------


def test_a_member_takes_the_thread_over_and_hands_it_back(member_client, organization, member, answered,
                                                         django_capture_on_commit_callbacks):  # fmt: skip
    page = member_client.get(url("messaging:thread", answered)).content.decode()
    assert "The agent <strong>Front desk</strong> answers texts" in page and ">Take over</button>" in page

    listener = GroupListener(organization)
    with django_capture_on_commit_callbacks(execute=True):
        response = member_client.post(url("messaging:thread-take-over", answered))
    assert response.status_code == 302 and response["Location"] == url("messaging:thread", answered)
    answered.refresh_from_db()
    assert answered.taken_over_by == member and answered.taken_over_at is not None and answered.agent_paused
    assert flashed(response) == [
        "You took this conversation over: the agent does not reply here until you hand it back."
    ]
    (event,) = [m for m in listener.events() if m["event"] == "conversation.taken_over"]
    assert event["payload"]["conversation"]["id"] == str(answered.id)
    assert event["payload"]["conversation"]["agent_paused"] is True
    assert event["payload"]["conversation"]["taken_over_by"] == member.email

    page = member_client.get(url("messaging:thread", answered)).content.decode()
    assert f"<strong>{member.email} took this conversation over</strong>" in page
    assert ">Hand back to the agent</button>" in page
    # Taking over again changes nothing (no second event).
    member_client.post(url("messaging:thread-take-over", answered))
    assert actions(organization, "conversation.taken_over") == ["conversation.taken_over"]
    member_client.get(url("messaging:thread", answered))  # shows (and so clears) the notices

    listener = GroupListener(organization)  # one listener a drain: the layer's queue keeps to its event loop
    with django_capture_on_commit_callbacks(execute=True):
        response = member_client.post(url("messaging:thread-release", answered))
    assert response.status_code == 302 and flashed(response) == ["The agent answers this conversation again."]
    answered.refresh_from_db()
    assert answered.taken_over_by is None and answered.taken_over_at is None
    assert [m["event"] for m in listener.events()] == ["conversation.released"]
    released = AuditEvent.objects.for_org(organization).get(action="conversation.released")
    assert released.metadata["taken_over_by"] == member.email and CONTACT not in str(released.metadata)
    taken = AuditEvent.objects.for_org(organization).get(action="conversation.taken_over")
    assert taken.actor_id == member.id and taken.resource_id == str(answered.id)
    member_client.post(url("messaging:thread-release", answered))  # already the agent's: nothing
    assert actions(organization, "conversation.released") == ["conversation.released"]


def test_the_agent_does_not_reply_to_a_thread_taken_over(organization, member, answered):
    from messaging.services.agent_replies import _refusal

    assert _refusal(answered) is None
    conversation_take_over(organization=organization, actor=member, conversation=answered)
    answered.refresh_from_db()
    assert _refusal(answered) == "a member has taken the conversation over"


def test_a_thread_another_member_took_over_says_who_has_it(client, organization, member, admin_user, answered):
    conversation_take_over(organization=organization, actor=admin_user, conversation=answered)
    client.force_login(member)
    response = client.post(url("messaging:thread-take-over", answered))
    assert flashed(response) == [f"{admin_user.email} has already taken this conversation over."]
    answered.refresh_from_db()
    assert answered.taken_over_by == admin_user


def test_without_an_agent_answering_there_is_nothing_to_take_over(member_client, organization):
    conversation = make_conversation(organization, contact_number=CONTACT)
    page = member_client.get(url("messaging:thread", conversation)).content.decode()
    assert "Take over" not in page and 'id="thread-agent" aria-label="Agent" data-live-refresh hidden' in page
    response = member_client.post(url("messaging:thread-take-over", conversation))
    assert response.status_code == 302
    (message,) = flashed(response)
    assert "nothing to take over" in message
    conversation.refresh_from_db()
    assert conversation.taken_over_at is None and not actions(organization, "conversation.taken_over")


def test_a_thread_taken_over_can_be_handed_back_after_agent_replies_were_switched_off(member_client, organization,
                                                                                     member, answered):  # fmt: skip
    conversation_take_over(organization=organization, actor=member, conversation=answered)
    NumberMessaging.objects.for_org(organization).update(agent_replies=False)
    page = member_client.get(url("messaging:thread", answered)).content.decode()
    assert ">Hand back to the agent</button>" in page
    member_client.post(url("messaging:thread-release", answered))
    answered.refresh_from_db()
    assert answered.taken_over_at is None


# --- reading ----------------------------------------------------------------------------------------


def test_reading_is_announced_with_how_many_were_read(organization, member, django_capture_on_commit_callbacks):
    conversation = make_conversation(organization, contact_number=CONTACT)
    Conversation.objects.for_org(organization).filter(pk=conversation.pk).update(unread_count=3)
    other = make_conversation(organization, phone_number=conversation.phone_number, contact_number="+12129870177")
    Conversation.objects.for_org(organization).filter(pk=other.pk).update(unread_count=2)
    listener = GroupListener(organization)
    with django_capture_on_commit_callbacks(execute=True):
        assert conversation_mark_read(organization=organization, actor=member, conversation=conversation) is True
        assert conversation_mark_read(organization=organization, actor=member, conversation=conversation) is False
    (event,) = listener.events()
    assert event["event"] == "conversation.read" and event["payload"]["read"] == 3
    assert event["payload"]["unread_total"] == 2  # the other conversation's, for the navigation's badge
    assert event["payload"]["conversation"]["unread_count"] == 0


# --- a free-text opt-out's review ---------------------------------------------------------------------


def free_text_opt_out(organization, conversation, body="please stop texting me, I moved"):
    message = make_message(organization, conversation=conversation, body=body)
    subscription_set(
        phone_number=conversation.phone_number, recipient=CONTACT, subscribed=False, via=ChangeVia.FREE_TEXT,
        actor=webhook_actor(organization), message=message, flagged=True,
    )  # fmt: skip
    return message


def test_a_free_text_opt_out_shows_the_message_and_can_be_undone(member_client, organization, member):
    conversation = make_conversation(organization, contact_number=CONTACT)
    free_text_opt_out(organization, conversation, body="Stop <texting> me please")
    page = member_client.get(url("messaging:thread", conversation)).content.decode()
    assert f"{CONTACT} unsubscribed from texts sent by {conversation.phone_number.number}" in page
    assert "asked in their own words" in page
    quote = re.search(r"<blockquote class=\"review-quote\" data-review-message>(.*?)</blockquote>", page, re.S)
    assert quote.group(1) == "Stop &lt;texting&gt; me please"
    assert ">Undo opt-out</button>" in page and ">Keep opt-out</button>" in page

    response = member_client.post(url("messaging:thread-opt-out-undo", conversation))
    assert response.status_code == 302
    assert flashed(response) == [
        f"The opt-out is undone: {CONTACT} can be texted from {conversation.phone_number.number} again."
    ]
    subscription = subscription_for(conversation.phone_number, CONTACT)
    assert subscription.subscribed and not subscription.needs_review
    change = SubscriptionChange.objects.for_org(organization).filter(subscription=subscription).first()
    assert change.via == ChangeVia.MEMBER_UNDO and change.actor_label == member.email
    assert actions(organization, "sms_subscription.resubscribed") == ["sms_subscription.resubscribed"]
    page = member_client.get(url("messaging:thread", conversation)).content.decode()
    assert "Undo opt-out" not in page and "Subscribed again: A member undid a mistaken opt-out" in page


def test_a_free_text_opt_out_can_be_kept(member_client, organization, member):
    conversation = make_conversation(organization, contact_number=CONTACT)
    free_text_opt_out(organization, conversation)
    response = member_client.post(url("messaging:thread-opt-out-keep", conversation))
    assert flashed(response) == [
        f"The opt-out stays: nothing is sent to {CONTACT} from {conversation.phone_number.number} "
        "until they text START."
    ]
    subscription = subscription_for(conversation.phone_number, CONTACT)
    assert not subscription.subscribed and not subscription.needs_review
    assert actions(organization, "sms_subscription.review_confirmed") == ["sms_subscription.review_confirmed"]
    page = member_client.get(url("messaging:thread", conversation)).content.decode()
    assert "Undo opt-out" not in page and "Nothing can be sent from this number until they text START" in page
    # Once kept, it cannot be undone here: only the person can, by texting START.
    response = member_client.post(url("messaging:thread-opt-out-undo", conversation))
    assert "A keyword opt-out is reversed only by the person texting START" in html_lib.unescape(flashed(response)[0])
    assert not subscription_for(conversation.phone_number, CONTACT).subscribed


def test_a_keyword_opt_out_offers_no_undo_and_refuses_one(member_client, organization):
    conversation = make_conversation(organization, contact_number=CONTACT)
    subscription_set(phone_number=conversation.phone_number, recipient=CONTACT, subscribed=False,
                     via=ChangeVia.KEYWORD, actor=webhook_actor(organization), keyword="STOP")  # fmt: skip
    page = member_client.get(url("messaging:thread", conversation)).content.decode()
    assert "texted a keyword (STOP)" in page and "Undo opt-out" not in page
    response = member_client.post(url("messaging:thread-opt-out-undo", conversation))
    assert "Only an opt-out read from the person's own words" in flashed(response)[0]
    assert not subscription_for(conversation.phone_number, CONTACT).subscribed
    assert not actions(organization, "sms_subscription.resubscribed")


def test_a_subscribed_pair_has_nothing_to_review(member_client, organization):
    conversation = make_conversation(organization, contact_number=CONTACT)
    for name in ("messaging:thread-opt-out-undo", "messaging:thread-opt-out-keep"):
        response = member_client.post(url(name, conversation))
        assert response.status_code == 302
        member_client.get(response["Location"])
        assert flashed(response)[-1:] == [
            f"{CONTACT} is subscribed to texts from {conversation.phone_number.number}: there is no opt-out to review."
        ]
    assert subscription_for(conversation.phone_number, CONTACT) is None


def test_the_inbox_marks_opted_out_pairs(member_client, organization):
    flagged = make_conversation(organization, contact_number=CONTACT)
    free_text_opt_out(organization, flagged)
    stopped = make_conversation(organization, phone_number=flagged.phone_number, contact_number="+12129870199")
    subscription_set(phone_number=flagged.phone_number, recipient="+12129870199", subscribed=False,
                     via=ChangeVia.KEYWORD, actor=webhook_actor(organization), keyword="STOP")  # fmt: skip
    fine = make_conversation(organization, phone_number=flagged.phone_number, contact_number="+12129870198")
    html = member_client.get(reverse("messaging:inbox", kwargs={"org_slug": organization.slug})).content.decode()

    def row(conversation):
        part = html[html.index(f'data-conversation-id="{conversation.id}"'):]
        return part[: part.index("</li>")]

    assert "data-inbox-review>" in row(flagged) and "data-inbox-opted-out hidden>" in row(flagged)
    assert "data-inbox-review hidden>" in row(stopped) and "data-inbox-opted-out>" in row(stopped)
    assert "data-inbox-review hidden>" in row(fine) and "data-inbox-opted-out hidden>" in row(fine)
