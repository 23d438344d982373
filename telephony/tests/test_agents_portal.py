"""Agents' portal pages: list (and its empty state), create, edit, delete; members see, managers change."""

from __future__ import annotations

import pytest
from django.urls import reverse

from compliance.models import AuditEvent
from telephony.models import Agent, PhoneNumber
from telephony.tests.factories import AgentFactory

pytestmark = pytest.mark.django_db


def url(name, organization, **kwargs):
    return reverse(f"telephony:{name}", kwargs={"org_slug": organization.slug, **kwargs})


FORM = {
    "name": "Front desk",
    "system_prompt": "You answer the phone for Acme Dental.",
    "first_message": "Hello, Acme Dental!",
    "llm_provider": "openai",
    "llm_model": "gpt-4o",
    "temperature": "0.5",
    "voice_id": "",
    "stt_language": "en-GB",
    "stt_model": "nova-3",
    "end_call": "on",
    "transfer_numbers": "+14155550100\n",
    "ai_disclosure_enabled": "on",
    "ai_disclosure": "You are speaking with an AI assistant.",
    "recording_disclosure_enabled": "on",
    "recording_disclosure": "This call is recorded.",
    "record_calls": "on",
    "max_call_seconds": "900",
    "voicemail_action": "hang_up",
    "voicemail_message": "",
    "analysis-0-name": "appointment_requested",
    "analysis-0-type": "boolean",
    "analysis-0-description": "Did the caller ask for an appointment?",
    "analysis-1-name": "patient_kind",
    "analysis-1-type": "enum",
    "analysis-1-options": "new, existing",
    "analysis-2-name": "",
    "analysis-2-type": "boolean",
}


def test_empty_list_says_what_an_agent_is(client, organization, owner, member):
    client.force_login(owner)
    page = client.get(url("agent-list", organization)).content.decode()
    assert "An agent is an AI that answers and places your calls" in page
    assert "Create your first agent" in page and url("agent-create", organization) in page
    client.force_login(member)
    page = client.get(url("agent-list", organization)).content.decode()
    assert "An agent is an AI" in page and "Create your first agent" not in page
    assert "Ask an owner or admin" in page


def test_owner_creates_an_agent_with_tools_and_analysis_fields(client, organization, owner):
    client.force_login(owner)
    assert client.get(url("agent-create", organization)).status_code == 200
    response = client.post(url("agent-create", organization), FORM)
    assert response.status_code == 302, response.content.decode()[:3000]
    agent = Agent.objects.for_org(organization).get()
    assert response["Location"] == url("agent-detail", organization, agent_id=agent.id)
    assert (agent.llm_model, agent.temperature, agent.stt_language, agent.max_call_seconds) == (
        "gpt-4o",
        0.5,
        "en-GB",
        900,
    )
    assert agent.tools == [{"type": "end_call"}, {"type": "transfer", "number": "+14155550100"}]
    assert agent.analysis_schema == [
        {"name": "appointment_requested", "type": "boolean", "description": "Did the caller ask for an appointment?"},
        {"name": "patient_kind", "type": "enum", "description": "", "options": ["new", "existing"]},
    ]
    page = client.get(response["Location"]).content.decode()
    assert "Agent “Front desk” created" in page and 'value="appointment_requested"' in page
    listed = client.get(url("agent-list", organization)).content.decode()
    assert "Front desk" in listed and "OpenAI · gpt-4o" in listed


def test_refusals_come_back_on_their_fields_and_sections(client, organization, owner):
    client.force_login(owner)
    AgentFactory(organization=organization, name="Front desk")
    form = {
        **FORM,
        "system_prompt": "",
        "ai_disclosure": "",
        "transfer_numbers": "555-0100",
        "analysis-1-name": "summary",
    }
    response = client.post(url("agent-create", organization), form)
    assert response.status_code == 400
    page = response.content.decode()
    assert "already called “Front desk”" in page
    assert "The system prompt is required." in page
    assert "The AI disclosure is on, so it needs the words" in page
    assert "Tools: Tool 2 (transfer)" in page
    assert "“summary” is always part of the analysis" in page
    assert 'value="summary"' in page  # what was typed stays in the editor
    assert Agent.objects.for_org(organization).count() == 1


def test_manager_edits_an_agent_and_the_change_is_audited(client, organization, admin_user):
    agent = AgentFactory(
        organization=organization,
        name="Desk",
        tools=[{"type": "transfer", "number": "+14155550100", "description": "Billing"}],
    )
    client.force_login(admin_user)
    page = client.get(url("agent-detail", organization, agent_id=agent.id)).content.decode()
    assert "Save changes" in page and "+14155550100" in page
    form = {**FORM, "name": "Desk", "temperature": "0.9"}
    response = client.post(url("agent-update", organization, agent_id=agent.id), form)
    assert response.status_code == 302
    agent.refresh_from_db()
    assert agent.temperature == 0.9
    # the transfer's description, which the page does not show, is kept
    assert {"type": "transfer", "number": "+14155550100", "description": "Billing"} in agent.tools
    event = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="agent.updated")
    assert event.changes["temperature"]["after"] == 0.9 and event.actor_id == admin_user.id


