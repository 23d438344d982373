"""The SQL budget of Twilio's inbound SMS webhook: what a text from a returning sender costs the database.

Every text to every number comes through here (bench/sms_webhook.py), so each statement counts: a change
that adds one fails here and has to say why. What the request must still do is checked beside the count.
The signing account's token is kept in the process (twilio_accounts): the signer's own lookup warms it.
"""

from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from messaging.models import Conversation, Direction, Message
from messaging.tests.support import sms_line, text
from telephony.selectors.calls import phone_number_for_inbound
from telephony.tests.outbound_support import make_agent

pytestmark = pytest.mark.django_db

# number (with organization and agent), dedupe record, conversation locked (with contact), message,
# conversation updated, the number's texting settings
SMS_BUDGET = 6
TEXTER = "+12129870188"


@pytest.fixture
def number(twilio_standin, settings, organization):
    settings.PUBLIC_BASE_URL = "https://app.jagcall.test"
    return sms_line(organization, "+14155550123")


def counted(client, number, body: str):
    with CaptureQueriesContext(connection) as queries:
        response = text(client, number, body, sender=TEXTER)
    statements = [q["sql"] for q in queries.captured_queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE"))]
    return response, statements


def test_a_returning_senders_text_stays_within_its_sql_budget_and_is_stored_whole(client, number, organization):
    first, _ = counted(client, number, "Hello, is the practice open Saturday?")  # makes the contact and thread
    assert first.status_code == 200
    response, statements = counted(client, number, "And do you take new patients?")
    assert response.status_code == 200
    assert len(statements) <= SMS_BUDGET, "\n\n".join(statements)

    conversation = Conversation.objects.for_org(organization).select_related("contact").get(phone_number=number)
    assert conversation.unread_count == 2
    assert conversation.contact.phone == TEXTER  # decrypted from the row the webhook read in plain SQL
    messages = Message.objects.for_org(organization).filter(conversation=conversation).order_by("created_at")
    assert [(m.direction, m.body) for m in messages] == [
        (Direction.INBOUND, "Hello, is the practice open Saturday?"),
        (Direction.INBOUND, "And do you take new patients?"),
    ]


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
