"""The SQL budget of Twilio's inbound SMS webhook: what a text from a returning sender costs the database.

Every text to every number comes through here (bench/sms_webhook.py), so each statement counts: a change
that adds one fails here and has to say why. What the request must still do is checked beside the count.
The signing account's token is kept in the process (twilio_accounts): the signer's own lookup warms it.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.models import Contact, Conversation, Direction, Message
from messaging.tests.support import sms_line, text
from telephony.selectors.calls import phone_number_for_inbound
from telephony.tests.outbound_support import make_agent

pytestmark = pytest.mark.django_db

# number (with organization and agent), dedupe record, conversation locked (with contact), message,
# conversation updated, the number's texting settings
SMS_BUDGET = 6
# a STOP: number, dedupe record, conversation locked with the pair's subscription (locked) and the sender's
# do-not-call listing, message with the conversation's update, subscription with its change, audit chain's head (locked),
# audit event, confirmation with its first status and its usage
KEYWORD_BUDGET = 8
# START reads the pair's subscription after the conversation's lock, in a statement of its own: it must see a
# STOP of the same pair that committed while it waited (messaging/tests/test_subscription_race.py)
START_BUDGET = KEYWORD_BUDGET + 1
# a sender's first STOP makes the subscription row with its change in one statement, and puts the sender on
# the do-not-call list: the entry, its audit event and the opt-out's (the chain's head is read once per
# request: later events of the same transaction know it)
FIRST_STOP_BUDGET = 11
TEXTER = "+12129870188"


@pytest.fixture
def number(twilio_standin, settings, organization):
    settings.PUBLIC_BASE_URL = "https://app.jagcall.test"
    return sms_line(organization, "+14155550123")


def counted(client, number, body: str):
    from compliance.services.audit import _HeadCache

    # Each webhook request commits on its own in production; here they share the test's transaction,
    # so the audit chain's head an earlier request appended is forgotten as its commit would.
    _HeadCache.forget(connection.alias)
    with CaptureQueriesContext(connection) as queries:
        response = text(client, number, body, sender=TEXTER)
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    return response, statements


def test_a_returning_senders_text_stays_within_its_sql_budget_and_is_stored_whole(client, number, organization):
    first, _ = counted(client, number, "Hello, is the practice open Saturday?")  # makes the contact and thread
    assert first.status_code == 200
    with CaptureQueriesContext(connection) as everything:
        response, statements = counted(client, number, "And do you take new patients?")
    assert response.status_code == 200
    assert len(statements) <= SMS_BUDGET, "\n\n".join(statements)
    # Nor a savepoint of its own: each is two more round trips (the message's unique MessageSid is ON
    # CONFLICT). The one left is the request's transaction, a savepoint only inside the test's.
    savepoints = [q["sql"] for q in everything.captured_queries if q["sql"].startswith("SAVEPOINT")]
    assert len(savepoints) == 1, savepoints

    conversation = Conversation.objects.for_org(organization).select_related("contact").get(phone_number=number)
    assert conversation.unread_count == 2
    assert conversation.contact.phone == TEXTER  # decrypted from the row the webhook read in plain SQL
    messages = Message.objects.for_org(organization).filter(conversation=conversation).order_by("created_at")
    assert [(m.direction, m.body) for m in messages] == [
        (Direction.INBOUND, "Hello, is the practice open Saturday?"),
        (Direction.INBOUND, "And do you take new patients?"),
    ]


def test_a_keyword_from_a_returning_sender_stays_within_its_sql_budget_and_is_stored_whole(
    client, number, organization
):
    from billing.models import UsageEvent
    from messaging.models import MessageStatusEvent, Subscription, SubscriptionChange

    counted(client, number, "Hello, is the practice open Saturday?")
    first_stop, statements = counted(client, number, "STOP")  # the first also puts the sender on do-not-call
    assert len(statements) <= FIRST_STOP_BUDGET, "\n\n".join(statements)
    assert "you are unsubscribed" in first_stop.content.decode()
    start, statements = counted(client, number, "START")
    assert "you are subscribed again" in start.content.decode()
    assert len(statements) <= START_BUDGET, "\n\n".join(statements)
    stop, statements = counted(client, number, " stop! ")
    assert "you are unsubscribed" in stop.content.decode()
    assert len(statements) <= KEYWORD_BUDGET, "\n\n".join(statements)  # listed already: read with the rest

    subscription = Subscription.objects.for_org(organization).get(phone_number=number)
    assert subscription.subscribed is False and subscription.recipient == TEXTER
    changes = SubscriptionChange.objects.for_org(organization).filter(subscription=subscription).order_by("created_at")
    assert [(c.subscribed, c.keyword) for c in changes] == [(False, "STOP"), (True, "START"), (False, "STOP")]
    replies = Message.objects.for_org(organization).filter(direction=Direction.OUTBOUND).order_by("created_at")
    assert [r.body.split(": ", 1)[1][:21] for r in replies] == [
        "you are unsubscribed ", "you are subscribed ag", "you are unsubscribed "
    ]
    for reply in replies:  # each stored with its status and metered once, by its segments
        assert list(MessageStatusEvent.objects.for_org(organization).filter(message=reply).values_list(
            "status", flat=True)) == ["sent"]
        usage = UsageEvent.objects.for_org(organization).get(source=f"message:{reply.id}")
        assert (usage.kind, usage.quantity) == ("sms_segments", reply.segments)
    conversation = Conversation.objects.for_org(organization).get(phone_number=number)
    latest = Message.objects.for_org(organization).filter(direction=Direction.INBOUND).latest("created_at")
    assert latest.body == " stop! "
    assert conversation.unread_count == 4 and conversation.last_message_at == latest.created_at


def test_the_number_lookup_brings_its_organization_and_agent_in_one_statement(
    number, organization, django_assert_num_queries
):
    agent = make_agent(organization, name="Front desk", record_calls=True)
    number.agent = agent
    number.save(update_fields=["agent"])
    with django_assert_num_queries(1):
        found = phone_number_for_inbound(to_number=f" {number.number} ")
        assert found.pk == number.pk and found.account_sid == number.account_sid and found.sms_enabled
        assert found.organization == organization and found.organization.name == organization.name
        assert found.organization.billing_standing == organization.billing_standing
        assert (found.agent.name, found.agent.record_calls, found.agent.organization_id) == (
            "Front desk", True, organization.id
        )
    assert phone_number_for_inbound(to_number="+14155550999") is None
    assert phone_number_for_inbound(to_number="") is None
    number.released_at = number.created_at
    number.save(update_fields=["released_at"])
    assert phone_number_for_inbound(to_number=number.number) is None  # a released number is not ours


def _rows_touched(plan: dict) -> int:
    """Rows a plan node and its children produced or threw away (EXPLAIN ANALYZE, FORMAT JSON)."""
    own = plan.get("Actual Rows", 0) * plan.get("Actual Loops", 1)
    own += plan.get("Rows Removed by Filter", 0) + plan.get("Rows Removed by Join Filter", 0)
    return own + sum(_rows_touched(child) for child in plan.get("Plans", []))


def test_a_returning_senders_conversation_is_found_by_its_indexes_whatever_the_statistics(number, organization):
    """The statistics of a table can lag far behind it (taken while it was empty, or while it held other
    numbers' threads): the lookup must still go straight to the one contact and its one conversation."""
    from messaging.services.inbound import _returning_conversation_locked
    from telephony.tests.factories import PhoneNumberFactory

    def analyze():
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE messaging_contact, messaging_conversation")

    def threads(phone_number, senders):
        contacts = Contact.objects.bulk_create([Contact(organization=organization, phone=s) for s in senders])
        Conversation.objects.bulk_create(
            [Conversation(organization=organization, phone_number=phone_number, contact=c) for c in contacts]
        )

    def rows_touched_finding(sender, keyword: bool = False) -> int:
        candidates = Contact._meta.get_field("phone_index").candidates(sender, organization_id=organization.id)
        with CaptureQueriesContext(connection) as queries:
            found = _returning_conversation_locked(number, sender, candidates, subscription=keyword, listing=keyword)
        assert found is not None
        found, standing = found
        assert found.contact.phone == sender and found.phone_number_id == number.pk
        if keyword:  # never opted out, never listed: read, and found absent
            assert standing.subscription is None and standing.listed is False
        (statement,) = [q["sql"] for q in queries.captured_queries]
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN (ANALYZE, FORMAT JSON) {statement}")
            (plan,) = cursor.fetchone()[0]
        return _rows_touched(plan["Plan"])

    # one contact, one conversation, their locks and limits
    analyze()  # statistics of empty tables
    threads(number, [f"+1212555{index:04d}" for index in range(300)])
    assert rows_touched_finding("+12125550150") <= 8
    threads(PhoneNumberFactory(organization=organization, sms_enabled=True), [f"+1212666{i:04d}" for i in range(300)])
    analyze()  # statistics that know the other number's threads
    threads(number, [f"+1212777{index:04d}" for index in range(300)])
    assert rows_touched_finding("+12127770150") <= 8
    assert rows_touched_finding("+12125550150") <= 8
    # a keyword's subscription and do-not-call reads ride along, each by its own unique index
    assert rows_touched_finding("+12125550150", keyword=True) <= 10
