"""/api/v1/numbers through the real twilio SDK against the stand-in: list, available, buy, assign, release, import."""

from __future__ import annotations

import pytest

from accounts.api_keys.services import api_key_create
from compliance.models import AuditEvent
from telephony.models import PhoneNumber
from telephony.services.urls import public_url
from telephony.tests.factories import AgentFactory, PhoneNumberFactory
from telephony.tests.test_twilio_accounts import connect_own_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def bearer(api_client, organization, owner):
    def make(*scopes):
        _key, raw = api_key_create(organization=organization, actor=owner, name="Numbers", scopes=list(scopes))
        api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
        return api_client

    return make


def test_available_buy_assign_release(bearer, organization, twilio_standin):
    client = bearer("numbers:read", "numbers:write")
    offers = client.get("/api/v1/numbers/available", {"country": "US", "area_code": "415"})
    assert offers.status_code == 200, offers.content
    phone_number = offers.json()["results"][0]["phone_number"]
    bought = client.post("/api/v1/numbers", {"phone_number": phone_number}, format="json")
    assert bought.status_code == 201, bought.content
    body = bought.json()
    assert body["number"] == phone_number and body["agent"] is None and body["source"] == "purchased"
    assert twilio_standin.numbers[body["twilio_sid"]].settings["VoiceUrl"] == public_url("twilio-hooks:voice")
    listed = client.get("/api/v1/numbers").json()
    assert [n["id"] for n in listed["results"]] == [body["id"]]
    agent = AgentFactory(organization=organization, name="Front desk")
    assigned = client.patch(f"/api/v1/numbers/{body['id']}", {"agent_id": str(agent.id)}, format="json")
    assert assigned.status_code == 200 and assigned.json()["agent"] == {"id": str(agent.id), "name": "Front desk"}
    unassigned = client.patch(f"/api/v1/numbers/{body['id']}", {"agent_id": None}, format="json")
    assert unassigned.json()["agent"] is None
    assert client.delete(f"/api/v1/numbers/{body['id']}").status_code == 204
    assert body["twilio_sid"] not in twilio_standin.numbers
    assert client.get(f"/api/v1/numbers/{body['id']}").status_code == 404
    actions = list(
        AuditEvent.objects.for_org(organization).filter(action__startswith="phone_number.")
        .order_by("occurred_at", "id").values_list("action", flat=True)
    )  # fmt: skip
    assert actions == ["phone_number.purchased", "phone_number.assigned", "phone_number.unassigned", "phone_number.released"]


def test_buy_by_area_code_and_refusals(bearer, organization, twilio_standin):
    client = bearer("numbers:write")
    assert client.post("/api/v1/numbers", {"country": "US", "area_code": "212"}, format="json").status_code == 201
    bad = client.post("/api/v1/numbers", {"phone_number": "12"}, format="json")
    assert bad.status_code == 400 and bad.json()["error"]["code"] == "invalid_number"
    nothing = client.post("/api/v1/numbers", {}, format="json")
    assert nothing.status_code == 400 and "phone_number" in nothing.json()["error"]["details"]
    twilio_standin.fail_next(400, "Phone number is not available", path_prefix="/2010-04-01/Accounts/")
    refused = client.post("/api/v1/numbers", {"phone_number": "+14155550100"}, format="json")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "provider_refused"
    assert "Nothing was changed" in refused.json()["error"]["message"]
    assert PhoneNumber.objects.for_org(organization).count() == 1
    bad_search = client.get("/api/v1/numbers/available", {"country": "U1"})
    assert bad_search.status_code == 400 and "country" in bad_search.json()["error"]["details"]


def test_import(bearer, organization, twilio_standin):
    client = bearer("numbers:write")
    refused = client.post("/api/v1/numbers/import", {"twilio_sid": "PN" + "a" * 32}, format="json")
    assert refused.status_code == 409 and refused.json()["error"]["code"] == "no_own_account"
    own_sid, own_token = connect_own_account(twilio_standin, organization)
    from jagcall.kernel.providers import twilio_client

    theirs = twilio_client(own_sid, own_token).api.v2010.accounts(own_sid).incoming_phone_numbers.create(area_code="617")
    imported = client.post("/api/v1/numbers/import", {"twilio_sid": theirs.sid}, format="json")
    assert imported.status_code == 201 and imported.json()["source"] == "imported"
    assert twilio_standin.numbers[theirs.sid].settings["StatusCallback"] == public_url("twilio-hooks:status")


def test_scopes(bearer, organization, twilio_standin):
    reader = bearer("numbers:read")
    PhoneNumberFactory(organization=organization)
    assert reader.get("/api/v1/numbers").status_code == 200
    assert reader.post("/api/v1/numbers", {"area_code": "415"}, format="json").status_code == 403
    assert reader.get("/api/v1/numbers/available").status_code == 403
    assert twilio_standin.requests == []


def test_other_organizations_numbers_and_agents_are_404(bearer, organization, other_organization, twilio_standin):
    client = bearer("numbers:read", "numbers:write")
    theirs = PhoneNumberFactory(organization=other_organization)
    ours = PhoneNumberFactory(organization=organization)
    assert client.get(f"/api/v1/numbers/{theirs.id}").status_code == 404
    assert client.patch(f"/api/v1/numbers/{theirs.id}", {"agent_id": None}, format="json").status_code == 404
    assert client.delete(f"/api/v1/numbers/{theirs.id}").status_code == 404
    their_agent = AgentFactory(organization=other_organization)
    response = client.patch(f"/api/v1/numbers/{ours.id}", {"agent_id": str(their_agent.id)}, format="json")
    assert response.status_code == 404
    assert PhoneNumber.objects.for_org(organization).get(id=ours.id).agent is None
