"""jagcall.kernel.rows.save and save_new: several rows, of several models, written in one statement."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from billing.models import UsageEvent, UsageKind
from jagcall.kernel import rows
from messaging.models import Direction, Message, MessageStatus, MessageStatusEvent, SenderType
from messaging.tests.support import make_conversation

pytestmark = pytest.mark.django_db


def _message(organization, conversation, **kwargs) -> Message:
    return Message(
        organization=organization,
        conversation=conversation,
        direction=Direction.OUTBOUND,
        body=kwargs.pop("body", "Your cleaning is on Tuesday at 10:00 ✓"),
        media_urls=["https://cdn.example.com/map.png"],
        status=MessageStatus.SENT,
        sender_type=SenderType.SYSTEM,
        **kwargs,
    )


def test_new_rows_and_an_update_are_written_in_one_statement_and_read_back_whole(organization):
    conversation = make_conversation(organization)
    message = _message(organization, conversation)
    status = MessageStatusEvent(organization=organization, message=message, status=MessageStatus.SENT)
    usage = UsageEvent(
        organization=organization, kind=UsageKind.SMS_SEGMENTS, quantity=2, source=f"message:{message.id}",
        identifier=f"jc:sms:{message.id}", occurred_at=timezone.now(),
    )  # fmt: skip
    moment = timezone.now()
    conversation.last_message_at = moment
    conversation.unread_count = 7

    with CaptureQueriesContext(connection) as queries:
        rows.save(message, status, usage, (conversation, ["last_message_at", "unread_count"]))
    assert len(queries.captured_queries) == 1, [q["sql"] for q in queries.captured_queries]
    assert queries.captured_queries[0]["sql"].startswith("WITH ")

    stored = Message.objects.for_org(organization).get(pk=message.pk)
    assert stored.body == "Your cleaning is on Tuesday at 10:00 ✓"  # sealed as save() seals it, and opened
    assert stored.media_urls == ["https://cdn.example.com/map.png"]
    events = MessageStatusEvent.objects.for_org(organization).filter(message=stored)
    assert list(events.values_list("id", flat=True)) == [status.id]
    assert UsageEvent.objects.for_org(organization).get(pk=usage.pk).quantity == 2
    conversation.refresh_from_db()
    assert (conversation.last_message_at, conversation.unread_count) == (moment, 7)
    # Marked as saved, as save() marks them: a later save() updates instead of inserting again.
    assert message._state.adding is False and message._state.db == "default"
    message.status = MessageStatus.DELIVERED
    message.save(update_fields=["status"])
    assert Message.objects.for_org(organization).get(pk=message.pk).status == MessageStatus.DELIVERED


def test_the_body_is_not_stored_in_clear(organization):
    conversation = make_conversation(organization)
    message = _message(organization, conversation, body="Secret appointment note")
    rows.save(message)
    with connection.cursor() as cursor:
        cursor.execute("SELECT body::text FROM messaging_message WHERE id = %s", [message.pk])
        (raw,) = cursor.fetchone()
    assert "Secret appointment note" not in raw and "5365637265" not in raw  # neither text nor hex


def test_one_failing_row_writes_none_of_them(organization):
    conversation = make_conversation(organization)
    first = _message(organization, conversation, twilio_sid="SM" + "1" * 32)
    rows.save(first)
    again = _message(organization, conversation, twilio_sid="SM" + "1" * 32)  # the unique SID, again
    status = MessageStatusEvent(organization=organization, message=again, status=MessageStatus.SENT)
    conversation.unread_count = 99
    with pytest.raises(IntegrityError), transaction.atomic():
        rows.save(status, (conversation, ["unread_count"]), again)
    assert not MessageStatusEvent.objects.for_org(organization).filter(pk=status.pk).exists()
    conversation.refresh_from_db()
    assert conversation.unread_count != 99


def test_what_it_cannot_write_is_refused_before_the_database_is_asked(organization):
    conversation = make_conversation(organization)
    message = _message(organization, conversation)
    message.pk = None
    with pytest.raises(ValueError, match="primary key"):
        rows.save(message)
    with pytest.raises(ValueError, match="own columns"):
        rows.save((conversation, ["id"]))
    with pytest.raises(ValueError, match="own columns"):
        rows.save((conversation, []))
    with CaptureQueriesContext(connection) as queries:
        rows.save()
    assert queries.captured_queries == []


def test_save_new_writes_the_row_and_its_updates_in_one_statement_without_a_savepoint(organization):
    conversation = make_conversation(organization)
    message = _message(organization, conversation, twilio_sid="SM" + "2" * 32)
    conversation.unread_count = 3
    with CaptureQueriesContext(connection) as queries:
        assert rows.save_new(message, (conversation, ["unread_count"])) is True
    assert [q["sql"][:5] for q in queries.captured_queries] == ["WITH "]  # one statement, no SAVEPOINT
    assert Message.objects.for_org(organization).get(pk=message.pk).twilio_sid == "SM" + "2" * 32
    conversation.refresh_from_db()
    assert conversation.unread_count == 3
    assert message._state.adding is False and message._state.db == "default"


def test_save_new_writes_nothing_when_the_row_is_there_already_and_the_transaction_goes_on(organization):
    conversation = make_conversation(organization)
    rows.save(_message(organization, conversation, twilio_sid="SM" + "3" * 32))
    again = _message(organization, conversation, twilio_sid="SM" + "3" * 32, body="the same text, delivered again")
    conversation.unread_count = 99
    with transaction.atomic():
        assert rows.save_new(again, (conversation, ["unread_count"])) is False
        # No error was raised and no savepoint rolled back: the transaction is still usable.
        assert Message.objects.for_org(organization).filter(twilio_sid="SM" + "3" * 32).count() == 1
    assert not Message.objects.for_org(organization).filter(pk=again.pk).exists()
    assert again._state.adding is True
    conversation.refresh_from_db()
    assert conversation.unread_count != 99  # the update waited on the insert, which did not happen
