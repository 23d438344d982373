"""A2P 10DLC status of our numbers, read with the real twilio SDK from the Twilio stand-in (messaging.twilio.com's
Services, their PhoneNumbers and their US A2P campaign), kept in NumberMessaging, and the warning shown before
sending from a US long code that is not verified."""

from __future__ import annotations

import base64
import secrets

import pytest

from compliance.models import AuditEvent
from jagcall.kernel.errors import ApplicationError
from jagcall.kernel.providers import twilio_client
from messaging.models import A2PStatus, NumberMessaging
from messaging.services.a2p import a2p_status_refresh, a2p_status_refresh_numbers, a2p_warning, needs_a2p
from messaging.tasks import a2p_status_refresh_all_task, a2p_status_refresh_task
from messaging.tests.support import sms_line
from telephony.services.twilio_accounts import auth_token_for_account_sid

pytestmark = pytest.mark.django_db

PUBLIC = "https://app.jagcall.test"


@pytest.fixture
def twilio(twilio_standin, settings):
    settings.PUBLIC_BASE_URL = PUBLIC
    return twilio_standin


def own_client(number):
    """The SDK as the number's subaccount itself (Messaging v1 serves the account that authenticates)."""
    return twilio_client(number.account_sid, auth_token_for_account_sid(number.account_sid))


def a2p_events(organization) -> list[AuditEvent]:
    checked = AuditEvent.objects.for_org(organization).filter(action="phone_number.a2p_checked")
    return list(checked.order_by("occurred_at"))


# --- which numbers A2P 10DLC is about ------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        ("+14155550123", True),  # San Francisco
        ("+12129870188", True),  # New York
        ("+18005550100", False),  # toll-free
        ("+18335550100", False),
        ("+18885550100", False),
        ("+14165550123", False),  # Toronto: +1, but Canada
        ("+442071838750", False),  # London
    ],
)
def test_only_us_local_numbers_need_a2p(number, expected):
    assert needs_a2p(number) is expected


# --- every status, through the SDK ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("campaign_status", "expected"),
    [
        ("VERIFIED", A2PStatus.VERIFIED),
        ("PENDING", A2PStatus.PENDING),
        ("IN_PROGRESS", A2PStatus.PENDING),
        ("FAILED", A2PStatus.FAILED),
    ],
)
def test_the_campaign_of_the_service_holding_the_number_gives_its_status(
    twilio, organization, campaign_status, expected
):
    number = sms_line(organization)
    campaign = twilio.register_a2p(number.account_sid, number.number, campaign_status)

    row = a2p_status_refresh(phone_number=number)

    assert (row.a2p_status, row.a2p_campaign_sid) == (expected, campaign.sid)
    assert row.a2p_checked_at is not None
    assert NumberMessaging.objects.for_org(organization).get(phone_number=number).a2p_status == expected
    # Read as the subaccount (its own SID signs the v1 requests), never as the platform's account.
    v1 = twilio.requests_to("/v1/Services")
    assert v1 and all(r.header("authorization") for r in v1)
    users = {base64.b64decode(r.header("authorization").split()[1]).decode().split(":")[0] for r in v1}
    assert users == {number.account_sid}


def test_a_number_no_service_holds_is_unregistered(twilio, organization):
    number = sms_line(organization)
    other = sms_line(organization, "+12129870111")
    twilio.register_a2p(other.account_sid, other.number, "VERIFIED")  # another number's service and campaign

    row = a2p_status_refresh(phone_number=number)

    assert (row.a2p_status, row.a2p_campaign_sid) == (A2PStatus.UNREGISTERED, "")
    assert a2p_status_refresh(phone_number=other).a2p_status == A2PStatus.VERIFIED


def test_a_service_without_a_campaign_leaves_its_number_unregistered(twilio, organization):
    number = sms_line(organization)
    v1 = own_client(number).messaging.v1
    service = v1.services.create(friendly_name="Acme Dental texts")
    v1.services(service.sid).phone_numbers.create(phone_number_sid=number.twilio_sid)

    assert a2p_status_refresh(phone_number=number).a2p_status == A2PStatus.UNREGISTERED


def test_a_campaign_verified_later_is_seen_at_the_next_check(twilio, organization):
    number = sms_line(organization)
    campaign = twilio.register_a2p(number.account_sid, number.number, "PENDING")
    assert a2p_status_refresh(phone_number=number).a2p_status == A2PStatus.PENDING
    twilio.set_campaign_status(campaign.sid, "VERIFIED")
    assert a2p_status_refresh(phone_number=number).a2p_status == A2PStatus.VERIFIED
    assert NumberMessaging.objects.for_org(organization).filter(phone_number=number).count() == 1


@pytest.mark.parametrize("e164", ["+442071838750", "+18005550100", "+14165550123"])
def test_a_number_that_is_not_a_us_long_code_is_not_required_and_twilio_is_not_asked(twilio, organization, e164):
    number = sms_line(organization, e164)

    row = a2p_status_refresh(phone_number=number)

    assert (row.a2p_status, row.a2p_campaign_sid) == (A2PStatus.NOT_REQUIRED, "")
    assert row.a2p_checked_at is not None
    assert twilio.requests_to("/v1/") == []
    assert a2p_warning(number) is None


