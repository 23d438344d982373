"""Sending from the portal: the thread's composer and "New message", through the real Twilio SDK and its
stand-in. A refusal (the pre-send gate, the form, Twilio) is shown at the field it concerns, and nothing is
sent or stored."""

from __future__ import annotations

import datetime as dt
import html as html_lib
import json
import re
from types import SimpleNamespace

import pytest
from django.urls import reverse

from compliance.models import AuditEvent
from compliance.services import do_not_call_add
from messaging.models import A2PStatus, ChangeVia, Conversation, Message, NumberMessaging, SenderType
from messaging.services import gate
from messaging.services.subscriptions import subscription_set, webhook_actor
from messaging.tests.support import make_conversation, sms_line
from messaging.views import A2P_WARNING
from telephony.tests.factories import PhoneNumberFactory

PUBLIC = "https://app.jagcall.test"
TO = "+12129870188"  # New York
NIGHT_IN_NEW_YORK = dt.datetime(2027, 1, 15, 4, 0, tzinfo=dt.UTC)  # 23:00 the evening before, local
NOON_IN_NEW_YORK = dt.datetime(2027, 1, 15, 17, 0, tzinfo=dt.UTC)

pytestmark = pytest.mark.django_db


@pytest.fixture
def line(twilio_standin, settings, organization, client):
    settings.PUBLIC_BASE_URL = PUBLIC
    twilio_standin.route_callbacks_to(client)
    twilio_standin.message_autodeliver = False  # status callbacks are played by the test, in its transaction
    return sms_line(organization, "+14155550123")


@pytest.fixture
def member_client(client, member):
    client.force_login(member)
    return client


def compose_url(organization):
    return reverse("messaging:compose", kwargs={"org_slug": organization.slug})


def reply_url(conversation):
    return reverse("messaging:thread-reply", kwargs={"org_slug": conversation.organization.slug,
                                                      "conversation_id": conversation.id})  # fmt: skip


def error_at(html: str, field: str) -> str:
    found = re.search(rf'<small class="field-error" id="id_{field}_error">(.*?)</small>', html, re.S)
    assert found, f"no error at {field}"
    return html_lib.unescape(found.group(1))


def summary_errors(html: str) -> str:
    found = re.search(r'<div class="notice notice-error" role="alert" tabindex="-1" data-error-summary>(.*?)</div>',
                      html, re.S)  # fmt: skip
    assert found, "no error above the form"
    return html_lib.unescape(found.group(1))


def nothing_sent(organization, standin):
    assert standin.messages == []
    assert not Message.objects.for_org(organization).exists()
    assert not AuditEvent.objects.for_org(organization).filter(action="message.sent").exists()


def compose(client, organization, line, **data):
    return client.post(compose_url(organization), {"from_number": str(line.id), "to": TO, "body": "Hello!", **data})


# --- sending ------------------------------------------------------------------------------------


def test_a_member_writes_a_new_message_and_lands_on_its_thread(member_client, organization, member, line,
                                                               twilio_standin):  # fmt: skip
    response = compose(member_client, organization, line, body="Your results are in.\r\nCall us back.")
    message = Message.objects.for_org(organization).get()
    assert response.status_code == 302
    assert response["Location"] == reverse(
        "messaging:thread", kwargs={"org_slug": organization.slug, "conversation_id": message.conversation_id}
    )
    sent = twilio_standin.messages[-1]
    assert (sent.to, sent.from_, sent.body) == (TO, line.number, "Your results are in.\nCall us back.")
    assert message.sender_type == SenderType.MEMBER and message.sent_by == member and not message.marketing
    thread = member_client.get(response["Location"]).content.decode()
    assert "Your results are in.\nCall us back." in thread and f'<strong data-message-sender>{member.email}<' in thread


