"""The do-not-call list: add and remove from the portal and the API, audited, encrypted, per organization."""

from __future__ import annotations

import pytest
from django.db import connection
from django.urls import reverse
from rest_framework.test import APIClient

from accounts.api_keys.services import api_key_create
from accounts.principals import Principal
from compliance.models import AuditEvent, DoNotCallEntry
from compliance.selectors import do_not_call_lookup
from compliance.services import do_not_call_add, do_not_call_remove
from compliance.tests.conftest import OPERATOR, jwt_for
from jagcall.kernel.errors import ApplicationError, PermissionDenied

pytestmark = pytest.mark.django_db

NUMBER = "+14155550123"


def _events(organization, action):
    return list(AuditEvent.objects.for_org(organization).filter(action=action))


def _key(organization, scopes, role="owner"):
    _key, raw = api_key_create(
        organization=organization, actor=OPERATOR, service_role=role, name="CRM", scopes=list(scopes)
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


# --- the service ------------------------------------------------------------------------


def test_any_way_of_writing_a_number_finds_one_entry(organization, member):
    entry = do_not_call_add(organization=organization, actor=member, number="+1 (415) 555-0123", reason="complaint")
    assert entry.number == NUMBER and entry.added_by == "member@acme.test"
    assert do_not_call_lookup(organization=organization, number="+14155550123") == entry
    assert do_not_call_lookup(organization=organization, number="+1 415 555 0123") == entry
    assert do_not_call_lookup(organization=organization, number="+14155550199") is None
    with pytest.raises(ApplicationError) as refused:
        do_not_call_add(organization=organization, actor=member, number="+1 415-555-0123")
    assert refused.value.code == "already_listed" and refused.value.status == 409
    assert DoNotCallEntry.objects.for_org(organization).count() == 1


def test_the_list_is_per_organization(organization, other_organization, owner):
    do_not_call_add(organization=organization, actor=owner, number=NUMBER)
    assert do_not_call_lookup(organization=other_organization, number=NUMBER) is None


@pytest.mark.parametrize("number", ["", "4155550123", "+1415", "call me maybe", "+999123456789"])
def test_an_invalid_number_is_refused_with_what_to_do(organization, owner, number):
    with pytest.raises(ApplicationError) as refused:
        do_not_call_add(organization=organization, actor=owner, number=number)
    assert refused.value.code == "invalid_number" and refused.value.field == "number"
    assert "+14155550100" in refused.value.message
    assert not DoNotCallEntry.objects.for_org(organization).exists()


def test_only_owners_and_admins_take_a_number_off(organization, member, admin_user):
    entry = do_not_call_add(organization=organization, actor=member, number=NUMBER)
    with pytest.raises(PermissionDenied):
        do_not_call_remove(organization=organization, actor=member, entry=entry)
    assert DoNotCallEntry.objects.for_org(organization).count() == 1
    do_not_call_remove(organization=organization, actor=admin_user, entry=entry)
    assert not DoNotCallEntry.objects.for_org(organization).exists()


def test_a_providers_webhook_may_add_a_number(organization):
    entry = do_not_call_add(
        organization=organization,
        actor=Principal.webhook("twilio", organization=organization),
        number=NUMBER,
        source="sms",
    )
    assert entry.added_by == "twilio webhook" and entry.source == "sms"


def test_adding_and_removing_are_audited_without_the_number(organization, owner):
    entry = do_not_call_add(organization=organization, actor=owner, number=NUMBER, reason="legal")
    do_not_call_remove(organization=organization, actor=owner, entry=entry)
    (added,) = _events(organization, "do_not_call.added")
    (removed,) = _events(organization, "do_not_call.removed")
    for event in (added, removed):
        assert event.actor_label == "owner@acme.test" and event.resource_id == str(entry.id)
        assert event.resource_type == "do_not_call_entry"
        assert NUMBER not in str(event.metadata) and "5550123" not in str(event.changes)
    assert added.changes["reason"] == {"before": None, "after": "legal"}
    assert removed.changes["reason"] == {"before": "legal", "after": None}


def test_the_number_is_not_stored_in_clear(organization, owner):
    entry = do_not_call_add(organization=organization, actor=owner, number=NUMBER)
    with connection.cursor() as cursor:
        cursor.execute("SELECT number::text, number_index FROM compliance_donotcallentry WHERE id = %s", [entry.id])
        stored, index = cursor.fetchone()
    for form in (NUMBER, "4155550123", "5550123"):
        assert form not in stored and form not in index
    assert stored.startswith("\\x")  # bytea: ciphertext


# --- the portal -------------------------------------------------------------------------


def test_a_member_adds_a_number_on_the_page(client, organization, member):
    client.force_login(member)
    url = reverse("compliance:do-not-call-list", kwargs={"org_slug": organization.slug})
    page = client.get(url)
    assert page.status_code == 200 and "The list is empty" in page.content.decode()
    response = client.post(url, {"number": "+1 415 555 0123", "reason": "requested"})
    assert response.status_code == 302 and response["Location"] == url
    page = client.get(url).content.decode()
    assert NUMBER in page and "member@acme.test" in page
    assert "Only owners and admins can take a number off the list." in page
    assert len(_events(organization, "do_not_call.added")) == 1


def test_the_page_says_what_is_wrong_with_a_number(client, organization, member):
    client.force_login(member)
    url = reverse("compliance:do-not-call-list", kwargs={"org_slug": organization.slug})
    response = client.post(url, {"number": "4155550123", "reason": "requested"})
    assert response.status_code == 400
    assert "international format" in response.content.decode()
    do_not_call_add(organization=organization, actor=member, number=NUMBER)
    response = client.post(url, {"number": NUMBER, "reason": "requested"})
    assert response.status_code == 400 and "already on the do-not-call list" in response.content.decode()
    assert DoNotCallEntry.objects.for_org(organization).count() == 1


def test_an_admin_removes_a_number_on_the_page(client, organization, admin_user):
    entry = do_not_call_add(organization=organization, actor=admin_user, number=NUMBER)
    client.force_login(admin_user)
    url = reverse("compliance:do-not-call-remove", kwargs={"org_slug": organization.slug, "do_not_call_id": entry.id})
    response = client.post(url)
    assert response.status_code == 302
    assert not DoNotCallEntry.objects.for_org(organization).exists()
    assert len(_events(organization, "do_not_call.removed")) == 1


def test_another_organizations_entry_is_a_404_on_the_page(client, organization, owner, other_organization, other_owner):
    theirs = do_not_call_add(organization=other_organization, actor=other_owner, number=NUMBER)
    client.force_login(owner)
    url = reverse("compliance:do-not-call-remove", kwargs={"org_slug": organization.slug, "do_not_call_id": theirs.id})
    assert client.post(url).status_code == 404
    assert DoNotCallEntry.objects.for_org(other_organization).count() == 1


# --- the API ----------------------------------------------------------------------------


def test_api_add_list_get_and_delete_with_audit(organization, owner):
    api = _key(organization, ["compliance:read", "compliance:write"])
    created = api.post("/api/v1/do-not-call", {"number": "+1 (415) 555-0123", "reason": "complaint"}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["number"] == NUMBER and body["reason"] == "complaint" and body["source"] == "api"
    assert body["added_by"].startswith("jc_live_")
    again = api.post("/api/v1/do-not-call", {"number": NUMBER}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_listed"
    listed = api.get("/api/v1/do-not-call")
    assert listed.status_code == 200 and [e["id"] for e in listed.json()["results"]] == [body["id"]]
    assert api.get(f"/api/v1/do-not-call/{body['id']}").json()["number"] == NUMBER
    assert api.delete(f"/api/v1/do-not-call/{body['id']}").status_code == 204
    assert api.get(f"/api/v1/do-not-call/{body['id']}").status_code == 404
    assert len(_events(organization, "do_not_call.added")) == 1
    assert len(_events(organization, "do_not_call.removed")) == 1


def test_api_bad_input_is_a_400_that_names_the_field(organization):
    api = _key(organization, ["compliance:write"])
    response = api.post("/api/v1/do-not-call", {"number": "0415 555 0123"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_number" and "number" in error["details"]
    response = api.post("/api/v1/do-not-call", {"number": NUMBER, "reason": "bored"}, format="json")
    assert response.status_code == 400 and "reason" in response.json()["error"]["details"]
    assert not DoNotCallEntry.objects.for_org(organization).exists()


def test_api_scopes(organization, owner):
    reader = _key(organization, ["compliance:read"])
    assert reader.get("/api/v1/do-not-call").status_code == 200
    refused = reader.post("/api/v1/do-not-call", {"number": NUMBER}, format="json")
    assert refused.status_code == 403 and "compliance:write" in refused.json()["error"]["message"]
    assert _key(organization, ["calls:read"]).get("/api/v1/do-not-call").status_code == 403
    assert not DoNotCallEntry.objects.for_org(organization).exists()


def test_api_a_members_credential_adds_but_does_not_remove(organization, member):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {jwt_for(member, organization)}")
    created = api.post("/api/v1/do-not-call", {"number": NUMBER}, format="json")
    assert created.status_code == 201
    refused = api.delete(f"/api/v1/do-not-call/{created.json()['id']}")
    assert refused.status_code == 403
    assert DoNotCallEntry.objects.for_org(organization).count() == 1


def test_api_another_organizations_entry_is_a_404(organization, other_organization, other_owner):
    theirs = do_not_call_add(organization=other_organization, actor=other_owner, number=NUMBER)
    api = _key(organization, ["compliance:read", "compliance:write"])
    assert api.get(f"/api/v1/do-not-call/{theirs.id}").status_code == 404
    assert api.delete(f"/api/v1/do-not-call/{theirs.id}").status_code == 404
    assert api.get("/api/v1/do-not-call").json()["results"] == []
    assert DoNotCallEntry.objects.for_org(other_organization).count() == 1
