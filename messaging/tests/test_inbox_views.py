"""The inbox and a thread: what they list and show, paging, search, empty states, reading, other tenants."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.urls import reverse
from django.utils import timezone

from compliance.models import AuditEvent
from messaging.models import (
    Contact, Conversation, Direction, Message, MessageStatus, MessageStatusEvent, SenderType,
)  # fmt: skip
from messaging.tests.support import make_conversation, make_message
from telephony.tests.factories import PhoneNumberFactory

pytestmark = pytest.mark.django_db


def inbox_url(organization, **query):
    url = reverse("messaging:inbox", kwargs={"org_slug": organization.slug})
    return url + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")


def thread_url(conversation, name="messaging:thread"):
    return reverse(name, kwargs={"org_slug": conversation.organization.slug, "conversation_id": conversation.id})


def row_ids(html: str) -> list[str]:
    return re.findall(r'<li data-conversation-id="([0-9a-f-]{36})"', html)


def at(minutes_ago: int) -> dt.datetime:
    return timezone.now() - dt.timedelta(minutes=minutes_ago)


def conversation_with(organization, *, number=None, contact_number="+12129870188", name="", body="Hello",
                      minutes_ago=0, unread=0, direction=Direction.INBOUND):  # fmt: skip
    conversation = make_conversation(organization, phone_number=number, contact_number=contact_number, name=name)
    make_message(organization, conversation=conversation, body=body, direction=direction, created_at=at(minutes_ago))
    Conversation.objects.for_org(organization).filter(pk=conversation.pk).update(
        last_message_at=at(minutes_ago), unread_count=unread
    )
    conversation.refresh_from_db()
    return conversation


@pytest.fixture
def member_client(client, member):
    client.force_login(member)
    return client


# --- the inbox ------------------------------------------------------------------------------------


def test_an_empty_inbox_says_where_texts_come_from_and_what_to_do(member_client, organization):
    html = member_client.get(inbox_url(organization)).content.decode()
    assert "No texts yet" in html and "None of your numbers can text yet" in html
    assert reverse("telephony:number-list", kwargs={"org_slug": organization.slug}) in html
    assert reverse("messaging:compose", kwargs={"org_slug": organization.slug}) in html

    line = PhoneNumberFactory(organization=organization, sms_enabled=True)
    html = member_client.get(inbox_url(organization)).content.decode()
    assert f"Texts sent to {organization.name}'s SMS-capable numbers ({line.number})" in html
    assert "appear here the moment they arrive" in html and "New message" in html


def test_conversations_are_listed_newest_first_with_the_last_message_and_unread_count(member_client, organization):
    line = PhoneNumberFactory(organization=organization, number="+14155550155")
    old = conversation_with(organization, number=line, contact_number="+12129870101", name="Ada Lovelace",
                            body="Old news", minutes_ago=90)  # fmt: skip
    make_message(organization, conversation=old, body="The very last word", created_at=at(60))
    Conversation.objects.for_org(organization).filter(pk=old.pk).update(last_message_at=at(60))
    recent = conversation_with(organization, number=line, contact_number="+12129870102", body="Can I come at 3?",
                               minutes_ago=5, unread=2)  # fmt: skip
    sent = conversation_with(organization, number=line, contact_number="+12129870103", name="Grace",
                             body="Your order is ready", minutes_ago=30, direction=Direction.OUTBOUND)  # fmt: skip

    html = member_client.get(inbox_url(organization)).content.decode()
    assert row_ids(html) == [str(recent.id), str(sent.id), str(old.id)]
    assert "The very last word" in html and "Old news" not in html  # the last message, decrypted
    assert "Ada Lovelace" in html and "+12129870101" in html
    assert "+12129870102" in html  # no name: the number
    assert "To / from +14155550155" in html
    recent_row = html[html.index(f'data-conversation-id="{recent.id}"'):]
    recent_row = recent_row[: recent_row.index("</li>")]
    assert 'data-unread="2"' in recent_row and "Can I come at 3?" in recent_row
    sent_row = html[html.index(f'data-conversation-id="{sent.id}"'):]
    assert "Sent: </span>Your order is ready" in sent_row[: sent_row.index("</li>")]


def test_the_inbox_reads_a_bounded_number_of_queries(member_client, organization, django_assert_max_num_queries):
    line = PhoneNumberFactory(organization=organization)
    for n in range(3):
        conversation_with(organization, number=line, contact_number=f"+1212987{200 + n:04d}", minutes_ago=n)
    member_client.get(inbox_url(organization))  # warm caches (sessions, keysets)
    with django_assert_max_num_queries(30) as few:
        member_client.get(inbox_url(organization))
    for n in range(3, 25):
        conversation_with(organization, number=line, contact_number=f"+1212987{200 + n:04d}", minutes_ago=n)
    with django_assert_max_num_queries(len(few.captured_queries)):
        response = member_client.get(inbox_url(organization))
    assert len(row_ids(response.content.decode())) == 25


def test_the_inbox_shows_fifty_conversations_a_page(member_client, organization):
    line = PhoneNumberFactory(organization=organization)
    made = [
        conversation_with(organization, number=line, contact_number=f"+1212987{300 + n:04d}", minutes_ago=n)
        for n in range(51)
    ]
    first = member_client.get(inbox_url(organization)).content.decode()
    assert row_ids(first) == [str(c.id) for c in made[:50]]
    assert "Page 1 of 2" in first and 'href="?page=2" rel="next"' in first
    second = member_client.get(inbox_url(organization, page=2)).content.decode()
    assert row_ids(second) == [str(made[50].id)] and 'rel="prev"' in second
    # Live updates add new conversations only on the first page.
    assert 'data-live-insert="true"' in first and 'data-live-insert="false"' in second
    # A page that does not exist shows the last one rather than failing.
    assert row_ids(member_client.get(inbox_url(organization, page=99)).content.decode()) == [str(made[50].id)]
    assert member_client.get(inbox_url(organization, page="x")).status_code == 200


def test_search_finds_a_name_part_or_a_whole_number(member_client, organization):
    line = PhoneNumberFactory(organization=organization)
    ada = conversation_with(organization, number=line, contact_number="+12129870111", name="Ada Lovelace")
    bob = conversation_with(organization, number=line, contact_number="+12129870112", name="Bob Stone")

    assert row_ids(member_client.get(inbox_url(organization, q="love")).content.decode()) == [str(ada.id)]
    assert row_ids(member_client.get(inbox_url(organization, q="%2B12129870112")).content.decode()) == [str(bob.id)]
    found = member_client.get(inbox_url(organization, q="%2B1 (212) 987-0112")).content.decode()
    assert row_ids(found) == [str(bob.id)]
    # Part of a number is not found: numbers are stored encrypted.
    none = member_client.get(inbox_url(organization, q="0112")).content.decode()
    assert row_ids(none) == [] and "No conversation matches “0112”" in none
    assert "Show every conversation" in none and 'data-live-insert="false"' in none


def test_the_unread_total_is_in_the_navigation(member_client, organization):
    line = PhoneNumberFactory(organization=organization)
    conversation_with(organization, number=line, contact_number="+12129870121", unread=2)
    conversation_with(organization, number=line, contact_number="+12129870122", unread=3)
    html = member_client.get(reverse("accounts:dashboard", kwargs={"org_slug": organization.slug})).content.decode()
    assert re.search(r'>Messages <span class="badge nav-unread" data-unread-total="5">5<', html)


def test_another_organizations_conversations_are_neither_listed_nor_found(member_client, organization,
                                                                       other_organization):  # fmt: skip
    theirs = conversation_with(other_organization, contact_number="+12129870131", name="Secret Person", unread=4)
    html = member_client.get(inbox_url(organization, q="Secret")).content.decode()
    assert "Secret Person" not in html and row_ids(html) == []
    assert 'data-unread-total="0"' in html
    mine_url = reverse("messaging:thread", kwargs={"org_slug": organization.slug, "conversation_id": theirs.id})
    for name in ("messaging:thread",):
        assert member_client.get(mine_url).status_code == 404
        assert member_client.get(thread_url(theirs, name)).status_code == 404
    actions = ("thread-reply", "thread-read", "thread-take-over", "thread-release", "thread-opt-out-undo",
               "thread-opt-out-keep")  # fmt: skip
    for name in (f"messaging:{action}" for action in actions):
        url = reverse(name, kwargs={"org_slug": organization.slug, "conversation_id": theirs.id})
        assert member_client.post(url, {"body": "hi"}).status_code == 404, name
    theirs.refresh_from_db()
    assert theirs.unread_count == 4 and theirs.taken_over_at is None


# --- a thread -------------------------------------------------------------------------------------


def test_a_thread_shows_each_message_with_its_sender_status_timeline_and_error(member_client, organization, member):
    conversation = make_conversation(organization, contact_number="+12129870141", name="Ada")

    def make(body, minutes, **fields):
        values = {"direction": Direction.INBOUND, "status": MessageStatus.RECEIVED, "sender_type": SenderType.CONTACT}
        values.update(fields)
        return Message.objects.create(
            organization=organization, conversation=conversation, body=body, created_at=at(minutes), **values
        )
    make("Is the clinic open on Saturday?", 50)
    make("Yes, 9 to 12.", 40, direction=Direction.OUTBOUND, sender_type=SenderType.AGENT, sender_label="Front desk",
         status=MessageStatus.DELIVERED)  # fmt: skip
    make("Reminder: your visit is tomorrow.", 30, direction=Direction.OUTBOUND, sender_type=SenderType.API_KEY,
         sender_label="jc_live_abcd1234")  # fmt: skip
    make("Ada: you are subscribed again.", 20, direction=Direction.OUTBOUND, sender_type=SenderType.SYSTEM,
         sender_label="Automatic reply")  # fmt: skip
    failed = make("<b>See you</b> 😊", 10, direction=Direction.OUTBOUND, sender_type=SenderType.MEMBER,
                  sender_label=member.email, status=MessageStatus.UNDELIVERED, error_code=30003)  # fmt: skip
    for status, minutes, code in (("queued", 10, None), ("sent", 9, None), ("undelivered", 8, 30003)):
        MessageStatusEvent.objects.create(organization=organization, message=failed, status=status,
                                          error_code=code, occurred_at=at(minutes))  # fmt: skip

    html = member_client.get(thread_url(conversation)).content.decode()
    bodies = re.findall(r'<p class="message-body" data-message-body>(.*?)</p>', html, re.S)
    assert bodies == [
        "Is the clinic open on Saturday?", "Yes, 9 to 12.", "Reminder: your visit is tomorrow.",
        "Ada: you are subscribed again.", "&lt;b&gt;See you&lt;/b&gt; 😊",
    ]  # oldest first, escaped
    senders = re.findall(r'<strong data-message-sender>(.*?)</strong>\s*<span class="badge" data-message-kind>(.*?)<',
                         html)  # fmt: skip
    assert senders == [
        ("Ada", "Contact"), ("Front desk", "Agent"), ("jc_live_abcd1234", "API"),
        ("JagCall", "Automatic reply"), (member.email, "Member"),
    ]
    item = html[html.index(f'data-message-id="{failed.id}"'):]
    item = item[: item.index("</div>\n</li>")]
    assert 'data-message-status="undelivered">Undelivered<' in item
    assert item.count("<li><time") == 3 and "Undelivered (error 30003)" in item
    assert "Twilio error 30003: The destination phone is unreachable (switched off or out of coverage)." in item
    assert "1 segment, GSM-7" in item


def test_opening_a_thread_marks_it_read_without_an_audit_event(member_client, organization):
    conversation = conversation_with(organization, unread=3)
    before = AuditEvent.objects.for_org(organization).count()
    assert member_client.get(thread_url(conversation)).status_code == 200
    conversation.refresh_from_db()
    assert conversation.unread_count == 0
    assert member_client.get(thread_url(conversation)).status_code == 200  # again: nothing more to do
    Conversation.objects.for_org(organization).filter(pk=conversation.pk).update(unread_count=1)
    response = member_client.post(thread_url(conversation, "messaging:thread-read"))
    assert response.status_code == 204
    conversation.refresh_from_db()
    assert conversation.unread_count == 0
    assert member_client.post(thread_url(conversation, "messaging:thread-read")).status_code == 204
    assert member_client.get(thread_url(conversation, "messaging:thread-read")).status_code == 405
    assert AuditEvent.objects.for_org(organization).exclude(action="access.denied").count() == before


def test_a_long_thread_shows_its_latest_hundred_then_earlier_ones(member_client, organization):
    conversation = make_conversation(organization)
    made = [
        make_message(organization, conversation=conversation, body=f"Message {n}", created_at=at(500 - n))
        for n in range(105)
    ]
    html = member_client.get(thread_url(conversation)).content.decode()
    assert html.count("data-message-body>") == 100
    assert "Message 5<" in html and "Message 4<" not in html
    assert f"?before={made[5].id}" in html and 'data-live-append="true"' in html
    earlier = member_client.get(thread_url(conversation) + f"?before={made[5].id}").content.decode()
    assert re.findall(r"data-message-body>(Message \d+)<", earlier) == [f"Message {n}" for n in range(5)]
    assert 'data-live-append="false"' in earlier and "Back to the latest" in earlier
    assert member_client.get(thread_url(conversation) + "?before=nonsense").status_code == 404
    other = make_message(organization, body="elsewhere")
    assert member_client.get(thread_url(conversation) + f"?before={other.id}").status_code == 404


def test_an_empty_thread_says_so(member_client, organization):
    conversation = make_conversation(organization)
    html = member_client.get(thread_url(conversation)).content.decode()
    assert "No messages in this conversation yet." in html


def test_the_composer_is_replaced_by_a_way_out_when_the_number_cannot_text(member_client, organization):
    conversation = make_conversation(organization)
    number = conversation.phone_number
    number.released_at = timezone.now()
    number.save()
    html = member_client.get(thread_url(conversation)).content.decode()
    assert "can no longer send texts" in html and "data-composer" not in html
    assert "?to=%2B12129870188" in html


def test_an_anonymous_visitor_is_sent_to_sign_in(client, organization):
    conversation = make_conversation(organization)
    response = client.get(thread_url(conversation))
    assert response.status_code == 302 and "/auth/login/" in response["Location"]
    assert not Contact.objects.for_org(organization).exclude(pk=conversation.contact_id).exists()
    assert Message.objects.for_org(organization).count() == 0
