"""Phone numbers through the real twilio SDK against the Twilio stand-in: search, buy (pointed at our
hooks), assign, release, import from an own account; Twilio's refusals leave nothing half-written."""

from __future__ import annotations

import logging

import pytest
from django.db import connection

from accounts.principals import Principal
from accounts.models import Membership
from compliance.models import AuditEvent
from jagcall.kernel.errors import ApplicationError, PermissionDenied
from telephony.models import NumberSource, PhoneNumber
from telephony.selectors.numbers import phone_number_list
from telephony.services import numbers as services
from telephony.services.urls import public_url
from telephony.tests.factories import AgentFactory, PhoneNumberFactory
from telephony.tests.test_twilio_accounts import connect_own_account

pytestmark = pytest.mark.django_db


def principal_of(organization, user) -> Principal:
    return Principal.member(Membership.objects.for_org(organization).get(user=user))


@pytest.fixture
def manager(organization, owner):
    return principal_of(organization, owner)


def actions(organization) -> list[str]:
    return list(
        AuditEvent.objects.for_org(organization).filter(action__startswith="phone_number.").order_by("occurred_at", "id").values_list("action", flat=True)
    )


def bought_at_twilio(standin) -> dict:
    return dict(standin.numbers)


def test_search_lists_local_numbers_of_the_area(twilio_standin, organization, manager):
    offers = services.number_search(organization=organization, actor=manager, country="us", area_code="415")
    assert offers and all(o.phone_number.startswith("+1415") and o.country == "US" for o in offers)
    assert offers[0].locality == "San Francisco" and offers[0].voice
    (search,) = twilio_standin.requests_to("/2010-04-01/Accounts/AC", "GET")[-1:]
    assert "/AvailablePhoneNumbers/US/Local.json" in search.path and search.query["AreaCode"] == "415"
    contains = services.number_search(organization=organization, actor=manager, country="US", contains="77")
    assert contains and all("77" in o.phone_number[2:] for o in contains)


def test_search_refuses_bad_filters_clearly(twilio_standin, organization, manager):
    for kwargs, field in (({"country": "USA"}, "country"), ({"area_code": "41a"}, "area_code"),
                          ({"contains": "5 5"}, "contains")):  # fmt: skip
        with pytest.raises(ApplicationError) as refused:
            services.number_search(organization=organization, actor=manager, **kwargs)
        assert refused.value.field == field
    with pytest.raises(ApplicationError) as nowhere:
        services.number_search(organization=organization, actor=manager, country="FR")
    assert "no local numbers in FR" in nowhere.value.message


def test_buy_points_the_number_at_our_hooks(twilio_standin, organization, manager):
    offer = services.number_search(organization=organization, actor=manager, country="US", area_code="212")[0]
    number = services.number_buy(organization=organization, actor=manager, phone_number=offer.phone_number)
    (request,) = twilio_standin.requests_to("/2010-04-01/Accounts/", "POST")[-1:]
    assert request.path.endswith("/IncomingPhoneNumbers.json")
    assert request.form["PhoneNumber"] == offer.phone_number
    assert request.form["VoiceUrl"] == public_url("twilio-hooks:voice")
    assert request.form["VoiceMethod"] == "POST"
    assert request.form["StatusCallback"] == public_url("twilio-hooks:status")
    assert request.form["SmsUrl"] == public_url("twilio-hooks:sms")  # a texted STOP reaches the do-not-call list
    assert request.form["SmsMethod"] == "POST"
    at_twilio = twilio_standin.numbers[number.twilio_sid]
    assert at_twilio.settings["VoiceUrl"].endswith("/hooks/twilio/voice/")
    assert at_twilio.settings["SmsUrl"].endswith("/hooks/twilio/sms/") and at_twilio.settings["SmsMethod"] == "POST"
    assert number.number == offer.phone_number and number.source == NumberSource.PURCHASED
    assert number.account_sid == at_twilio.account_sid != twilio_standin.account_sid  # the subaccount's
    assert number.country == "US" and number.voice_enabled
    assert actions(organization) == ["phone_number.purchased"]


def test_buy_by_area_code(twilio_standin, organization, manager):
    number = services.number_buy(organization=organization, actor=manager, area_code="312")
    assert number.number.startswith("+1312")


def test_twilio_refusal_is_a_clear_message_and_writes_nothing(twilio_standin, organization, manager, caplog):
    caplog.set_level(logging.INFO)
    # The subaccount is made first (that request succeeds), then the purchase is refused.
    services.number_search(organization=organization, actor=manager, area_code="415")
    twilio_standin.fail_next(400, "Phone number +14155550000 is not available", path_prefix="/2010-04-01/Accounts/")
    with pytest.raises(ApplicationError) as refused:
        services.number_buy(organization=organization, actor=manager, phone_number="+14155550100")
    assert refused.value.message.startswith("Could not buy +14155550100:")
    assert "Nothing was changed" in refused.value.message and refused.value.status == 400
    assert not PhoneNumber.objects.for_org(organization).exists()
    assert actions(organization) == []
    assert twilio_standin.auth_token not in caplog.text


