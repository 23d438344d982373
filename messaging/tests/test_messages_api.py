"""/api/v1/messages: send a text (gate, idempotency, Twilio stand-in), list, one message; /api/v1/conversations."""

from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from accounts.api_keys.services import api_key_create
from accounts.principals import Principal
from messaging.models import Conversation, Message, SenderType
from messaging.tests.support import make_message, sms_line, text

pytestmark = pytest.mark.django_db

OPERATOR = Principal.system("operator")
TO = "+12129870188"


def api_for(organization, scopes=("messages:read", "messages:write")) -> APIClient:
    _key, raw = api_key_create(
        organization=organization, actor=OPERATOR, service_role="owner", name="CRM", scopes=list(scopes)
    )
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return client


@pytest.fixture
def number(twilio_standin, organization, settings, client):
    settings.PUBLIC_BASE_URL = "https://app.jagcall.test"
    twilio_standin.message_autodeliver = False
    return sms_line(organization, "+14155550123")


@pytest.fixture
def api(organization):
    return api_for(organization)


def sent_to_twilio(standin) -> list:
    return [m for m in standin.messages if m.direction == "outbound-api"]


def test_post_sends_a_text(api, organization, number, twilio_standin):
    response = api.post(
        "/api/v1/messages", {"to": TO, "from": number.number, "body": "Reminder: 10:00 tomorrow"}, format="json"
    )
    assert response.status_code == 201, response.content
    data = response.json()
    assert data["direction"] == "outbound" and data["status"] == "queued" and data["to_number"] == TO
    assert data["from_number"] == number.number and data["body"] == "Reminder: 10:00 tomorrow"
    assert data["segments"] == 1 and data["encoding"] == "GSM-7" and data["sender_type"] == SenderType.API_KEY
    assert data["sender"].startswith("jc_live_") and response["Location"] == f"/api/v1/messages/{data['id']}"
    assert [e["status"] for e in data["status_events"]] == ["queued"]
    assert len(sent_to_twilio(twilio_standin)) == 1


def test_post_by_number_id(api, number, twilio_standin):
    response = api.post("/api/v1/messages", {"to": TO, "from_number_id": str(number.id), "body": "Hi"}, format="json")
    assert response.status_code == 201


def test_idempotent_post_sends_one_text(api, organization, number, twilio_standin):
    body = {"to": TO, "from": number.number, "body": "Once only"}
    first = api.post("/api/v1/messages", body, format="json", HTTP_IDEMPOTENCY_KEY="sms-1")
    again = api.post("/api/v1/messages", body, format="json", HTTP_IDEMPOTENCY_KEY="sms-1")
    assert first.status_code == again.status_code == 201
    assert again["Idempotent-Replayed"] == "true" and again.json()["id"] == first.json()["id"]
    assert Message.objects.for_org(organization).count() == 1 and len(sent_to_twilio(twilio_standin)) == 1
    other = api.post("/api/v1/messages", {**body, "body": "Other"}, format="json", HTTP_IDEMPOTENCY_KEY="sms-1")
    assert other.status_code == 409 and other.json()["error"]["code"] == "idempotency_key_reused"


def _refused(api, body, code, field, status=422):
    response = api.post("/api/v1/messages", body, format="json")
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code, error
    assert field in error["details"], error
    return error


def test_refusals_name_the_rule_and_write_nothing(client, api, organization, number, twilio_standin):
    text(client, number, "STOP", sender=TO)
    before = Message.objects.for_org(organization).count()
    error = _refused(api, {"to": TO, "from": number.number, "body": "Hi"}, "opted_out", "to")
    assert "START" in error["message"]
    _refused(api, {"to": "555", "from": number.number, "body": "Hi"}, "invalid_number", "to")
    _refused(api, {"to": TO, "from": "+14155550999", "body": "Hi"}, "sender_number", "from")
    assert Message.objects.for_org(organization).count() == before
    assert sent_to_twilio(twilio_standin) == []


@pytest.mark.parametrize(
    "body, field",
    [
        ({"to": TO, "body": "Hi"}, "from"),
        ({"from": "+14155550123", "body": "Hi"}, "to"),
        ({"to": TO, "from": "+14155550123", "body": "x" * 1601}, "body"),
        ({"to": TO, "from": "+14155550123", "body": "Hi", "media_urls": "not a list"}, "media_urls"),
        ({"to": TO, "from": "+14155550123", "body": "Hi", "marketing": "maybe"}, "marketing"),
    ],
)
def test_malformed_bodies_are_a_clear_400(api, number, twilio_standin, body, field):
    response = api.post("/api/v1/messages", body, format="json")
    assert response.status_code == 400 and field in response.json()["error"]["details"], response.content
    assert sent_to_twilio(twilio_standin) == []


def test_an_empty_text_is_a_clear_400(api, number):
    response = api.post("/api/v1/messages", {"to": TO, "from": number.number, "body": "  "}, format="json")
    assert response.status_code == 400 and "Write a message" in response.json()["error"]["message"]


def test_scopes(organization, number):
    reader = api_for(organization, scopes=("messages:read",))
    refused = reader.post("/api/v1/messages", {"to": TO, "from": number.number, "body": "Hi"}, format="json")
    assert refused.status_code == 403
    assert reader.get("/api/v1/messages").status_code == 200
    writer_only = api_for(organization, scopes=("calls:read",))
    assert writer_only.get("/api/v1/messages").status_code == 403


def test_list_detail_and_conversations(client, api, organization, number, other_organization):
    text(client, number, "First", sender=TO)
    text(client, number, "Second", sender="+12129870199")
    make_message(other_organization, body="Not yours")
    listed = api.get("/api/v1/messages").json()
    assert [m["body"] for m in listed["results"]] == ["Second", "First"]
    one = listed["results"][1]
    detail = api.get(f"/api/v1/messages/{one['id']}")
    assert detail.status_code == 200 and detail.json()["from_number"] == TO
    theirs = Message.objects.for_org(other_organization).get()
    assert api.get(f"/api/v1/messages/{theirs.id}").status_code == 404
    conversations = api.get("/api/v1/conversations").json()["results"]
    assert len(conversations) == 2 and conversations[0]["contact_number"] == "+12129870199"
    assert conversations[0]["unread_count"] == 1
    found = api.get("/api/v1/conversations", {"q": TO}).json()["results"]
    assert [c["contact_number"] for c in found] == [TO]
    conversation = Conversation.objects.for_org(organization).get(contact__name="", id=found[0]["id"])
    only = api.get("/api/v1/messages", {"conversation_id": str(conversation.id)}).json()["results"]
    assert [m["body"] for m in only] == ["First"]
    assert api.get("/api/v1/messages", {"conversation_id": "nope"}).status_code == 400