def test_the_thread_composer_texts_the_contact_from_the_conversations_number(member_client, organization, line,
                                                                            twilio_standin, monkeypatch):  # fmt: skip
    monkeypatch.setattr(gate, "timezone", SimpleNamespace(now=lambda: NOON_IN_NEW_YORK))  # a marketing text's hours
    conversation = make_conversation(organization, phone_number=line, contact_number=TO)
    Conversation.objects.for_org(organization).filter(pk=conversation.pk).update(consecutive_auto_replies=3)
    response = member_client.post(reply_url(conversation), {"body": "We can see you at 3 😊", "marketing": "on"})
    assert response.status_code == 302 and response["Location"].endswith(f"/messages/{conversation.id}/")
    sent = twilio_standin.messages[-1]
    assert (sent.to, sent.from_, sent.body) == (TO, line.number, "We can see you at 3 😊")
    message = Message.objects.for_org(organization).get()
    assert message.conversation == conversation and message.marketing and message.encoding == "UCS-2"
    conversation.refresh_from_db()
    assert conversation.consecutive_auto_replies == 0  # a person wrote: the agent's loop guard starts again


# --- refusals: at the field, nothing sent -----------------------------------------------------------


def test_an_invalid_recipient_is_shown_at_to(member_client, organization, line, twilio_standin):
    response = compose(member_client, organization, line, to="+1 555")
    assert response.status_code == 422
    assert "not a valid phone number" in error_at(response.content.decode(), "to")
    nothing_sent(organization, twilio_standin)


def test_a_number_on_the_do_not_call_list_is_shown_at_to(member_client, organization, member, line, twilio_standin):
    do_not_call_add(organization=organization, actor=member, number=TO)
    response = compose(member_client, organization, line)
    assert response.status_code == 422
    assert "do-not-call list" in error_at(response.content.decode(), "to")
    nothing_sent(organization, twilio_standin)


def test_an_opted_out_pair_is_refused_in_the_composer_and_on_the_new_message_page(member_client, organization, line,
                                                                                 twilio_standin):  # fmt: skip
    subscription_set(phone_number=line, recipient=TO, subscribed=False, via=ChangeVia.KEYWORD,
                     actor=webhook_actor(organization), keyword="STOP")  # fmt: skip
    conversation = make_conversation(organization, phone_number=line, contact_number=TO)
    response = member_client.post(reply_url(conversation), {"body": "Are you still there?"})
    assert response.status_code == 422
    html = response.content.decode()
    assert f"{TO} unsubscribed from texts sent by {line.number}" in summary_errors(html)
    assert "Are you still there?</textarea>" in html  # what was typed is kept
    assert "Nothing can be sent from this number until they text START" in html  # the thread's notice too
    response = compose(member_client, organization, line)
    assert response.status_code == 422 and "until they text START" in error_at(response.content.decode(), "to")
    nothing_sent(organization, twilio_standin)


def test_a_marketing_text_outside_the_recipients_hours_is_refused_and_a_reply_is_not(
    member_client, organization, line, twilio_standin, monkeypatch
):
    monkeypatch.setattr(gate, "timezone", SimpleNamespace(now=lambda: NIGHT_IN_NEW_YORK))  # the gate's clock
    response = compose(member_client, organization, line, body="50% off this week!", marketing="on")
    assert response.status_code == 422
    error = error_at(response.content.decode(), "to")
    assert "Marketing texts are sent only" in error and "08:00-21:00" in error
    nothing_sent(organization, twilio_standin)
    response = compose(member_client, organization, line, body="Your prescription is ready.")
    assert response.status_code == 302 and len(twilio_standin.messages) == 1


def test_another_organizations_number_or_one_that_cannot_text_is_not_a_choice(
    member_client, organization, other_organization, line, twilio_standin
):
    theirs = PhoneNumberFactory(organization=other_organization, sms_enabled=True)
    voice_only = PhoneNumberFactory(organization=organization, sms_enabled=False)
    for number in (theirs, voice_only):
        response = compose(member_client, organization, line, from_number=str(number.id))
        assert response.status_code == 400
        assert error_at(response.content.decode(), "from_number") == "Choose one of your numbers that can send texts."
    page = member_client.get(compose_url(organization)).content.decode()
    assert str(line.id) in page and str(voice_only.id) not in page and str(theirs.id) not in page
    nothing_sent(organization, twilio_standin)


def test_an_empty_or_too_long_message_is_shown_at_the_message(member_client, organization, line, twilio_standin):
    response = compose(member_client, organization, line, body="  \r\n ")
    assert response.status_code == 400
    assert error_at(response.content.decode(), "body") == "Write a message before sending."
    response = compose(member_client, organization, line, body="x" * 1601)
    assert response.status_code == 400
    assert "1601 characters long; a text is at most 1600" in error_at(response.content.decode(), "body")
    conversation = make_conversation(organization, phone_number=line, contact_number=TO)
    response = member_client.post(reply_url(conversation), {"body": ""})
    assert response.status_code == 400 and error_at(response.content.decode(), "body")
    nothing_sent(organization, twilio_standin)