def test_a_number_of_the_organizations_own_twilio_account_is_read_with_its_credentials(twilio, organization, owner):
    from integrations.services import credential_save
    from jagcall.kernel.standins.twilio.records import Account, new_sid
    from telephony.models import PhoneNumber

    sid, token = new_sid("AC"), secrets.token_hex(16)
    twilio.accounts[sid] = Account(sid, token, "Own", sid)
    values = {"account_sid": sid, "auth_token": token}
    credential_save(organization=organization, actor=owner, provider="twilio", values=values)
    bought = twilio_client(sid, token).incoming_phone_numbers.create(phone_number="+15125550142")
    number = PhoneNumber.objects.create(
        organization=organization, number=bought.phone_number, twilio_sid=bought.sid, account_sid=sid,
        country="US", sms_enabled=True,
    )  # fmt: skip
    twilio.register_a2p(sid, number.number, "FAILED")

    assert a2p_status_refresh(phone_number=number).a2p_status == A2PStatus.FAILED


# --- Twilio cannot be asked ------------------------------------------------------------------------


def test_twilio_unavailable_is_a_clear_error_and_the_status_stays(twilio, organization):
    number = sms_line(organization)
    campaign = twilio.register_a2p(number.account_sid, number.number, "VERIFIED")
    before = a2p_status_refresh(phone_number=number)
    twilio.set_campaign_status(campaign.sid, "FAILED")
    twilio.fail_next(503, path_prefix="/v1/Services", times=10)

    with pytest.raises(ApplicationError) as refused:
        a2p_status_refresh(phone_number=number)

    assert refused.value.status == 503 and refused.value.code == "provider_unavailable"
    assert number.number in refused.value.message and "left as it was" in refused.value.message
    after = NumberMessaging.objects.for_org(organization).get(phone_number=number)
    assert (after.a2p_status, after.a2p_campaign_sid, after.a2p_checked_at) == (
        A2PStatus.VERIFIED, campaign.sid, before.a2p_checked_at
    )  # fmt: skip


def test_refused_credentials_say_where_to_fix_them_and_write_nothing(twilio, organization):
    number = sms_line(organization)
    twilio.accounts[number.account_sid].status = "closed"  # Twilio answers 401 (20003) for it from now on

    with pytest.raises(ApplicationError) as refused:
        a2p_status_refresh(phone_number=number)

    assert refused.value.status == 400 and "Provider accounts" in refused.value.message
    assert not NumberMessaging.objects.for_org(organization).filter(phone_number=number).exists()
    assert a2p_events(organization) == []


def test_a_released_number_is_not_checked(twilio, organization):
    from django.utils import timezone

    number = sms_line(organization)
    number.released_at = timezone.now()
    number.save(update_fields=["released_at"])

    with pytest.raises(ApplicationError) as refused:
        a2p_status_refresh(phone_number=number)
    assert refused.value.status == 404 and twilio.requests_to("/v1/") == []


# --- audit -----------------------------------------------------------------------------------------


def test_the_periodic_check_is_audited_only_when_the_status_changes(twilio, organization):
    number = sms_line(organization)
    campaign = twilio.register_a2p(number.account_sid, number.number, "PENDING")

    a2p_status_refresh(phone_number=number)
    a2p_status_refresh(phone_number=number)  # nothing changed: nothing recorded
    twilio.set_campaign_status(campaign.sid, "VERIFIED")
    a2p_status_refresh(phone_number=number)

    first, second = a2p_events(organization)
    assert first.actor_type == second.actor_type == "system"
    assert first.changes["a2p_status"] == {"before": A2PStatus.UNKNOWN, "after": A2PStatus.PENDING}
    assert second.changes["a2p_status"] == {"before": A2PStatus.PENDING, "after": A2PStatus.VERIFIED}
    assert second.metadata["number"] == number.number and second.metadata["campaign_status"] == "VERIFIED"
    assert second.resource_id == str(number.id)


# --- the task --------------------------------------------------------------------------------------


def test_the_task_checks_every_number_that_texts_and_skips_the_others(twilio, organization, other_organization):
    verified = sms_line(organization)
    twilio.register_a2p(verified.account_sid, verified.number, "VERIFIED")
    unregistered = sms_line(organization, "+12129870111")
    london = sms_line(organization, "+442071838750")
    voice_only = sms_line(organization, "+13125550177")
    voice_only.sms_enabled = False
    voice_only.save(update_fields=["sms_enabled"])
    theirs = sms_line(other_organization, "+15125550142")

    summary = a2p_status_refresh_task.apply(args=[str(organization.id)]).get()

    assert summary == {
        verified.number: A2PStatus.VERIFIED,
        unregistered.number: A2PStatus.UNREGISTERED,
        london.number: A2PStatus.NOT_REQUIRED,
    }
    assert not NumberMessaging.objects.for_org(other_organization).filter(phone_number=theirs).exists()
    assert not NumberMessaging.objects.for_org(organization).filter(phone_number=voice_only).exists()