def test_twilio_down_is_retryable(twilio_standin, organization, manager):
    services.number_search(organization=organization, actor=manager, area_code="415")
    twilio_standin.fail_next(503, "Service unavailable", path_prefix="/2010-04-01/Accounts/")
    with pytest.raises(ApplicationError) as refused:
        services.number_buy(organization=organization, actor=manager, area_code="415")
    assert refused.value.status == 503 and refused.value.code == "provider_unavailable"
    assert not PhoneNumber.objects.for_org(organization).exists()


def test_a_number_not_stored_is_released_at_twilio_again(twilio_standin, organization, manager):
    from django.db import connections

    services.number_search(organization=organization, actor=manager, area_code="415")  # the subaccount exists
    # Another session holds the numbers' table, and this one gives up waiting: the row cannot be written.
    other = connections.create_connection("default")
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute("LOCK TABLE telephony_phonenumber IN EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '300ms'")
        with pytest.raises(ApplicationError) as refused:
            services.number_buy(organization=organization, actor=manager, area_code="415")
    finally:
        other.rollback()
        other.close()
    assert "released at Twilio again" in refused.value.message and refused.value.status == 503
    assert twilio_standin.numbers == {}
    (delete,) = twilio_standin.requests_to("/2010-04-01/Accounts/", "DELETE")
    assert "/IncomingPhoneNumbers/PN" in delete.path


def test_a_number_held_elsewhere_is_refused_before_twilio(twilio_standin, organization, other_organization, manager):
    PhoneNumberFactory(organization=other_organization, number="+14155550142")
    with pytest.raises(ApplicationError) as refused:
        services.number_buy(organization=organization, actor=manager, phone_number="+14155550142")
    assert refused.value.status == 409
    assert twilio_standin.numbers == {}


def test_assign_and_unassign_an_agent(twilio_standin, organization, other_organization, manager):
    number = services.number_buy(organization=organization, actor=manager, area_code="415")
    agent = AgentFactory(organization=organization)
    number = services.number_assign(organization=organization, actor=manager, number=number, agent=agent)
    assert PhoneNumber.objects.for_org(organization).get(id=number.id).agent == agent
    foreign = AgentFactory(organization=other_organization)
    with pytest.raises(ApplicationError) as refused:
        services.number_assign(organization=organization, actor=manager, number=number, agent=foreign)
    assert refused.value.status == 404
    services.number_assign(organization=organization, actor=manager, number=number, agent=None)
    assert PhoneNumber.objects.for_org(organization).get(id=number.id).agent is None
    assert actions(organization) == ["phone_number.purchased", "phone_number.assigned", "phone_number.unassigned"]


def test_release_deletes_at_twilio_and_clears_the_agent(twilio_standin, organization, manager):
    number = services.number_buy(organization=organization, actor=manager, area_code="415")
    services.number_assign(organization=organization, actor=manager, number=number, agent=AgentFactory(organization=organization))
    released = services.number_release(organization=organization, actor=manager, number=number)
    assert released.released_at is not None and released.agent is None
    assert number.twilio_sid not in twilio_standin.numbers
    (delete,) = twilio_standin.requests_to("/2010-04-01/Accounts/", "DELETE")
    assert delete.path.endswith(f"/IncomingPhoneNumbers/{number.twilio_sid}.json")
    assert list(phone_number_list(organization=organization)) == []
    assert actions(organization)[-1] == "phone_number.released"
    # The line may be bought again (by anyone) once released.
    twilio_standin.numbers.clear()
    again = services.number_buy(organization=organization, actor=manager, phone_number=number.number)
    assert again.id != number.id


def test_release_refused_by_twilio_keeps_the_number(twilio_standin, organization, manager):
    number = services.number_buy(organization=organization, actor=manager, area_code="415")
    twilio_standin.fail_next(500, "Internal error", path_prefix="/2010-04-01/Accounts/")
    with pytest.raises(ApplicationError):
        services.number_release(organization=organization, actor=manager, number=number)
    assert PhoneNumber.objects.for_org(organization).get(id=number.id).released_at is None


