"""Every limit of the plan, the restricted standing and the spend cap, where the product enforces them.

Seats (invitations), phone numbers (buying), the API's budgets per plan, the pre-dial and pre-send gates
(restricted standing, spend cap), the voice webhook's admission (restricted only) and the metering of
every text we send. Providers are the stand-ins; each refusal is shown to write nothing and to reach no
provider.
"""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts.api_keys.services import api_key_create
from accounts.entitlements import Standing, usage_of
from accounts.models import Invitation, Membership
from accounts.principals import Principal
from accounts.services import (
    invitation_accept,
    invitation_create,
    organization_billing_update,
    organization_spend_cap_mark,
)
from accounts.tests.factories import MembershipFactory, UserFactory
from billing.models import BillingAccount, UsageEvent, UsageKind
from billing.selectors import month_start
from compliance.models import AuditEvent
from jagcall.kernel.errors import ApplicationError
from messaging.models import Direction, Message
from messaging.services.gate import SendRefused, pre_send_check
from messaging.services.sending import message_send
from messaging.tests.support import sms_line, status_callback, text
from telephony.models import Call, CallEvent, PhoneNumber, StreamToken
from telephony.services import numbers
from telephony.services.dialing import DialRefused, pre_dial_check
from telephony.services.inbound import NOT_AVAILABLE_NOW
from telephony.services.outbound import place_call
from telephony.tests.calls_support import line as answered_line
from telephony.tests.calls_support import signed_post
from telephony.tests.outbound_support import call_creations, make_agent, make_number, twilio_line

pytestmark = pytest.mark.django_db

PUBLIC = "https://app.jagcall.test"
TO = "+12125550123"  # New York only
TEXT_TO = "+12129870188"
CALLER = "+14155550100"
NOON_IN_NEW_YORK = dt.datetime(2027, 1, 15, 17, 0, tzinfo=dt.UTC)
OPERATOR = Principal.system("operator")


def restrict(organization):
    organization_billing_update(organization=organization, standing=Standing.RESTRICTED, reason="test")


def reach_the_cap(organization, now=None):
    """The owner's spend cap reached this month (the flag usage sets), as the gates read it."""
    now = now or timezone.now()
    account = BillingAccount.objects.create(organization=organization, spend_cap_cents=5_000)
    organization_spend_cap_mark(organization=organization, reached_month=month_start(now).date())
    return account


def usage_rows(organization, kind=UsageKind.SMS_SEGMENTS):
    return list(UsageEvent.objects.for_org(organization).filter(kind=kind).order_by("occurred_at"))


# --- seats -------------------------------------------------------------------------------


def test_an_invitation_beyond_the_plans_seats_is_refused_naming_the_plan_that_allows_more(organization, owner, member):
    invitation_create(organization=organization, actor=owner, email="third@acme.test")  # 2 members + 1 open = 3
    with pytest.raises(ApplicationError) as refused:
        invitation_create(organization=organization, actor=owner, email="fourth@acme.test")
    error = refused.value
    assert (error.code, error.status, error.field) == ("plan_limit", 409, "email")
    assert "Your Starter plan allows 3 team members and 3 are in use" in error.message
    assert "The Pro plan allows 15" in error.message
    assert not Invitation.objects.for_org(organization).filter(email="fourth@acme.test").exists()
    # Resending the open invitation takes no new seat; withdrawing it frees one.
    invitation_create(organization=organization, actor=owner, email="third@acme.test")
    Invitation.objects.for_org(organization).pending().update(revoked_at=timezone.now())
    invitation_create(organization=organization, actor=owner, email="fourth@acme.test")
    # A larger plan has room.
    organization_billing_update(organization=organization, plan_code="pro", reason="test")
    invitation_create(organization=organization, actor=owner, email="fifth@acme.test")