def test_one_number_that_cannot_be_checked_does_not_stop_the_others(twilio, organization):
    new_york = sms_line(organization, "+12129870111")  # checked first: numbers go in order
    san_francisco = sms_line(organization, "+14155550123")
    twilio.register_a2p(san_francisco.account_sid, san_francisco.number, "VERIFIED")
    twilio.fail_next(503, path_prefix="/v1/Services", times=1)

    outcome = a2p_status_refresh_numbers(organization=organization)

    assert list(outcome.failed) == [new_york.number] and outcome.retryable
    assert [(row.phone_number, row.a2p_status) for row in outcome.refreshed] == [(san_francisco, A2PStatus.VERIFIED)]
    assert not NumberMessaging.objects.for_org(organization).filter(phone_number=new_york).exists()


def test_the_periodic_fan_out_starts_one_check_per_organization_with_a_number_that_texts(
    twilio, organization, other_organization, monkeypatch
):
    sms_line(organization)
    sms_line(organization, "+12129870111")
    sms_line(other_organization, "+15125550142")
    started = []
    monkeypatch.setattr(a2p_status_refresh_task, "delay", lambda organization_id: started.append(organization_id))

    assert a2p_status_refresh_all_task.apply().get() == 2
    assert sorted(started) == sorted([str(organization.id), str(other_organization.id)])


# --- the warning before sending ----------------------------------------------------------------------


def test_the_warning_says_what_to_do_until_the_number_is_verified(twilio, organization):
    number = sms_line(organization)

    unknown = a2p_warning(number)  # never checked
    assert "Register it for A2P 10DLC in Twilio (Messaging > Regulatory compliance)" in unknown
    assert "Check now" in unknown and number.number in unknown

    a2p_status_refresh(phone_number=number)
    unregistered = a2p_warning(number)
    assert "not registered" in unregistered
    assert "Register it for A2P 10DLC in Twilio (Messaging > Regulatory compliance)" in unregistered

    campaign = twilio.register_a2p(number.account_sid, number.number, "PENDING")
    a2p_status_refresh(phone_number=number)
    assert "being reviewed" in a2p_warning(number)

    twilio.set_campaign_status(campaign.sid, "FAILED")
    a2p_status_refresh(phone_number=number)
    assert "failed" in a2p_warning(number) and "Regulatory compliance" in a2p_warning(number)

    twilio.set_campaign_status(campaign.sid, "VERIFIED")
    a2p_status_refresh(phone_number=number)
    assert a2p_warning(number) is None


# --- simulated mode (`make run` without provider keys) --------------------------------------------


@pytest.fixture
def simulated_twilio(settings):
    """The Twilio stand-in as simulated mode runs it (jagcall/kernel/standins/simulated.py), the SDK pointed at it."""
    from jagcall.kernel.standins.simulated import SimulatedTwilio

    standin = SimulatedTwilio().start()
    settings.PROVIDER_BASE_URLS = {**getattr(settings, "PROVIDER_BASE_URLS", {}), "twilio": standin.base_url}
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = standin.account_sid, standin.auth_token
    settings.PUBLIC_BASE_URL = PUBLIC
    try:
        yield standin
    finally:
        standin.stop()


def test_in_simulated_mode_a_us_number_bought_on_the_numbers_page_is_registered(simulated_twilio, organization, owner):
    from telephony.services.numbers import number_buy

    bought = number_buy(organization=organization, actor=owner, area_code="415")
    toll_free = number_buy(organization=organization, actor=owner, phone_number="+18005550100")

    assert bought.sms_enabled and a2p_status_refresh(phone_number=bought).a2p_status == A2PStatus.VERIFIED
    assert a2p_warning(bought) is None
    assert a2p_status_refresh(phone_number=toll_free).a2p_status == A2PStatus.NOT_REQUIRED
    assert len(simulated_twilio.campaigns) == 1  # none for the toll-free number


def test_in_simulated_mode_numbers_given_back_at_start_are_registered_again(simulated_twilio, organization):
    from jagcall.kernel.standins.simulated import SimulatedProviders

    number = sms_line(organization)  # bought in an earlier run: the fresh stand-in only has the database's word
    simulated_twilio.messaging_services.clear()
    simulated_twilio.campaigns.clear()
    subaccount = number.account_sid
    token = auth_token_for_account_sid(subaccount)
    SimulatedProviders({"twilio": simulated_twilio}).restore_twilio(
        accounts=[(subaccount, token, "JagCall acme-dental")],
        numbers=[(number.twilio_sid, subaccount, number.number, "", "", "")],
    )

    assert a2p_status_refresh(phone_number=number).a2p_status == A2PStatus.VERIFIED
