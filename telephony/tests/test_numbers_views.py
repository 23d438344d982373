"""The phone numbers page: empty state, search and buy, assign, release, import; managers only for changes."""

from __future__ import annotations

import pytest
from django.urls import reverse

from telephony.models import PhoneNumber
from telephony.tests.factories import AgentFactory, PhoneNumberFactory
from telephony.tests.test_twilio_accounts import connect_own_account

pytestmark = pytest.mark.django_db


def url(organization, name="telephony:number-list", **kwargs):
    return reverse(name, kwargs={"org_slug": organization.slug, **kwargs})


def test_empty_page_invites_to_buy_the_first_number(owner_client, organization):
    html = owner_client.get(url(organization)).content.decode()
    assert "Buy your first number" in html and 'name="area_code"' in html


def test_search_then_buy(owner_client, organization, twilio_standin):
    page = owner_client.get(url(organization), {"country": "US", "area_code": "415", "contains": ""})
    assert page.status_code == 200
    results = page.context["results"]
    assert results and 'aria-label="Buy ' in page.content.decode()
    response = owner_client.post(url(organization, "telephony:number-buy"), {"phone_number": results[0].phone_number}, follow=True)
    html = response.content.decode()
    assert f"{results[0].phone_number} is yours" in html
    assert PhoneNumber.objects.for_org(organization).get().number == results[0].phone_number


def test_bad_search_is_explained(owner_client, organization, twilio_standin):
    page = owner_client.get(url(organization), {"country": "USA"})
    assert page.status_code == 400
    assert "Ensure this value has at most 2 characters" in page.content.decode()


def test_buy_refused_by_twilio_shows_why(owner_client, organization, twilio_standin):
    PhoneNumberFactory(number="+14155550142")  # held by another organization
    response = owner_client.post(url(organization, "telephony:number-buy"), {"phone_number": "+14155550142"}, follow=True)
    assert "already in use on JagCall" in response.content.decode()
    assert not PhoneNumber.objects.for_org(organization).exists()


def test_assign_and_release(owner_client, organization, twilio_standin):
    owner_client.post(url(organization, "telephony:number-buy"), {"area_code": "415"})
    number = PhoneNumber.objects.for_org(organization).get()
    agent = AgentFactory(organization=organization, name="Front desk")
    response = owner_client.post(url(organization, "telephony:number-assign", number_id=number.id), {"agent": agent.id}, follow=True)
    assert "Front desk now answers" in response.content.decode()
    number.refresh_from_db()
    assert number.agent == agent
    response = owner_client.post(url(organization, "telephony:number-release", number_id=number.id), follow=True)
    assert "was released" in response.content.decode()
    number.refresh_from_db()
    assert number.released_at is not None and number.agent is None


def test_assign_another_organizations_agent_is_404(owner_client, organization, other_organization):
    number = PhoneNumberFactory(organization=organization)
    foreign = AgentFactory(organization=other_organization)
    response = owner_client.post(url(organization, "telephony:number-assign", number_id=number.id), {"agent": foreign.id})
    assert response.status_code == 404


def test_import_page(owner_client, organization, twilio_standin):
    page = owner_client.get(url(organization, "telephony:number-import"))
    assert page.status_code == 409 and "connect it under Settings" in page.content.decode()
    own_sid, own_token = connect_own_account(twilio_standin, organization)
    from jagcall.kernel.providers import twilio_client

    theirs = twilio_client(own_sid, own_token).api.v2010.accounts(own_sid).incoming_phone_numbers.create(area_code="206")
    assert "Import from your Twilio account" in owner_client.get(url(organization)).content.decode()
    page = owner_client.get(url(organization, "telephony:number-import"))
    assert theirs.phone_number in page.content.decode()
    response = owner_client.post(url(organization, "telephony:number-import"), {"twilio_sid": theirs.sid}, follow=True)
    assert "now rings on JagCall" in response.content.decode()
    assert PhoneNumber.objects.for_org(organization).get().twilio_sid == theirs.sid


def test_members_see_numbers_but_change_nothing(client, organization, member):
    number = PhoneNumberFactory(organization=organization)
    client.force_login(member)
    page = client.get(url(organization), {"country": "US"})
    assert page.status_code == 200 and number.number in page.content.decode()
    assert page.context["results"] is None
    assert "Buy another number" not in page.content.decode() and "/release/" not in page.content.decode()
    assert client.post(url(organization, "telephony:number-buy"), {"area_code": "415"}).status_code == 403
    assert client.post(url(organization, "telephony:number-release", number_id=number.id)).status_code == 403


def test_other_organizations_numbers_are_404(owner_client, organization, other_organization):
    theirs = PhoneNumberFactory(organization=other_organization)
    assert owner_client.post(url(organization, "telephony:number-release", number_id=theirs.id)).status_code == 404
    assert owner_client.post(url(organization, "telephony:number-assign", number_id=theirs.id), {"agent": ""}).status_code == 404


def test_back_office_lists_numbers_and_subaccounts(staff_client, organization, twilio_standin):
    from django.conf import settings

    from accounts.principals import Principal
    from telephony.services.numbers import number_buy

    number = number_buy(organization=organization, actor=Principal.system("test"), area_code="415")
    numbers = staff_client.get(f"/{settings.ADMIN_URL}telephony/phonenumber/")
    assert numbers.status_code == 200 and number.number in numbers.content.decode()
    subaccounts = staff_client.get(f"/{settings.ADMIN_URL}telephony/twiliosubaccount/")
    assert subaccounts.status_code == 200 and number.account_sid in subaccounts.content.decode()
    token = twilio_standin.accounts[number.account_sid].auth_token
    assert token not in subaccounts.content.decode()
