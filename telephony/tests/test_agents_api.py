"""Agents over the API: CRUD, scopes, one organization only, field-keyed refusals, audited diffs."""

from __future__ import annotations

import uuid

import pytest

from accounts.api_keys.services import api_key_create
from compliance.models import AuditEvent
from telephony.models import Agent, PhoneNumber
from telephony.tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

AGENTS = "/api/v1/agents"
BODY = {
    "name": "Front desk",
    "system_prompt": "You answer the phone for Acme Dental.",
    "llm_provider": "anthropic",
    "llm_model": "claude-sonnet-4-5",
    "temperature": 0.4,
    "tools": [{"type": "end_call"}, {"type": "transfer", "number": "+14155550100", "description": "Billing"}],
    "analysis_schema": [
        {"name": "appointment_requested", "type": "boolean", "description": "Did the caller ask for an appointment?"},
        {"name": "patient_kind", "type": "enum", "options": ["new", "existing"]},
    ],
}


def client_with(api_client, organization, owner, *scopes):
    _key, raw = api_key_create(organization=organization, actor=owner, name="Agents", scopes=list(scopes))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api_client


def _events(action):
    return AuditEvent.objects.unscoped("test: inspects rows directly").filter(action=action)


def test_create_list_get_patch_delete(api_client, organization, owner):
    client = client_with(api_client, organization, owner, "agents:read", "agents:write")
    created = client.post(AGENTS, BODY, format="json")
    assert created.status_code == 201, created.json()
    agent = created.json()
    assert agent["name"] == "Front desk" and agent["llm_model"] == "claude-sonnet-4-5"
    assert agent["ai_disclosure_enabled"] is True and agent["ai_disclosure"]
    assert agent["tools"][1] == {"type": "transfer", "number": "+14155550100", "description": "Billing"}
    assert agent["analysis_schema"][1]["options"] == ["new", "existing"]
    assert agent["phone_numbers"] == [] and agent["voice_id"] == ""

    listed = client.get(AGENTS).json()
    assert [a["id"] for a in listed["results"]] == [agent["id"]] and listed["next"] is None
    assert client.get(f"{AGENTS}/{agent['id']}").json()["system_prompt"] == BODY["system_prompt"]

    changed = client.patch(f"{AGENTS}/{agent['id']}", {"temperature": 0.9, "max_call_seconds": 900}, format="json")
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["temperature"], changed.json()["max_call_seconds"]) == (0.9, 900)
    assert changed.json()["name"] == "Front desk"  # untouched settings stay

    event = _events("agent.updated").get()
    assert event.changes == {
        "temperature": {"before": 0.4, "after": 0.9},
        "max_call_seconds": {"before": 600, "after": 900},
    }
    assert event.actor_type == "api_key" and event.resource_id == agent["id"]
    assert _events("agent.created").get().changes["llm_model"] == {"before": None, "after": "claude-sonnet-4-5"}

    assert client.delete(f"{AGENTS}/{agent['id']}").status_code == 204
    assert client.get(f"{AGENTS}/{agent['id']}").status_code == 404
    assert _events("agent.deleted").get().resource_id == agent["id"]


def test_refusals_list_every_setting_at_fault(api_client, organization, owner):
    client = client_with(api_client, organization, owner, "agents:write")
    body = {
        **BODY,
        "temperature": 1.5,  # too warm for Anthropic
        "tools": [{"type": "end_call"}, {"type": "end_call"}],
        "analysis_schema": [{"name": "summary", "type": "string"}],
        "ai_disclosure": "",
    }
    response = client.post(AGENTS, body, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["details"]) == {"temperature", "tools", "analysis_schema", "ai_disclosure"}
    assert "between 0 and 1" in error["details"]["temperature"][0]
    assert error["message"].startswith("Check these fields:")
    assert not Agent.objects.for_org(organization).exists()


def test_wrong_types_are_refused_by_field(api_client, organization, owner):
    client = client_with(api_client, organization, owner, "agents:write")
    response = client.post(
        AGENTS, {"name": "X", "system_prompt": "p", "temperature": "warm", "tools": "x"}, format="json"
    )
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"temperature", "tools"}


def test_patch_refusal_changes_nothing(api_client, organization, owner):
    client = client_with(api_client, organization, owner, "agents:read", "agents:write")
    agent = AgentFactory(organization=organization, name="Desk")
    AgentFactory(organization=organization, name="Night line")
    response = client.patch(f"{AGENTS}/{agent.id}", {"name": "night LINE", "max_call_seconds": 5}, format="json")
    assert response.status_code == 400
    assert set(response.json()["error"]["details"]) == {"name", "max_call_seconds"}
    agent.refresh_from_db()
    assert agent.name == "Desk" and not _events("agent.updated").exists()


def test_scopes(api_client, organization, owner):
    agent = AgentFactory(organization=organization)
    reader = client_with(api_client, organization, owner, "agents:read")
    assert reader.get(AGENTS).status_code == 200
    refused = reader.post(AGENTS, BODY, format="json")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "missing_scope"
    assert reader.patch(f"{AGENTS}/{agent.id}", {"name": "X"}, format="json").status_code == 403
    assert reader.delete(f"{AGENTS}/{agent.id}").status_code == 403
    writer = client_with(api_client, organization, owner, "agents:write")
    assert writer.get(AGENTS).status_code == 403
    assert Agent.objects.for_org(organization).count() == 1


