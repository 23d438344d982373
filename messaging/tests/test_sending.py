"""Sending a text: the pre-send gate first, then the real Twilio SDK against its stand-in, then the record.

Status callbacks come back signed through the SMS status hook (the stand-in posts them through the Django
test client), and move the message forward only.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.db import connection

from accounts.models import OrganizationStatus
from compliance.models import AuditEvent, DoNotCallReason, DoNotCallSource
from compliance.services import do_not_call_add
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.webhooks.models import ReceivedWebhook
from messaging.models import (
    ChangeVia, Contact, Conversation, Direction, Message, MessageStatus, MessageStatusEvent, SenderType,
    SubscriptionChange,
)  # fmt: skip
from messaging.selectors import subscription_for
from messaging.services.gate import SendRefused
from messaging.services.sending import MessageNotSent, message_send
from messaging.services.subscriptions import subscription_set, webhook_actor
from messaging.signals import message_event
from messaging.tests.support import sms_line, status_callback, text

PUBLIC = "https://app.jagcall.test"
TO = "+12129870188"  # New York
NOON_IN_NEW_YORK = dt.datetime(2027, 1, 15, 17, 0, tzinfo=dt.UTC)
NIGHT_IN_NEW_YORK = dt.datetime(2027, 1, 15, 4, 0, tzinfo=dt.UTC)  # 23:00 the day before, local

pytestmark = pytest.mark.django_db


@pytest.fixture
def number(twilio_standin, settings, organization, client):
    settings.PUBLIC_BASE_URL = PUBLIC
    twilio_standin.route_callbacks_to(client)
    twilio_standin.message_autodeliver = False  # callbacks are played out by the test, in its transaction
    return sms_line(organization, "+14155550123")


def send(organization, actor, number, **kwargs):
    return message_send(organization=organization, actor=actor, sender=number, **{"to": TO, "body": "Hi!", **kwargs})


def test_a_text_is_sent_through_twilio_and_recorded(organization, owner, number, twilio_standin):
    message = send(organization, owner, number, body="Your appointment is tomorrow at 10:00.")
    sent = twilio_standin.messages[-1]
    assert (sent.to, sent.from_, sent.body) == (TO, number.number, "Your appointment is tomorrow at 10:00.")
    assert message.twilio_sid == sent.sid and message.status == MessageStatus.QUEUED
    assert message.direction == Direction.OUTBOUND and message.segments == 1 and message.encoding == "GSM-7"
    assert message.sender_type == SenderType.MEMBER and message.sender_label == owner.email and message.sent_by == owner
    conversation = Conversation.objects.for_org(organization).get()
    assert conversation.phone_number == number and conversation.contact.phone == TO
    event = AuditEvent.objects.for_org(organization).get(action="message.sent")
    assert event.metadata["from"] == number.number and TO not in str(event.metadata)
    assert "appointment" not in str(event.metadata)


def test_segments_and_encoding_are_recorded(organization, owner, number):
    assert send(organization, owner, number, body="a" * 161).segments == 2
    emoji = send(organization, owner, number, body="See you soon 😊")
    assert emoji.encoding == "UCS-2" and emoji.segments == 1


def test_status_callbacks_build_the_timeline_and_move_forward_only(client, organization, owner, number, twilio_standin):
    message = send(organization, owner, number)
    twilio_standin.deliver_messages()
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED
    timeline = [e.status for e in MessageStatusEvent.objects.for_org(organization).filter(message=message)]
    assert timeline == ["queued", "queued", "sent", "delivered"]
    # A late "sent" after "delivered" is kept in the timeline but does not move the status back.
    late = status_callback(client, message, "sent", headers={"I-Twilio-Idempotency-Token": "late-sent"})
    assert late.status_code == 204
    message.refresh_from_db()
    assert message.status == MessageStatus.DELIVERED


def test_an_undelivered_text_shows_twilios_error_code_and_its_meaning(organization, owner, number, twilio_standin):
    twilio_standin.message_outcomes[TO] = ("undelivered", 30003)
    message = send(organization, owner, number)
    twilio_standin.deliver_messages()
    message.refresh_from_db()
    assert message.status == MessageStatus.UNDELIVERED and message.error_code == 30003
    assert "unreachable" in message.error_meaning


def test_a_duplicate_status_callback_changes_nothing(client, organization, owner, number):
    message = send(organization, owner, number)
    headers = {"I-Twilio-Idempotency-Token": "same-delivery"}
    assert status_callback(client, message, "delivered", headers=headers).status_code == 204
    assert status_callback(client, message, "delivered", headers=headers).status_code == 200
    assert MessageStatusEvent.objects.for_org(organization).filter(message=message, status="delivered").count() == 1


def test_a_status_callback_for_a_text_that_is_not_ours_is_404(client, organization, owner, number):
    message = send(organization, owner, number)
    message.twilio_sid = "SM" + "f" * 32
    assert status_callback(client, message, "delivered").status_code == 404


def test_a_status_callback_signed_by_another_account_is_refused(client, organization, other_organization, owner, number):
    message = send(organization, owner, number)
    theirs = sms_line(other_organization, "+14155550177")
    refused = status_callback(client, message, "failed", account_sid=theirs.account_sid)
    assert refused.status_code == 404
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED


def test_a_forged_status_callback_is_refused(client, organization, owner, number):
    message = send(organization, owner, number)
    forged = client.post(
        "/hooks/twilio/sms-status/",
        data={"AccountSid": number.account_sid, "MessageSid": message.twilio_sid, "MessageStatus": "failed"},
        headers={"X-Twilio-Signature": "Zm9yZ2Vk"},
    )
    assert forged.status_code == 403
    message.refresh_from_db()
    assert message.status == MessageStatus.QUEUED


def test_an_unknown_status_is_a_clear_400(client, organization, owner, number):
    message = send(organization, owner, number)
    answer = status_callback(client, message, "teleported")
    assert answer.status_code == 400 and b"Unknown message status" in answer.content


# --- the gate: refused before Twilio, nothing written -----------------------------------------------


def _refused(organization, actor, number, twilio_standin, **kwargs) -> SendRefused:
    before_requests = len(twilio_standin.requests)
    before_rows = (Message.objects.for_org(organization).count(), Contact.objects.for_org(organization).count())
    with pytest.raises(SendRefused) as refused:
        send(organization, actor, number, **kwargs)
    assert len(twilio_standin.requests) == before_requests  # Twilio was never asked
    after_rows = (Message.objects.for_org(organization).count(), Contact.objects.for_org(organization).count())
    assert after_rows == before_rows  # nothing written
    assert refused.value.status == 422
    return refused.value


def test_an_opted_out_pair_is_refused(client, organization, owner, number, twilio_standin):
    text(client, number, "STOP", sender=TO)
    refusal = _refused(organization, owner, number, twilio_standin)
    assert refusal.code == "opted_out" and "START" in refusal.message and refusal.refusal.field == "to"


def test_a_do_not_call_number_is_refused(organization, owner, number, twilio_standin):
    do_not_call_add(organization=organization, actor=owner, number=TO, reason=DoNotCallReason.REQUESTED,
                    source=DoNotCallSource.PORTAL)  # fmt: skip
    assert _refused(organization, owner, number, twilio_standin).code == "do_not_call"


@pytest.mark.parametrize("to", ["12345", "+1 212 987 0188", "not a number", ""])
def test_an_invalid_number_is_refused(organization, owner, number, twilio_standin, to):
    refusal = _refused(organization, owner, number, twilio_standin, to=to)
    assert refusal.code == "invalid_number" and refusal.refusal.field == "to"


def test_marketing_texts_respect_quiet_hours_and_other_texts_do_not(organization, owner, number, twilio_standin):
    refusal = _refused(organization, owner, number, twilio_standin, marketing=True, now=NIGHT_IN_NEW_YORK)
    assert refusal.code == "quiet_hours" and "Marketing texts are sent only 08:00-21:00" in refusal.message
    assert "America/New_York" in refusal.message
    assert send(organization, owner, number, marketing=True, now=NOON_IN_NEW_YORK).marketing
    assert send(organization, owner, number, now=NIGHT_IN_NEW_YORK).status == MessageStatus.QUEUED


def test_an_organization_without_messaging_rights_is_refused(organization, owner, number, twilio_standin):
    organization.plan_code = "legacy-voice-only"
    organization.save(update_fields=["plan_code"])
    refusal = _refused(organization, owner, number, twilio_standin)
    assert refusal.code == "no_messaging_rights" and "plan" in refusal.message
    organization.plan_code, organization.status = "starter", OrganizationStatus.TERMINATED
    organization.terminated_at = NOON_IN_NEW_YORK
    organization.save(update_fields=["plan_code", "status", "terminated_at"])
    assert _refused(organization, owner, number, twilio_standin).code == "no_messaging_rights"


def test_a_number_that_cannot_text_is_refused(organization, owner, number, twilio_standin):
    number.sms_enabled = False
    number.save(update_fields=["sms_enabled"])
    assert _refused(organization, owner, number, twilio_standin).code == "sender_number"


def test_an_empty_or_too_long_text_is_a_clear_error(organization, owner, number, twilio_standin):
    for body, needle in (("   ", "Write a message"), ("x" * 1601, "at most 1600")):
        with pytest.raises(ApplicationError) as refused:
            send(organization, owner, number, body=body)
        assert needle in refused.value.message and refused.value.status == 400
    assert twilio_standin.messages == []


def test_twilios_21610_refusal_is_recorded_as_an_opt_out(organization, owner, number, twilio_standin):
    # The person texted STOP where Twilio saw it (e.g. before the number was ours): Twilio refuses the send.
    twilio_standin.unsubscribe(number.number, TO)
    with pytest.raises(SendRefused) as refused:
        send(organization, owner, number)
    assert refused.value.code == "opted_out" and "21610" in refused.value.message
    assert not Message.objects.for_org(organization).exists()
    subscription = subscription_for(number, TO)
    assert not subscription.subscribed
    change = SubscriptionChange.objects.for_org(organization).get()
    assert change.via == ChangeVia.CARRIER_REFUSAL
    # From then on the gate refuses it itself, without asking Twilio.
    assert _refused(organization, owner, number, twilio_standin).code == "opted_out"


def test_another_twilio_error_is_explained_and_nothing_is_stored(organization, owner, number, twilio_standin):
    twilio_standin.fail_next(500, "Internal error", path_prefix="/2010-04-01/Accounts")
    with pytest.raises(MessageNotSent) as failed:
        send(organization, owner, number)
    assert failed.value.status == 503 and "Twilio did not send the text" in failed.value.message
    assert not Message.objects.for_org(organization).exists()


def test_a_start_after_an_opt_out_opens_the_pair_again(client, organization, owner, number):
    subscription_set(phone_number=number, recipient=TO, subscribed=False, via=ChangeVia.KEYWORD,
                     actor=webhook_actor(organization), keyword="STOP")  # fmt: skip
    text(client, number, "START", sender=TO)
    assert send(organization, owner, number).status == MessageStatus.QUEUED


# --- events and encryption ------------------------------------------------------------------------


def test_inbound_texts_and_sends_are_emitted_as_events_on_commit(
    client, organization, owner, number, twilio_standin, django_capture_on_commit_callbacks
):
    seen = []

    def receiver(sender, organization_id, event, payload, **kwargs):
        seen.append((organization_id, event, payload))

    message_event.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            text(client, number, "Can I come at 4?", sender=TO)
        with django_capture_on_commit_callbacks(execute=True):
            send(organization, owner, number, body="Yes, see you at 4.")
        with django_capture_on_commit_callbacks(execute=True):
            twilio_standin.deliver_messages()
    finally:
        message_event.disconnect(receiver)
    events = [event for _, event, _ in seen]
    assert events[:2] == ["message.received", "message.sent"]
    assert "message.status_changed" in events
    received = seen[0][2]
    assert received["body"] == "Can I come at 4?" and received["from"] == TO and received["to"] == number.number
    assert all(org == organization.id for org, _, _ in seen)
    status_changed = [p for _, e, p in seen if e == "message.status_changed"]
    assert all("body" not in p for p in status_changed)


def test_raw_sql_holds_no_message_body_or_phone_number_in_clear(client, organization, owner, number):
    secret = "Your biopsy results are ready, call Dr. Okafor"
    text(client, number, f"{secret} (inbound)", sender=TO)
    send(organization, owner, number, body=secret)
    tables = ["messaging_message", "messaging_contact", "messaging_subscription", "messaging_conversation"]
    with connection.cursor() as cursor:
        dump = ""
        for table in tables:
            cursor.execute(f"SELECT * FROM {table}")  # noqa: S608 (fixed table names)
            dump += repr(cursor.fetchall())
    assert "biopsy" not in dump and "Okafor" not in dump
    for clear in (TO, TO.lstrip("+"), "2129870188", "9870188"):
        assert clear not in dump
    assert Message.objects.for_org(organization).filter(direction=Direction.OUTBOUND).get().body == secret


def test_a_sent_text_needs_the_right_to_use_the_product(organization, number, other_organization):
    from accounts.tests.factories import UserFactory
    from jagcall.kernel.errors import PermissionDenied

    stranger = UserFactory()
    with pytest.raises(PermissionDenied):
        send(organization, stranger, number)
    assert not Message.objects.for_org(organization).exists()
    assert not ReceivedWebhook.objects.exists()