def test_twilio_not_taking_the_text_is_explained_and_nothing_is_stored(member_client, organization, line,
                                                                      twilio_standin):  # fmt: skip
    twilio_standin.numbers.pop(line.twilio_sid)  # Twilio no longer holds the number: 21606
    response = compose(member_client, organization, line)
    assert response.status_code == 502
    assert "Twilio did not send the text: The sending number cannot send texts" in summary_errors(
        response.content.decode()
    )
    nothing_sent(organization, twilio_standin)


def test_an_organization_whose_plan_has_no_messaging_is_told_so(member_client, organization, line, twilio_standin):
    organization.plan_code = "legacy"
    organization.save(update_fields=["plan_code"])
    response = compose(member_client, organization, line)
    assert response.status_code == 422
    assert "plan does not include text messaging" in summary_errors(response.content.decode())
    nothing_sent(organization, twilio_standin)


# --- the page before sending ---------------------------------------------------------------------


def test_the_segment_count_is_rendered_for_the_text_as_posted(member_client, organization, line, twilio_standin):
    # 71 emoji: two UTF-16 units each, never split, so 33 a segment of 67 units.
    response = compose(member_client, organization, line, body="😀" * 71, to="nonsense")
    html = response.content.decode()
    assert re.search(r"data-segment-characters>71<", html) and re.search(r"data-segment-segments>3<", html)
    assert 'data-segment-encoding="UCS-2">UCS-2<' in html
    fresh = member_client.get(compose_url(organization)).content.decode()
    assert re.search(r"data-segment-characters>0<", fresh) and 'data-segment-encoding="GSM-7"' in fresh
    nothing_sent(organization, twilio_standin)


def test_the_marketing_box_explains_the_sending_hours(member_client, organization, line):
    html = member_client.get(compose_url(organization)).content.decode()
    assert "sent only 08:00–21:00 in the recipient&#x27;s time" in html


def test_a_us_long_code_not_registered_for_a2p_is_warned_about_before_sending(member_client, organization):
    long_code = PhoneNumberFactory(organization=organization, number="+14155550160")
    toll_free = PhoneNumberFactory(organization=organization, number="+18885550123")
    registered = PhoneNumberFactory(organization=organization, number="+14155550161")
    NumberMessaging.objects.create(organization=organization, phone_number=registered, a2p_status=A2PStatus.VERIFIED)
    NumberMessaging.objects.create(organization=organization, phone_number=long_code, a2p_status=A2PStatus.PENDING)
    escaped = html_lib.escape(A2P_WARNING)

    def thread(number):
        conversation = make_conversation(organization, phone_number=number, contact_number=TO)
        url = reverse("messaging:thread", kwargs={"org_slug": organization.slug, "conversation_id": conversation.id})
        return member_client.get(url).content.decode()

    assert escaped in thread(long_code)
    assert escaped not in thread(toll_free) and escaped not in thread(registered)
    unchecked = PhoneNumberFactory(organization=organization, number="+14155550162")  # no settings row yet
    assert "Status: <strong data-a2p-status>not checked yet</strong>" in thread(unchecked)

    page = member_client.get(compose_url(organization) + "?from=%2B14155550160").content.decode()
    warned = json.loads(re.search(r'<script id="a2p-numbers" type="application/json">(.*?)</script>', page).group(1))
    assert warned == {str(long_code.id): "Registration pending", str(unchecked.id): "Not checked yet"}
    assert re.search(r"data-a2p-warning>" + re.escape(escaped), page)  # shown: the chosen number needs it
    assert "Status: <strong data-a2p-status>registration pending</strong>" in page
    page = member_client.get(compose_url(organization) + "?from=%2B18885550123").content.decode()
    assert re.search(r"data-a2p-warning hidden>", page)


def test_without_a_number_that_can_text_the_page_says_where_to_get_one(member_client, organization):
    PhoneNumberFactory(organization=organization, sms_enabled=False)
    html = member_client.get(compose_url(organization)).content.decode()
    assert "None of your numbers can send texts yet" in html and "data-composer" not in html