def test_a_members_credential_may_read_but_not_write(api_client, organization, member):
    from accounts.jwt.tokens import OrganizationRefreshToken

    token = OrganizationRefreshToken.for_membership(user=member, organization=organization).access_token
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    agent = AgentFactory(organization=organization)
    assert api_client.get(f"{AGENTS}/{agent.id}").status_code == 200
    assert api_client.post(AGENTS, BODY, format="json").status_code == 403
    assert api_client.delete(f"{AGENTS}/{agent.id}").status_code == 403


def test_other_organizations_agents_are_404(api_client, organization, owner, other_organization):
    theirs = AgentFactory(organization=other_organization, name="Theirs")
    client = client_with(api_client, organization, owner, "agents:read", "agents:write")
    assert client.get(AGENTS).json()["results"] == []
    for method in ("get", "patch", "delete"):
        response = getattr(client, method)(f"{AGENTS}/{theirs.id}", {"name": "Mine"}, format="json")
        assert response.status_code == 404, method
        assert response.json()["error"]["code"] == "not_found"
    assert client.get(f"{AGENTS}/{uuid.uuid4()}").status_code == 404
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"


def test_delete_refused_while_it_answers_numbers(api_client, organization, owner):
    client = client_with(api_client, organization, owner, "agents:read", "agents:write")
    agent = AgentFactory(organization=organization)
    PhoneNumber.objects.create(
        organization=organization, number="+14155550123", twilio_sid="PN" + "1" * 32, account_sid="AC1", agent=agent
    )
    assert client.get(f"{AGENTS}/{agent.id}").json()["phone_numbers"] == ["+14155550123"]
    response = client.delete(f"{AGENTS}/{agent.id}")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "agent_in_use" and "+14155550123" in response.json()["error"]["message"]
    assert Agent.objects.for_org(organization).filter(id=agent.id).exists()


def test_voice_is_checked_against_elevenlabs(api_client, organization, owner, elevenlabs_standin):
    client = client_with(api_client, organization, owner, "agents:write")
    refused = client.post(AGENTS, {**BODY, "voice_id": "nobody"}, format="json")
    assert refused.status_code == 400 and "voice_id" in refused.json()["error"]["details"]
    created = client.post(AGENTS, {**BODY, "voice_id": "JBFqnCBsd6RMkjVDRZzb"}, format="json")
    assert created.status_code == 201 and created.json()["voice_name"] == "George"
    assert len([r for r in elevenlabs_standin.requests if r.path == "/v1/voices"]) == 1  # the second ask was cached


def test_post_is_idempotent_with_a_key(api_client, organization, owner):
    client = client_with(api_client, organization, owner, "agents:write")
    first = client.post(AGENTS, BODY, format="json", HTTP_IDEMPOTENCY_KEY="create-front-desk")
    again = client.post(AGENTS, BODY, format="json", HTTP_IDEMPOTENCY_KEY="create-front-desk")
    assert first.status_code == again.status_code == 201 and first.json()["id"] == again.json()["id"]
    assert again["Idempotent-Replayed"] == "true"
    assert Agent.objects.for_org(organization).count() == 1


ODD_VALUES = [None, True, 0, -1, 10**20, 1.5e308, "", "\x00", "x" * 100_000, [], [None], [[]], [{}], {}, {"a": []}]


@pytest.mark.parametrize("field", ["tools", "analysis_schema"])
def test_odd_shapes_inside_lists_are_refused_never_a_server_error(api_client, organization, owner, field, settings):
    settings.API_RATE_LIMIT_WRITES = 1000  # a hundred requests in a few seconds, on purpose
    client = client_with(api_client, organization, owner, "agents:write")
    keys = ("type", "name", "number", "user_id", "description", "options")
    for key in keys:
        for odd in ODD_VALUES:
            item = dict(BODY[field][-1], **{key: odd})
            response = client.post(AGENTS, dict(BODY, **{field: [item]}), format="json")
            assert response.status_code in (201, 400), (field, key, odd, response.status_code)
    assert response.status_code == 400 and Agent.objects.for_org(organization).count() <= len(keys) * len(ODD_VALUES)


@pytest.mark.parametrize("odd", ODD_VALUES, ids=range(len(ODD_VALUES)))
def test_odd_values_of_every_setting_are_refused_never_a_server_error(api_client, organization, owner, odd, settings):
    settings.API_RATE_LIMIT_WRITES = 1000
    from telephony.services.agents import EDITABLE_FIELDS

    client = client_with(api_client, organization, owner, "agents:write")
    agent_id = client.post(AGENTS, BODY, format="json").json()["id"]
    for field in EDITABLE_FIELDS:
        response = client.patch(f"{AGENTS}/{agent_id}", {field: odd}, format="json")
        assert response.status_code in (200, 400), (field, odd, response.status_code)
