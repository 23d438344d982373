"""Messaging in the back office: searchable, read-only, and never a message body or a contact's number in full."""

from __future__ import annotations

import pytest
from django.urls import reverse

from messaging.models import ChangeVia, MessageStatusEvent, Subscription
from messaging.services.subscriptions import subscription_set, webhook_actor
from messaging.tests.support import make_conversation, make_message

pytestmark = pytest.mark.django_db

CONTACT = "+12129870188"
BODY = "My test results came back positive"


@pytest.fixture
def texted(organization):
    conversation = make_conversation(organization, contact_number=CONTACT, name="Ada Lovelace")
    message = make_message(organization, conversation=conversation, body=BODY, error_code=30003)
    MessageStatusEvent.objects.create(organization=organization, message=message, status="received")
    return conversation, message


def test_messages_are_found_by_organization_and_sid_and_show_no_body(staff_client, organization, texted):
    _conversation, message = texted
    listing = staff_client.get(reverse("admin:messaging_message_changelist"), {"q": message.twilio_sid})
    assert [m.pk for m in listing.context["cl"].result_list] == [message.pk]
    by_org = staff_client.get(reverse("admin:messaging_message_changelist"), {"q": organization.slug})
    assert [m.pk for m in by_org.context["cl"].result_list] == [message.pk]
    page = staff_client.get(reverse("admin:messaging_message_change", args=[message.pk])).content.decode()
    assert "unreachable" in page  # Twilio's error 30003, in words
    assert BODY not in page and CONTACT not in page
    assert staff_client.get(reverse("admin:messaging_message_add")).status_code == 403


def test_conversations_contacts_and_subscriptions_mask_the_number(staff_client, organization, texted):
    conversation, _message = texted
    subscription_set(phone_number=conversation.phone_number, recipient=CONTACT, subscribed=False,
                     via=ChangeVia.KEYWORD, actor=webhook_actor(organization), keyword="STOP")  # fmt: skip
    subscription = Subscription.objects.for_org(organization).get()
    pages = [
        staff_client.get(reverse("admin:messaging_conversation_changelist"), {"q": "Ada"}),
        staff_client.get(reverse("admin:messaging_contact_changelist"), {"q": "Lovelace"}),
        staff_client.get(reverse("admin:messaging_subscription_changelist"), {"q": organization.name}),
        staff_client.get(reverse("admin:messaging_subscription_change", args=[subscription.pk])),
    ]
    for page in pages:
        assert page.status_code == 200
        content = page.content.decode()
        assert CONTACT not in content and "2129870188" not in content
    assert "+1 212 ••• 0188" in pages[0].content.decode()
    assert "STOP" in pages[3].content.decode()  # the history, inline