def test_members_see_settings_read_only_and_cannot_change_them(client, organization, member):
    agent = AgentFactory(
        organization=organization, name="Desk", analysis_schema=[{"name": "mood", "type": "string", "description": ""}]
    )
    client.force_login(member)
    page = client.get(url("agent-detail", organization, agent_id=agent.id)).content.decode()
    assert "Only owners and admins can change them" in page
    assert "Save changes" not in page and "Delete…" not in page and "Add a field" not in page
    assert 'value="mood"' in page and "disabled" in page
    assert (
        client.post(url("agent-update", organization, agent_id=agent.id), {**FORM, "name": "Mine"}).status_code == 403
    )
    assert client.get(url("agent-create", organization)).status_code == 403
    assert client.post(url("agent-delete", organization, agent_id=agent.id)).status_code == 403
    agent.refresh_from_db()
    assert agent.name == "Desk"


def test_delete_asks_first_and_refuses_while_numbers_are_assigned(client, organization, owner):
    agent = AgentFactory(organization=organization, name="Desk")
    number = PhoneNumber.objects.create(
        organization=organization, number="+14155550123", twilio_sid="PN" + "2" * 32, account_sid="AC1", agent=agent
    )
    client.force_login(owner)
    page = client.get(url("agent-delete", organization, agent_id=agent.id)).content.decode()
    assert "+14155550123" in page and "cannot be deleted" in page and "Delete the agent" not in page
    refused = client.post(url("agent-delete", organization, agent_id=agent.id))
    assert refused.status_code == 409 and "+14155550123" in refused.content.decode()
    number.agent = None
    number.save()
    page = client.get(url("agent-delete", organization, agent_id=agent.id)).content.decode()
    assert "Delete the agent" in page
    response = client.post(url("agent-delete", organization, agent_id=agent.id))
    assert response.status_code == 302 and response["Location"] == url("agent-list", organization)
    assert not Agent.objects.for_org(organization).exists()
    assert "Agent “Desk” deleted" in client.get(response["Location"]).content.decode()


def test_other_organizations_agents_are_404(client, organization, owner, other_organization):
    theirs = AgentFactory(organization=other_organization, name="Theirs")
    client.force_login(owner)
    for name, method in (
        ("agent-detail", "get"),
        ("agent-update", "post"),
        ("agent-delete", "get"),
        ("agent-delete", "post"),
    ):
        response = getattr(client, method)(url(name, organization, agent_id=theirs.id), FORM)
        assert response.status_code == 404, name
    assert "Theirs" not in client.get(url("agent-list", organization)).content.decode()
    theirs.refresh_from_db()
    assert theirs.name == "Theirs"


def test_editor_offers_the_elevenlabs_voices(client, organization, owner, elevenlabs_standin):
    client.force_login(owner)
    page = client.get(url("agent-create", organization)).content.decode()
    assert '<option value="21m00Tcm4TlvDq8ikWAM">Rachel — american, female, calm</option>' in page
    response = client.post(url("agent-create", organization), {**FORM, "voice_id": "JBFqnCBsd6RMkjVDRZzb"})
    assert response.status_code == 302
    assert Agent.objects.for_org(organization).get().voice_name == "George"


def test_editor_says_why_voices_cannot_be_listed(client, organization, owner, settings):
    settings.ELEVENLABS_API_KEY = ""
    settings.SIMULATED_PROVIDERS = False
    client.force_login(owner)
    page = client.get(url("agent-create", organization)).content.decode()
    assert "ElevenLabs voices could not be listed: no credentials are configured: set ELEVENLABS_API_KEY" in page
    assert "You can keep the current voice" in page


def test_back_office_shows_agents_read_only(staff_client, organization):
    from django.conf import settings

    agent = AgentFactory(organization=organization, name="Desk")
    listing = staff_client.get(f"/{settings.ADMIN_URL}telephony/agent/")
    assert listing.status_code == 200 and "Desk" in listing.content.decode()
    page = staff_client.get(f"/{settings.ADMIN_URL}telephony/agent/{agent.id}/change/")
    assert page.status_code == 200 and "friendly receptionist of a dental practice" in page.content.decode()
    assert 'name="_save"' not in page.content.decode()  # nothing to save: agents change through their service
    assert (
        staff_client.post(f"/{settings.ADMIN_URL}telephony/agent/{agent.id}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert Agent.objects.for_org(organization).filter(id=agent.id).exists()
