"""Each organization works in its own Twilio account: its subaccount of the platform's (made once, on
first use) or the account it connected; callbacks' tokens and organizations are found by AccountSid."""

from __future__ import annotations

import secrets
import threading

import pytest
from django.db import connection

from accounts.tests.factories import OrganizationFactory
from integrations.models import ProviderCredential
from jagcall.kernel.standins.twilio.records import Account, new_sid
from telephony.models import TwilioSubaccount
from telephony.services import twilio_accounts

pytestmark = pytest.mark.django_db


def subaccounts_at_twilio(standin) -> list[Account]:
    return [a for a in standin.accounts.values() if a.owner_account_sid == standin.account_sid and a.sid != standin.account_sid]


def connect_own_account(standin, organization) -> tuple[str, str]:
    """An own top-level account at the stand-in, stored as the organization's credential (as credential_save does)."""
    sid, token = new_sid("AC"), secrets.token_hex(16)
    standin.accounts[sid] = Account(sid, token, "Own account", sid)
    from django.utils import timezone

    ProviderCredential(
        organization=organization, provider="twilio", values={"account_sid": sid, "auth_token": token},
        last4=token[-4:], account_sid=sid, verified_at=timezone.now(),
    ).save()  # fmt: skip
    return sid, token


def test_subaccount_created_once_on_first_use(twilio_standin, organization):
    first = twilio_accounts.twilio_for(organization)
    second = twilio_accounts.twilio_for(organization)
    assert first.account_sid == second.account_sid and not first.own
    (made,) = subaccounts_at_twilio(twilio_standin)
    assert made.sid == first.account_sid and made.friendly_name == f"JagCall {organization.slug}"
    stored = TwilioSubaccount.objects.for_org(organization).get()
    assert stored.account_sid == made.sid and stored.auth_token == made.auth_token
    # The subaccount's token is encrypted at rest.
    with connection.cursor() as cursor:
        cursor.execute("SELECT auth_token::text FROM telephony_twiliosubaccount WHERE id = %s", [stored.id])
        (raw,) = cursor.fetchone()
    assert made.auth_token not in raw and made.auth_token.encode().hex() not in raw
    # The client acts in the subaccount: a search goes to the subaccount's URL.
    first.client.api.v2010.accounts(first.account_sid).available_phone_numbers("US").local.list(limit=1)
    assert twilio_standin.requests[-1].path.startswith(f"/2010-04-01/Accounts/{made.sid}/")


def test_two_organizations_get_different_subaccounts(twilio_standin, organization, other_organization):
    ours = twilio_accounts.twilio_for(organization)
    theirs = twilio_accounts.twilio_for(other_organization)
    assert ours.account_sid != theirs.account_sid
    assert len(subaccounts_at_twilio(twilio_standin)) == 2


@pytest.mark.django_db(transaction=True)
def test_concurrent_first_calls_make_one_subaccount(twilio_standin):
    organization = OrganizationFactory()
    barrier = threading.Barrier(4)
    results, errors = [], []

    def first_use():
        try:
            barrier.wait()
            results.append(twilio_accounts.twilio_for(organization).account_sid)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=first_use) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors
    assert len(set(results)) == 1 and len(results) == 4
    assert len(subaccounts_at_twilio(twilio_standin)) == 1
    assert TwilioSubaccount.objects.for_org(organization).count() == 1


def test_own_account_is_used_when_connected(twilio_standin, organization):
    sid, _token = connect_own_account(twilio_standin, organization)
    access = twilio_accounts.twilio_for(organization)
    assert access.own and access.account_sid == sid
    assert subaccounts_at_twilio(twilio_standin) == []


def test_tokens_and_organizations_by_account_sid(twilio_standin, organization, other_organization):
    sub = twilio_accounts.twilio_for(organization).account_sid
    own_sid, own_token = connect_own_account(twilio_standin, other_organization)
    assert twilio_accounts.auth_token_for_account_sid(twilio_standin.account_sid) == twilio_standin.auth_token
    assert twilio_accounts.auth_token_for_account_sid(sub) == twilio_standin.accounts[sub].auth_token
    assert twilio_accounts.auth_token_for_account_sid(own_sid) == own_token
    assert twilio_accounts.auth_token_for_account_sid(new_sid("AC")) is None
    assert twilio_accounts.auth_token_for_account_sid("") is None
    assert twilio_accounts.organization_for_account_sid(sub) == organization
    assert twilio_accounts.organization_for_account_sid(own_sid) == other_organization
    assert twilio_accounts.organization_for_account_sid(twilio_standin.account_sid) is None
    assert twilio_accounts.organization_for_account_sid(new_sid("AC")) is None


def test_simulated_mode_works_against_the_stand_in(settings, organization):
    from jagcall.kernel.providers import SIMULATED_CREDENTIALS
    from jagcall.kernel.standins.twilio import TwilioStandIn

    sid, token = SIMULATED_CREDENTIALS["twilio"]
    standin = TwilioStandIn(sid, token).start()
    try:
        settings.PROVIDER_BASE_URLS = {"twilio": standin.base_url}
        settings.TWILIO_ACCOUNT_SID = settings.TWILIO_AUTH_TOKEN = ""
        settings.SIMULATED_PROVIDERS = True
        access = twilio_accounts.twilio_for(organization)
        assert standin.accounts[access.account_sid].owner_account_sid == sid
        assert twilio_accounts.auth_token_for_account_sid(sid) == token
    finally:
        standin.stop()


def test_refused_subaccount_creation_is_a_provider_error_and_stores_nothing(twilio_standin, settings, organization):
    from jagcall.kernel.providers import ProviderError

    settings.TWILIO_AUTH_TOKEN = secrets.token_hex(16)  # the platform's token is wrong
    with pytest.raises(ProviderError) as refused:
        twilio_accounts.twilio_for(organization)
    assert refused.value.status == 401 and "credentials were refused" in refused.value.message
    assert not TwilioSubaccount.objects.for_org(organization).exists()