def test_an_invitation_is_refused_on_accepting_when_the_organization_filled_up_meanwhile(organization, owner):
    _first, first_token = invitation_create(organization=organization, actor=owner, email="first@acme.test")
    second, second_token = invitation_create(organization=organization, actor=owner, email="second@acme.test")
    invitation_accept(token=first_token, name="First", password="a-long-enough-passphrase-1")
    # Someone joined another way in between (single sign-on, a plan that got smaller): 3 of 3 seats.
    MembershipFactory(organization=organization, user=UserFactory(email="sso@acme.test"))
    with pytest.raises(ApplicationError) as refused:
        invitation_accept(token=second_token, name="Second", password="a-long-enough-passphrase-2")
    assert (refused.value.code, refused.value.status) == ("plan_limit", 409)
    assert "Your Starter plan allows 3 team members" in refused.value.message
    assert not Membership.objects.for_org(organization).filter(user__email="second@acme.test").exists()
    from accounts.models import User

    assert not User.objects.filter(email="second@acme.test").exists()  # no account was made either
    second.refresh_from_db()
    assert second.status == "pending"  # it works once a seat is free
    Membership.objects.for_org(organization).filter(user__email="sso@acme.test").delete()
    assert invitation_accept(token=second_token, name="Second", password="a-long-enough-passphrase-2").user.email == (
        "second@acme.test"
    )
    assert usage_of(organization, "seats") == 3


def test_the_team_page_shows_the_seats_in_use(owner_client, organization, owner, member):
    response = owner_client.get(reverse("accounts:team", kwargs={"org_slug": organization.slug}))
    assert response.status_code == 200
    assert "2 of 3 seats" in response.content.decode()


# --- phone numbers -----------------------------------------------------------------------


@pytest.fixture
def manager(organization, owner):
    return Principal.member(Membership.objects.for_org(organization).get(user=owner))


def purchases(standin) -> list:
    return [r for r in standin.requests if r.method == "POST" and r.path.endswith("/IncomingPhoneNumbers.json")]


def test_buying_beyond_the_plans_numbers_is_refused_before_twilio(twilio_standin, organization, manager):
    make_number(organization, "+14155550101")
    make_number(organization, "+14155550102", released_at=timezone.now())  # released: not counted
    assert usage_of(organization, "phone_numbers") == 1
    numbers.number_buy(organization=organization, actor=manager, area_code="212")  # the second of two
    assert usage_of(organization, "phone_numbers") == 2
    before = len(purchases(twilio_standin))
    with pytest.raises(ApplicationError) as refused:
        numbers.number_buy(organization=organization, actor=manager, area_code="212")
    error = refused.value
    assert (error.code, error.status) == ("plan_limit", 409)
    assert "Your Starter plan allows 2 phone numbers and 2 are in use" in error.message
    assert "The Pro plan allows 10" in error.message
    assert len(purchases(twilio_standin)) == before
    assert PhoneNumber.objects.for_org(organization).filter(released_at__isnull=True).count() == 2


def test_a_restricted_organization_buys_nothing(twilio_standin, organization, manager):
    restrict(organization)
    before = len(twilio_standin.requests)
    with pytest.raises(ApplicationError) as refused:
        numbers.number_buy(organization=organization, actor=manager, area_code="212")
    assert (refused.value.code, refused.value.status) == ("billing_restricted", 409)
    assert "unpaid or canceled" in refused.value.message
    assert len(twilio_standin.requests) == before
    assert not PhoneNumber.objects.for_org(organization).exists()


# --- the API's budgets per plan ----------------------------------------------------------


