"""Simulated mode's "Simulate an incoming text": the Twilio stand-in texts one of the organization's numbers
through its own control route, and posts the signed webhook Twilio would to our SMS hook."""

from __future__ import annotations

import time

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse

from compliance.models import AuditEvent
from jagcall.kernel.standins.twilio.control import SimulatedCallerUnavailable, text_simulated_message
from messaging.models import Direction, Message
from messaging.tests.support import make_conversation, sms_line
from telephony.services.twilio_accounts import twilio_for
from telephony.tests.factories import PhoneNumberFactory

FORM = "Simulate an incoming text</summary>"
SENDER = "+12129870188"


def simulate_url(organization):
    return reverse("messaging:simulate-text", kwargs={"org_slug": organization.slug})


def inbox_url(organization):
    return reverse("messaging:inbox", kwargs={"org_slug": organization.slug})


def flashed(response) -> list[str]:
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.mark.django_db
def test_the_form_is_offered_only_in_simulated_mode(client, organization, member, settings):
    line = PhoneNumberFactory(organization=organization, sms_enabled=True)
    conversation = make_conversation(organization, phone_number=line, contact_number=SENDER)
    thread = reverse("messaging:thread", kwargs={"org_slug": organization.slug, "conversation_id": conversation.id})
    client.force_login(member)
    settings.SIMULATED_PROVIDERS = False
    assert FORM not in client.get(inbox_url(organization)).content.decode()
    assert FORM not in client.get(thread).content.decode()
    assert client.post(simulate_url(organization), {"phone_number": line.id, "from_number": SENDER,
                                                    "body": "Hi"}).status_code == 404  # fmt: skip
    settings.SIMULATED_PROVIDERS = True
    inbox = client.get(inbox_url(organization)).content.decode()
    assert FORM in inbox and "+14155550134" in inbox  # a fictional sender, ready to use
    page = client.get(thread).content.decode()
    assert FORM in page and f'name="from_number" value="{SENDER}"' in page
    assert f'name="conversation" value="{conversation.id}"' in page


@pytest.mark.django_db
def test_it_takes_a_post_with_the_csrf_token(organization, member, settings):
    settings.SIMULATED_PROVIDERS = True
    client = Client(enforce_csrf_checks=True)
    client.force_login(member)
    assert client.post(simulate_url(organization), {"body": "Hi"}).status_code == 403
    assert client.get(simulate_url(organization)).status_code == 405


@pytest.mark.django_db
def test_bad_input_is_explained_and_nothing_is_sent(client, organization, other_organization, member, settings,
                                                    twilio_standin):  # fmt: skip
    settings.SIMULATED_PROVIDERS = True
    line = sms_line(organization)
    theirs = PhoneNumberFactory(organization=other_organization, number="+13125550177", sms_enabled=True)
    client.force_login(member)
    cases = [
        ({"phone_number": theirs.id, "from_number": SENDER, "body": "Hi"},
         "To: Choose one of your numbers that can receive texts."),
        ({"phone_number": line.id, "from_number": "12", "body": "Hi"}, "is not a phone number"),
        ({"phone_number": line.id, "from_number": line.number, "body": "Hi"}, "must come from another number"),
        ({"phone_number": line.id, "from_number": SENDER, "body": ""},
         "Their text: Write the text the simulated person sends."),
    ]  # fmt: skip
    for data, expected in cases:
        response = client.post(simulate_url(organization), data)
        assert response.status_code == 302 and response["Location"] == inbox_url(organization)
        (message,) = flashed(response)
        assert message.startswith("The simulated text was not sent.") and expected in message, message
        client.get(response["Location"])  # shows (and so clears) the notice
    assert twilio_standin.inbound_messages == []
    assert not AuditEvent.objects.for_org(organization).filter(action="message.simulated").exists()
    foreign = make_conversation(other_organization, phone_number=theirs)
    response = client.post(simulate_url(organization), {"phone_number": line.id, "from_number": SENDER,
                                                        "body": "Hi", "conversation": foreign.id})  # fmt: skip
    assert response.status_code == 404


