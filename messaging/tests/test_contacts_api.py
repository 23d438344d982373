"""/api/v1/contacts: list (search, cursor), create (validation, 409, Idempotency-Key), read, change, delete;
scopes; another organization's contact is a 404."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.api_keys.services import api_key_create
from accounts.principals import Principal
from compliance.models import AuditEvent
from messaging.models import Contact
from messaging.services.contacts import contact_create

pytestmark = pytest.mark.django_db

OPERATOR = Principal.system("operator")
ADA = "+14155550101"
BOB = "+14155550102"


def api_for(organization, scopes=("contacts:read", "contacts:write")) -> APIClient:
    _key, raw = api_key_create(
        organization=organization, actor=OPERATOR, service_role="member", name="CRM", scopes=list(scopes)
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def api(organization):
    return api_for(organization)


def add(organization, phone=ADA, **data) -> Contact:
    return contact_create(organization=organization, actor=OPERATOR, data={"phone": phone, **data})


def error_of(response, status: int) -> dict:
    assert response.status_code == status, response.content
    return response.json()["error"]


def test_create_then_read_change_and_delete(api, organization):
    body = {"phone": "+1 (415) 555-0101", "name": "Ada", "time_zone": "America/Los_Angeles",
            "custom_fields": {"Plan": "Gold"}, "notes": "Prefers mornings"}  # fmt: skip
    response = api.post("/api/v1/contacts", body, format="json")
    assert response.status_code == 201, response.content
    created = response.json()
    assert created["phone"] == ADA and created["name"] == "Ada" and created["custom_fields"] == {"Plan": "Gold"}
    assert response["Location"] == f"/api/v1/contacts/{created['id']}"
    one = api.get(f"/api/v1/contacts/{created['id']}")
    assert one.status_code == 200 and one.json() == created
    patched = api.patch(f"/api/v1/contacts/{created['id']}", {"name": "Ada Lovelace"}, format="json")
    assert patched.status_code == 200 and patched.json()["name"] == "Ada Lovelace"
    assert patched.json()["notes"] == "Prefers mornings", "PATCH changes only what it is given"
    assert api.delete(f"/api/v1/contacts/{created['id']}").status_code == 204
    assert not Contact.objects.for_org(organization).exists()
    assert error_of(api.get(f"/api/v1/contacts/{created['id']}"), 404)["code"] == "not_found"
    recorded = list(
        AuditEvent.objects.for_org(organization).filter(action__startswith="contact.").order_by("seq")
        .values_list("action", "actor_type")
    )
    assert recorded == [("contact.created", "api_key"), ("contact.updated", "api_key"), ("contact.deleted", "api_key")]


def test_list_searches_and_pages_with_a_cursor(api, organization):
    for n in range(5):
        add(organization, f"+1212555{n:04d}", name=f"Person {n}")
    add(organization, ADA, name="Ada Lovelace")
    page = api.get("/api/v1/contacts", {"limit": 4}).json()
    assert len(page["results"]) == 4 and page["next"] and page["previous"] is None
    rest = api.get(page["next"]).json()
    assert len(rest["results"]) == 2 and rest["next"] is None
    assert {c["id"] for c in page["results"]} | {c["id"] for c in rest["results"]} == {
        str(pk) for pk in Contact.objects.for_org(organization).values_list("id", flat=True)
    }
    assert [c["name"] for c in api.get("/api/v1/contacts", {"q": "lovel"}).json()["results"]] == ["Ada Lovelace"]
    assert [c["phone"] for c in api.get("/api/v1/contacts", {"q": "+1 212 555 0003"}).json()["results"]] == ["+12125550003"]
    assert error_of(api.get("/api/v1/contacts", {"cursor": "not-a-cursor"}), 404)


@pytest.mark.parametrize(
    "body, field, code",
    [
        ({}, "phone", "invalid"),
        ({"phone": "4155550101"}, "phone", "invalid_number"),
        ({"phone": ADA, "time_zone": "Mars/Olympus"}, "time_zone", "invalid_time_zone"),
        ({"phone": ADA, "name": "x" * 121}, "name", "invalid"),
        ({"phone": ADA, "custom_fields": "Plan=Gold"}, "custom_fields", "invalid"),
        ({"phone": ADA, "custom_fields": {"Plan": "x" * 501}}, "custom_fields", "invalid"),
        ({"phone": ADA, "notes": "x" * 5001}, "notes", "invalid"),
    ],
)
def test_a_wrong_field_is_a_400_naming_it_and_nothing_is_written(api, organization, body, field, code):
    error = error_of(api.post("/api/v1/contacts", body, format="json"), 400)
    assert error["code"] == code and field in error["details"], error
    assert error["message"]
    assert not Contact.objects.for_org(organization).exists()


def test_a_number_already_a_contact_is_a_409(api, organization):
    existing = add(organization, ADA)
    error = error_of(api.post("/api/v1/contacts", {"phone": "+1 415 555 0101"}, format="json"), 409)
    assert error["code"] == "duplicate_contact" and "already one of your contacts" in error["message"]
    other = add(organization, BOB)
    error = error_of(api.patch(f"/api/v1/contacts/{other.id}", {"phone": ADA}, format="json"), 409)
    assert error["code"] == "duplicate_contact" and error["details"] == {"phone": [error["message"]]}
    assert Contact.objects.for_org(organization).get(pk=existing.pk).phone == ADA
    assert Contact.objects.for_org(organization).get(pk=other.pk).phone == BOB


def test_an_idempotent_post_creates_one_contact(api, organization):
    body = {"phone": ADA, "name": "Ada"}
    first = api.post("/api/v1/contacts", body, format="json", HTTP_IDEMPOTENCY_KEY="create-ada-1")
    again = api.post("/api/v1/contacts", body, format="json", HTTP_IDEMPOTENCY_KEY="create-ada-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert Contact.objects.for_org(organization).count() == 1
    other = api.post("/api/v1/contacts", {**body, "name": "Someone else"}, format="json", HTTP_IDEMPOTENCY_KEY="create-ada-1")
    assert error_of(other, 409)["code"] == "idempotency_key_reused"
    assert AuditEvent.objects.for_org(organization).filter(action="contact.created").count() == 1


def test_scopes(organization):
    reader = api_for(organization, scopes=("contacts:read",))
    contact = add(organization)
    assert reader.get("/api/v1/contacts").status_code == 200
    assert reader.get(f"/api/v1/contacts/{contact.id}").status_code == 200
    for response in (
        reader.post("/api/v1/contacts", {"phone": BOB}, format="json"),
        reader.patch(f"/api/v1/contacts/{contact.id}", {"name": "x"}, format="json"),
        reader.delete(f"/api/v1/contacts/{contact.id}"),
    ):
        error = error_of(response, 403)
        assert error["code"] == "missing_scope" and "contacts:write" in error["message"]
    writer_only = api_for(organization, scopes=("contacts:write",))
    assert error_of(writer_only.get("/api/v1/contacts"), 403)["code"] == "missing_scope"
    messages_only = api_for(organization, scopes=("messages:read",))
    assert error_of(messages_only.get(f"/api/v1/contacts/{contact.id}"), 403)["code"] == "missing_scope"
    assert Contact.objects.for_org(organization).get().name == ""
    assert APIClient().get("/api/v1/contacts").status_code == 401


def test_another_organizations_contact_is_a_404_and_never_listed(api, organization, other_organization):
    theirs = add(other_organization, ADA, name="Their Secret")
    assert error_of(api.get(f"/api/v1/contacts/{theirs.id}"), 404)["message"] == "No contact of your organization has this id."
    error_of(api.patch(f"/api/v1/contacts/{theirs.id}", {"name": "Mine now"}, format="json"), 404)
    error_of(api.delete(f"/api/v1/contacts/{theirs.id}"), 404)
    assert api.get("/api/v1/contacts").json()["results"] == []
    assert api.get("/api/v1/contacts", {"q": ADA}).json()["results"] == []
    created = api.post("/api/v1/contacts", {"phone": ADA}, format="json")
    assert created.status_code == 201, "the same number is a contact of each organization on its own"
    assert Contact.objects.for_org(other_organization).get().name == "Their Secret"