def api_key_client(organization) -> APIClient:
    _key, raw = api_key_create(
        organization=organization, actor=OPERATOR, service_role="owner", name="CRM", scopes=["organization:read"]
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


def test_an_api_key_gets_its_plans_budget(organization, other_organization):
    organization_billing_update(organization=other_organization, plan_code="pro", reason="test")
    starter = api_key_client(organization).get("/api/v1/me")
    pro = api_key_client(other_organization).get("/api/v1/me")
    assert starter.status_code == pro.status_code == 200
    assert (starter["RateLimit-Limit"], starter["RateLimit-Remaining"]) == ("200", "199")
    assert (pro["RateLimit-Limit"], pro["RateLimit-Remaining"]) == ("600", "599")
    pro_write = api_key_client(other_organization).post("/api/v1/me", {}, format="json")
    assert pro_write["RateLimit-Limit"] == "120"


def test_the_settings_scale_every_plan_alike(organization, settings):
    from jagcall.kernel.api import throttling

    settings.API_RATE_LIMIT_READS, settings.API_RATE_LIMIT_WRITES = 5, 3
    organization_billing_update(organization=organization, plan_code="pro", reason="test")
    client = api_key_client(organization)
    assert [client.get("/api/v1/me").status_code for _ in range(16)] == [200] * 15 + [429]  # 3 x 5
    assert throttling.limits_for(SimpleNamespace()) == (5, 3)  # a request without an organization


# --- dialing -----------------------------------------------------------------------------


@pytest.fixture
def caller_line(twilio_standin, organization, settings):
    settings.PUBLIC_BASE_URL = PUBLIC
    return twilio_line(organization, "+14155550100")


def dial(organization, owner, caller_line):
    agent = make_agent(organization)
    return place_call(
        organization=organization, actor=owner, agent=agent, to_number=TO, from_number=caller_line,
        now=NOON_IN_NEW_YORK,
    )  # fmt: skip


def assert_no_call(organization, standin, requests_before):
    assert not Call.objects.for_org(organization).exists()
    assert not CallEvent.objects.for_org(organization).exists()
    assert not AuditEvent.objects.for_org(organization).filter(action="call.placed").exists()
    assert call_creations(standin) == [] and len(standin.requests) == requests_before


def test_a_restricted_organization_dials_nothing(organization, owner, caller_line, twilio_standin):
    restrict(organization)
    before = len(twilio_standin.requests)
    with pytest.raises(DialRefused) as refused:
        dial(organization, owner, caller_line)
    assert (refused.value.code, refused.value.status) == ("billing_restricted", 422)
    assert "Outbound calls and texts are paused" in refused.value.message
    assert_no_call(organization, twilio_standin, before)


def test_no_call_is_dialled_once_the_spend_cap_is_reached(organization, owner, caller_line, twilio_standin):
    reach_the_cap(organization, NOON_IN_NEW_YORK)
    before = len(twilio_standin.requests)
    with pytest.raises(DialRefused) as refused:
        dial(organization, owner, caller_line)
    assert (refused.value.code, refused.value.status) == ("spend_cap_reached", 422)
    assert "spend cap is reached" in refused.value.message
    assert_no_call(organization, twilio_standin, before)
    # Last month's flag refuses nothing this month.
    assert pre_dial_check(organization=organization, to_number=TO, now=NOON_IN_NEW_YORK + dt.timedelta(days=31)) == []


def test_a_past_due_organization_still_dials(organization, owner, caller_line, twilio_standin):
    organization_billing_update(organization=organization, standing=Standing.PAST_DUE, reason="test")
    assert dial(organization, owner, caller_line).twilio_sid


# --- texts -------------------------------------------------------------------------------


@pytest.fixture
def sms_number(twilio_standin, settings, organization, client):
    settings.PUBLIC_BASE_URL = PUBLIC
    twilio_standin.route_callbacks_to(client)
    twilio_standin.message_autodeliver = False  # callbacks are played out by the test, in its transaction
    return sms_line(organization, "+14155550123")


def sent_to_twilio(standin) -> list:
    return [m for m in standin.messages if m.direction == "outbound-api"]


def messages_api(organization) -> APIClient:
    _key, raw = api_key_create(
        organization=organization, actor=OPERATOR, service_role="owner", name="CRM",
        scopes=["messages:read", "messages:write"],
    )  # fmt: skip
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.mark.parametrize("cause, code", [("restricted", "billing_restricted"), ("cap", "spend_cap_reached")])
def test_texts_are_refused_with_the_code_and_nothing_is_written(cause, code, organization, sms_number, twilio_standin):
    api = messages_api(organization)
    restrict(organization) if cause == "restricted" else reach_the_cap(organization)
    response = api.post("/api/v1/messages", {"to": TEXT_TO, "from": sms_number.number, "body": "Hi"}, format="json")
    assert response.status_code == 422, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert ("unpaid or canceled" if cause == "restricted" else "spend cap is reached") in error["message"]
    assert not Message.objects.for_org(organization).exists()
    assert sent_to_twilio(twilio_standin) == []
    assert usage_rows(organization) == []


def test_the_gate_reads_the_cap_in_one_query(organization, sms_number, django_assert_max_num_queries):
    reach_the_cap(organization, NOON_IN_NEW_YORK)
    # the spend cap's flag, the do-not-call entry, the pair's subscription; nothing written
    with django_assert_max_num_queries(3):
        refusals = pre_send_check(organization=organization, to_number=TEXT_TO, sender=sms_number, now=NOON_IN_NEW_YORK)
    assert [r.code for r in refusals] == ["spend_cap_reached"]


def test_a_sent_text_is_metered_once_with_its_segments(client, organization, owner, sms_number, twilio_standin):
    message = message_send(organization=organization, actor=owner, sender=sms_number, to=TEXT_TO, body="a" * 161)
    assert message.segments == 2
    (usage,) = usage_rows(organization)
    assert (usage.quantity, usage.source) == (2, f"message:{message.id}")
    assert usage.occurred_at == message.created_at
    headers = {"I-Twilio-Idempotency-Token": "same-delivery"}
    assert status_callback(client, message, "delivered", headers=headers).status_code == 204
    assert status_callback(client, message, "delivered", headers=headers).status_code == 200  # the duplicate
    twilio_standin.deliver_messages()
    assert len(usage_rows(organization)) == 1


def test_a_refused_text_is_not_metered(organization, owner, sms_number, twilio_standin):
    restrict(organization)
    with pytest.raises(SendRefused):
        message_send(organization=organization, actor=owner, sender=sms_number, to=TEXT_TO, body="Hi")
    assert usage_rows(organization) == []


def test_an_automatic_reply_is_metered_and_the_text_received_is_not(client, organization, sms_number):
    assert text(client, sms_number, "HELP", sender=TEXT_TO).status_code == 200
    reply = Message.objects.for_org(organization).get(direction=Direction.OUTBOUND)
    received = Message.objects.for_org(organization).get(direction=Direction.INBOUND)
    (usage,) = usage_rows(organization)
    assert (usage.quantity, usage.source) == (reply.segments, f"message:{reply.id}")
    assert f"message:{received.id}" not in [row.source for row in usage_rows(organization)]


def test_a_restricted_organization_still_answers_stop(client, organization, sms_number):
    """Confirming an opt-out is not outbound marketing: it is sent (and metered) whatever the standing."""
    restrict(organization)
    answer = text(client, sms_number, "STOP", sender=TEXT_TO)
    assert answer.status_code == 200 and "unsubscribed" in answer.content.decode()
    assert len(usage_rows(organization)) == 1


# --- inbound calls -----------------------------------------------------------------------


@pytest.fixture
def voice(twilio_standin, settings, client):
    settings.PUBLIC_BASE_URL = PUBLIC
    twilio_standin.route_callbacks_to(client)
    return twilio_standin


def ring(client, number, sid):
    params = {"AccountSid": number.account_sid, "CallSid": sid, "CallStatus": "ringing", "From": CALLER,
              "To": number.number}  # fmt: skip
    response = signed_post(client, "twilio-hooks:voice", params, account_sid=number.account_sid)
    assert response.status_code == 200
    return ET.fromstring(response.content)


def test_a_caller_of_a_restricted_organization_hears_a_short_refusal(voice, organization, client):
    number = answered_line(organization)
    restrict(organization)
    root = ring(client, number, "CA" + "a" * 32)
    assert [child.tag for child in root] == ["Say", "Hangup"] and root.find("Say").text == NOT_AVAILABLE_NOW
    assert not Call.objects.for_org(organization).exists()
    assert not StreamToken.objects.unscoped("test").exists()


@pytest.mark.parametrize("cause", ["cap", "past_due"])
def test_inbound_calls_keep_working_when_the_cap_is_reached_or_a_payment_is_late(cause, voice, organization, client):
    number = answered_line(organization)
    if cause == "cap":
        reach_the_cap(organization)
    else:
        organization_billing_update(organization=organization, standing=Standing.PAST_DUE, reason="test")
    root = ring(client, number, "CA" + "b" * 32)
    assert root.find("./Connect/Stream") is not None
    assert Call.objects.for_org(organization).filter(twilio_sid="CA" + "b" * 32).exists()


@pytest.mark.parametrize("plan, reads, writes", [("starter", 5, 3), ("pro", 15, 12), ("enterprise", 50, 50)])
def test_the_api_rate_limits_follow_the_plan(settings, plan, reads, writes):
    """Each plan's API budget keeps its ratio to Starter's (200/30, 600/120, 2000/500 a minute by default)."""
    from accounts.tests.factories import OrganizationFactory
    from jagcall.tests.test_throttling import ME_URL, access_token, client_for

    settings.API_RATE_LIMIT_READS, settings.API_RATE_LIMIT_WRITES = 5, 3
    organization = OrganizationFactory(plan_code=plan)
    client = client_for(access_token(organization=organization))
    read_statuses = [client.get(ME_URL).status_code for _ in range(reads + 1)]
    assert read_statuses[:-1] == [200] * reads and read_statuses[-1] == 429
    write_statuses = [client.post(ME_URL, {}, format="json").status_code for _ in range(writes + 1)]
    assert 429 not in write_statuses[:-1] and write_statuses[-1] == 429
    assert client.post(ME_URL, {}, format="json")["RateLimit-Limit"] == str(writes)