@pytest.mark.django_db
def test_a_refusal_of_the_stand_in_is_explained(client, organization, member, settings, twilio_standin):
    settings.SIMULATED_PROVIDERS = True
    line = sms_line(organization)
    twilio_standin.numbers.clear()  # e.g. a stand-in restarted without the numbers the database holds
    client.force_login(member)
    response = client.post(simulate_url(organization), {"phone_number": line.id, "from_number": SENDER, "body": "Hi"})
    (message,) = flashed(response)
    assert message.startswith(f"The simulated text was not sent. The simulated text to {line.number} could not")
    assert "Restarting `make run`" in message and twilio_standin.inbound_messages == []


@pytest.mark.django_db
def test_the_control_route_refuses_what_twilio_would_not_deliver(organization, twilio_standin, settings):
    settings.PUBLIC_BASE_URL = "https://app.jagcall.test"
    line = sms_line(organization)
    client = twilio_for(organization).client
    client.api.v2010.accounts(line.account_sid).incoming_phone_numbers(line.twilio_sid).update(sms_url="")
    send = lambda **kw: text_simulated_message(  # noqa: E731
        twilio_standin.base_url, account_sid=line.account_sid, username=client.username, password=client.password,
        **{"to": line.number, "from_": SENDER, "body": "Hi", **kw},
    )
    with pytest.raises(SimulatedCallerUnavailable) as refused:
        send()
    assert refused.value.status == 404 and "has no SMS webhook" in str(refused.value)
    with pytest.raises(SimulatedCallerUnavailable) as refused:
        send(to="+14155550999")
    assert refused.value.status == 404 and "not an SMS-capable number" in str(refused.value)
    with pytest.raises(SimulatedCallerUnavailable) as refused:
        send(from_="12")
    assert refused.value.status == 400 and "Invalid 'From' Phone Number" in str(refused.value)
    with pytest.raises(SimulatedCallerUnavailable) as refused:
        send(body=" ")
    assert refused.value.status == 400 and "body is required" in str(refused.value)
    with pytest.raises(SimulatedCallerUnavailable) as refused:
        text_simulated_message(twilio_standin.base_url, account_sid=line.account_sid, username=client.username,
                               password="wrong", to=line.number, from_=SENDER, body="Hi")  # fmt: skip
    assert refused.value.status == 401
    assert twilio_standin.inbound_messages == []


def _wait_for(read, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = read()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError("the simulated text never arrived")


@pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators")
def test_a_simulated_text_arrives_through_the_sms_hook(client, organization, member, settings, twilio_standin,
                                                       asgi_live_server):  # fmt: skip
    settings.SIMULATED_PROVIDERS = True
    settings.PUBLIC_BASE_URL = asgi_live_server  # the stand-in posts our SMS hook, served here
    line = sms_line(organization)
    client.force_login(member)
    response = client.post(simulate_url(organization), {"phone_number": line.id, "from_number": SENDER,
                                                        "body": "Do you open on Saturdays?"})  # fmt: skip
    assert response.status_code == 302 and response["Location"] == inbox_url(organization)
    assert flashed(response) == [
        f"Simulated mode: {SENDER} is texting {line.number}. No phone is involved; the text arrives here in a "
        "moment, through the same webhook as a real one."
    ]
    message = _wait_for(lambda: Message.objects.for_org(organization).filter(direction=Direction.INBOUND).first())
    assert message.body == "Do you open on Saturdays?" and message.conversation.contact.phone == SENDER
    assert message.twilio_sid == twilio_standin.inbound_messages[0].sid
    assert message.conversation.unread_count == 1
    audit = AuditEvent.objects.for_org(organization).get(action="message.simulated")
    assert audit.metadata["number"] == line.number and SENDER not in str(audit.metadata)

    # From the thread: the conversation's pair, and back to the thread.
    conversation = message.conversation
    data = {"phone_number": line.id, "from_number": SENDER, "body": "Thanks!", "conversation": conversation.id}
    response = client.post(simulate_url(organization), data)
    assert response["Location"] == reverse(
        "messaging:thread", kwargs={"org_slug": organization.slug, "conversation_id": conversation.id}
    )
    _wait_for(lambda: Message.objects.for_org(organization).filter(conversation=conversation).count() == 2)
    twilio_standin.settle()