def test_import_from_the_own_account(twilio_standin, organization, manager):
    own_sid, own_token = connect_own_account(twilio_standin, organization)
    from twilio.rest import Client
    from jagcall.kernel.providers import twilio_client

    client: Client = twilio_client(own_sid, own_token)
    theirs = client.api.v2010.accounts(own_sid).incoming_phone_numbers.create(
        area_code="512", voice_url="https://elsewhere.example/voice", sms_url="https://elsewhere.example/sms",
        voice_application_sid="AP" + "1" * 32, sms_application_sid="AP" + "2" * 32,
    )
    importable = services.number_importable_list(organization=organization, actor=manager)
    assert [n["twilio_sid"] for n in importable] == [theirs.sid]
    number = services.number_import(organization=organization, actor=manager, twilio_sid=theirs.sid)
    assert number.source == NumberSource.IMPORTED and number.account_sid == own_sid
    settings_at_twilio = twilio_standin.numbers[theirs.sid].settings
    assert settings_at_twilio["VoiceUrl"] == public_url("twilio-hooks:voice")
    assert settings_at_twilio["StatusCallback"] == public_url("twilio-hooks:status")
    assert settings_at_twilio["SmsUrl"] == public_url("twilio-hooks:sms") and settings_at_twilio["SmsMethod"] == "POST"
    # A TwiML application would take the number's calls and texts before our URLs: it is cleared.
    assert not settings_at_twilio["VoiceApplicationSid"] and not settings_at_twilio["SmsApplicationSid"]
    assert services.number_importable_list(organization=organization, actor=manager) == []
    with pytest.raises(ApplicationError) as twice:
        services.number_import(organization=organization, actor=manager, twilio_sid=theirs.sid)
    assert twice.value.status == 409
    # Releasing an imported number leaves it in the customer's account, our hooks removed.
    services.number_release(organization=organization, actor=manager, number=number)
    assert theirs.sid in twilio_standin.numbers
    left = twilio_standin.numbers[theirs.sid].settings
    assert not left["VoiceUrl"] and not left["StatusCallback"] and not left["SmsUrl"]
    assert actions(organization) == ["phone_number.imported", "phone_number.released"]


def test_an_import_not_stored_puts_the_numbers_hooks_back(twilio_standin, organization, manager):
    from django.db import connections
    from jagcall.kernel.providers import twilio_client

    own_sid, own_token = connect_own_account(twilio_standin, organization)
    theirs = twilio_client(own_sid, own_token).api.v2010.accounts(own_sid).incoming_phone_numbers.create(
        area_code="512",
        voice_url="https://elsewhere.example/voice",
        status_callback="https://elsewhere.example/status",
        sms_url="https://elsewhere.example/sms",
        voice_application_sid="AP" + "3" * 32,
    )
    other = connections.create_connection("default")
    try:
        other.set_autocommit(False)
        with other.cursor() as cursor:
            cursor.execute("LOCK TABLE telephony_phonenumber IN EXCLUSIVE MODE")
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL lock_timeout = '300ms'")
        with pytest.raises(ApplicationError) as refused:
            services.number_import(organization=organization, actor=manager, twilio_sid=theirs.sid)
    finally:
        other.rollback()
        other.close()
    assert refused.value.code == "not_stored"
    left = twilio_standin.numbers[theirs.sid].settings
    assert (left["VoiceUrl"], left["StatusCallback"], left["SmsUrl"]) == (
        "https://elsewhere.example/voice", "https://elsewhere.example/status", "https://elsewhere.example/sms"
    )  # fmt: skip
    assert left["VoiceApplicationSid"] == "AP" + "3" * 32


def test_import_needs_an_own_account(twilio_standin, organization, manager):
    with pytest.raises(ApplicationError) as refused:
        services.number_importable_list(organization=organization, actor=manager)
    assert refused.value.code == "no_own_account"
    with pytest.raises(ApplicationError) as unknown:
        connect_own_account(twilio_standin, organization)
        services.number_import(organization=organization, actor=manager, twilio_sid="PN" + "0" * 32)
    assert unknown.value.status == 404


def test_own_account_with_numbers_cannot_be_disconnected(twilio_standin, organization, manager):
    from integrations.services import credential_delete

    own_sid, _ = connect_own_account(twilio_standin, organization)
    number = services.number_buy(organization=organization, actor=manager, area_code="415")
    assert number.account_sid == own_sid
    with pytest.raises(ApplicationError) as refused:
        credential_delete(organization=organization, actor=manager, provider="twilio")
    assert refused.value.code == "numbers_in_account" and "release" in refused.value.message
    services.number_release(organization=organization, actor=manager, number=number)
    credential_delete(organization=organization, actor=manager, provider="twilio")


def test_members_may_not_manage_numbers(twilio_standin, organization, member):
    principal = principal_of(organization, member)
    with pytest.raises(PermissionDenied):
        services.number_buy(organization=organization, actor=principal, area_code="415")
    with pytest.raises(PermissionDenied):
        services.number_search(organization=organization, actor=principal, area_code="415")
    assert twilio_standin.requests == []
