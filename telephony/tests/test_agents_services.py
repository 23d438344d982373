"""Agents' services: every refusal of agent_clean explained by setting, audited writes, guarded deletion."""

from __future__ import annotations

import pytest

from accounts.principals import Principal
from accounts.tests.factories import MembershipFactory, OrganizationFactory
from compliance.models import AuditEvent
from jagcall.kernel.errors import PermissionDenied
from telephony.models import Agent, PhoneNumber
from telephony.services.agents import (
    LLM_MODELS,
    AgentInvalid,
    agent_clean,
    agent_create,
    agent_delete,
    agent_update,
)
from telephony.tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

VALID = {"name": "Front desk", "system_prompt": "You answer the phone for Acme Dental."}


def _errors(organization, data, agent=None, catalog=None) -> dict:
    with pytest.raises(AgentInvalid) as caught:
        agent_clean(organization=organization, data=data, agent=agent, catalog=catalog)
    return caught.value.errors


def _events(action):
    return AuditEvent.objects.unscoped("test: inspects rows directly").filter(action=action)


# --- validation: one refusal per rule, each keyed by its setting ----------------------------------------

REFUSALS = [
    ({"name": ""}, "name", "is required"),
    ({"name": "x" * 121}, "name", "keep it to 120"),
    ({"system_prompt": ""}, "system_prompt", "is required"),
    ({"system_prompt": "x" * 20_001}, "system_prompt", "keep it to 20,000"),
    ({"system_prompt": "nul\x00"}, "system_prompt", "NUL"),
    ({"first_message": 12}, "first_message", "must be text"),
    ({"llm_provider": "mistral"}, "llm_provider", "openai, anthropic"),
    ({"llm_model": "gpt-2"}, "llm_model", "gpt-4o-mini"),
    ({"llm_provider": "anthropic"}, "llm_model", "claude-sonnet-4-5"),  # gpt-4o-mini (the default) is not Anthropic's
    ({"temperature": 2.5}, "temperature", "between 0 and 2"),
    ({"temperature": -0.1}, "temperature", "between 0 and 2"),
    ({"llm_provider": "anthropic", "llm_model": "claude-sonnet-4-5", "temperature": 1.5},
     "temperature", "between 0 and 1"),
    ({"temperature": "hot"}, "temperature", "must be a number"),
    ({"stt_language": "tlh"}, "stt_language", "en-US"),
    ({"stt_model": "whisper"}, "stt_model", "nova-3"),
    ({"tools": "transfer"}, "tools", "list of objects"),
    ({"tools": [{"type": "teleport"}]}, "tools", "type must be one of"),
    ({"tools": [{"type": "transfer"}]}, "tools", "either a phone number"),
    ({"tools": [{"type": "transfer", "number": "+14155550100", "user_id": "x"}]}, "tools", "not both"),
    ({"tools": [{"type": "transfer", "number": "555-0100"}]}, "tools", "international format"),
    ({"tools": [{"type": "transfer", "user_id": "not-a-uuid"}]}, "tools", "not a member"),
    ({"tools": [{"type": "end_call", "number": "+14155550100"}]}, "tools", "number is not a setting"),
    ({"tools": [{"type": "end_call"}, {"type": "end_call"}]}, "tools", "Tool 2 (end_call) repeats tool 1"),
    ({"tools": [{"type": "transfer", "number": "+1 415 555 0100"}, {"type": "transfer", "number": "+14155550100"}]},
     "tools", "repeats tool 1"),
    ({"ai_disclosure": ""}, "ai_disclosure", "AI disclosure is on"),
    ({"recording_disclosure": "  "}, "recording_disclosure", "recording disclosure is on"),
    ({"ai_disclosure_enabled": "yes"}, "ai_disclosure_enabled", "true or false"),
    ({"max_call_seconds": 29}, "max_call_seconds", "between 30 seconds and 4 hours"),
    ({"max_call_seconds": 14_401}, "max_call_seconds", "between 30 seconds and 4 hours"),
    ({"max_call_seconds": 60.5}, "max_call_seconds", "whole number"),
    ({"voicemail_action": "sing"}, "voicemail_action", "hang_up, leave_message"),
    ({"voicemail_action": "leave_message"}, "voicemail_message", "needs the message"),
    ({"analysis_schema": {"name": "x"}}, "analysis_schema", "list of objects"),
    ({"analysis_schema": [{"name": "Appointment Requested", "type": "boolean"}]}, "analysis_schema", "snake_case"),
    ({"analysis_schema": [{"name": "summary", "type": "string"}]}, "analysis_schema", "always part of the analysis"),
    ({"analysis_schema": [{"name": "a", "type": "boolean"}, {"name": "a", "type": "string"}]},
     "analysis_schema", "unique"),
    ({"analysis_schema": [{"name": "mood", "type": "feeling"}]}, "analysis_schema", "boolean, string, number"),
    ({"analysis_schema": [{"name": "kind", "type": "enum"}]}, "analysis_schema", "needs its options"),
    ({"analysis_schema": [{"name": "kind", "type": "enum", "options": ["a", "a"]}]}, "analysis_schema", "repeat"),
    ({"analysis_schema": [{"name": "ok", "type": "boolean", "options": ["y"]}]}, "analysis_schema", "only enum fields"),
    ({"analysis_schema": [{"name": "ok", "type": "boolean", "color": "red"}]},
     "analysis_schema", "color is not a setting"),
    ({"analysis_schema": [{"name": f"f{i}", "type": "string"} for i in range(21)]}, "analysis_schema", "at most 20"),
    ({"colour": "blue"}, "colour", "no such setting"),
]  # fmt: skip


@pytest.mark.parametrize("data,field,words", REFUSALS, ids=[f"{r[1]}-{i}" for i, r in enumerate(REFUSALS)])
def test_each_rule_refuses_with_its_setting_and_what_to_do(organization, data, field, words):
    errors = _errors(organization, {**VALID, **data})
    assert field in errors, errors
    assert any(words in message for message in errors[field]), errors[field]


def test_every_problem_is_reported_at_once(organization):
    errors = _errors(organization, {"name": "", "system_prompt": "", "temperature": 9, "max_call_seconds": 1})
    assert set(errors) == {"name", "system_prompt", "temperature", "max_call_seconds"}


def test_name_is_unique_in_its_organization_only(organization, other_organization):
    AgentFactory(organization=organization, name="Front desk")
    assert "already called" in _errors(organization, {**VALID, "name": "front DESK"})["name"][0]
    assert agent_clean(organization=other_organization, data=VALID)["name"] == "Front desk"


def test_transfer_to_a_member_of_this_organization_only(organization, other_organization, member):
    stranger = MembershipFactory(organization=other_organization).user
    errors = _errors(organization, {**VALID, "tools": [{"type": "transfer", "user_id": str(stranger.id)}]})
    assert "not a member of this organization" in errors["tools"][0]
    cleaned = agent_clean(
        organization=organization,
        data={
            **VALID,
            "tools": [
                {"type": "transfer", "user_id": str(member.id)},
                {"type": "transfer", "number": "+44 20 7946 0958"},
            ],
        },
    )
    assert cleaned["tools"] == [
        {"type": "transfer", "user_id": str(member.id)},
        {"type": "transfer", "number": "+442079460958"},
    ]


def test_valid_settings_come_back_cleaned_with_defaults(organization):
    cleaned = agent_clean(
        organization=organization,
        data={
            **VALID,
            "name": "  Front desk  ",
            "llm_provider": "anthropic",
            "llm_model": "claude-sonnet-4-5",
            "temperature": 1,
            "voicemail_action": "leave_message",
            "voicemail_message": "Please call us back.",
            "analysis_schema": [
                {"name": "appointment_requested", "type": "boolean", "description": "Did they ask for one?"},
                {"name": "patient_kind", "type": "enum", "options": [" new ", "existing"]},
            ],
        },
    )
    assert cleaned["name"] == "Front desk"
    assert cleaned["ai_disclosure_enabled"] and cleaned["recording_disclosure_enabled"]
    assert cleaned["ai_disclosure"] and cleaned["recording_disclosure"]
    assert cleaned["analysis_schema"][1] == {
        "name": "patient_kind",
        "type": "enum",
        "description": "",
        "options": ["new", "existing"],
    }
    assert cleaned["temperature"] == 1.0 and cleaned["max_call_seconds"] == 600


def test_models_are_listed_once_per_provider():
    assert "gpt-4o-mini" in LLM_MODELS["openai"] and "claude-sonnet-4-5" in LLM_MODELS["anthropic"]
    assert not set(LLM_MODELS["openai"]) & set(LLM_MODELS["anthropic"])


# --- voices: checked against ElevenLabs' list ---------------------------------------------------------


def test_voice_is_checked_against_the_elevenlabs_list(organization, owner, elevenlabs_standin):
    agent = agent_create(organization=organization, actor=owner, data={**VALID, "voice_id": "21m00Tcm4TlvDq8ikWAM"})
    assert (agent.voice_id, agent.voice_name) == ("21m00Tcm4TlvDq8ikWAM", "Rachel")
    with pytest.raises(AgentInvalid) as caught:
        agent_update(organization=organization, actor=owner, agent=agent, data={"voice_id": "no-such-voice"})
    assert "not one of the voices your ElevenLabs account offers" in caught.value.errors["voice_id"][0]


def test_unreachable_voice_list_keeps_an_unchanged_voice_and_refuses_a_new_one(
    organization, owner, elevenlabs_standin, settings
):
    agent = agent_create(organization=organization, actor=owner, data={**VALID, "voice_id": "21m00Tcm4TlvDq8ikWAM"})
    from django.core.cache import cache

    cache.clear()
    elevenlabs_standin.stop()  # ElevenLabs cannot be reached from now on
    settings.PROVIDER_TIMEOUT_SECONDS = 1
    agent = agent_update(organization=organization, actor=owner, agent=agent, data={"name": "Renamed"})
    assert (agent.name, agent.voice_id, agent.voice_name) == ("Renamed", "21m00Tcm4TlvDq8ikWAM", "Rachel")
    with pytest.raises(AgentInvalid) as caught:
        agent_update(organization=organization, actor=owner, agent=agent, data={"voice_id": "pNInz6obpgDQGcFmaJgB"})
    message = caught.value.errors["voice_id"][0]
    assert "could not be checked" in message and "ElevenLabs voices could not be listed" in message
    agent.refresh_from_db()
    assert agent.voice_id == "21m00Tcm4TlvDq8ikWAM"


# --- writes ----------------------------------------------------------------------------------------------


def test_create_records_the_new_settings(organization, owner):
    agent = agent_create(organization=organization, actor=owner, data=VALID)
    event = _events("agent.created").get()
    assert event.organization_id == organization.id and event.resource_id == str(agent.id)
    assert event.changes["name"] == {"before": None, "after": "Front desk"}
    assert event.actor_id == owner.id


def test_update_records_only_what_changed(organization, owner):
    agent = agent_create(organization=organization, actor=owner, data=VALID)
    agent_update(
        organization=organization, actor=owner, agent=agent,
        data={"temperature": 0.2, "tools": [{"type": "end_call"}], "name": "Front desk"},
    )  # fmt: skip
    event = _events("agent.updated").get()
    assert set(event.changes) == {"temperature", "tools"}
    assert event.changes["temperature"] == {"before": 0.7, "after": 0.2}
    agent_update(organization=organization, actor=owner, agent=agent, data={"name": "Front desk"})
    assert _events("agent.updated").count() == 1  # nothing changed, nothing recorded


def test_refused_update_changes_nothing(organization, owner):
    agent = agent_create(organization=organization, actor=owner, data=VALID)
    with pytest.raises(AgentInvalid):
        agent_update(organization=organization, actor=owner, agent=agent, data={"name": "New", "temperature": 7})
    agent.refresh_from_db()
    assert agent.name == "Front desk" and not _events("agent.updated").exists()


def test_members_may_not_change_agents(organization, member):
    with pytest.raises(PermissionDenied):
        agent_create(organization=organization, actor=member, data=VALID)
    assert not Agent.objects.for_org(organization).exists()


def test_delete_refused_while_numbers_are_assigned(organization, owner):
    agent = agent_create(organization=organization, actor=owner, data=VALID)
    for number in ("+14155550111", "+14155550100"):
        PhoneNumber.objects.create(
            organization=organization, number=number, twilio_sid=f"PN{number[1:]:0>32}", account_sid="AC1", agent=agent
        )
    with pytest.raises(Exception) as caught:
        agent_delete(organization=organization, actor=owner, agent=agent)
    assert caught.value.status == 409 and caught.value.code == "agent_in_use"
    assert "+14155550100, +14155550111" in caught.value.message
    PhoneNumber.objects.for_org(organization).update(agent=None)
    agent_delete(organization=organization, actor=owner, agent=agent)
    assert not Agent.objects.for_org(organization).exists()
    event = _events("agent.deleted").get()
    assert event.resource_id == str(agent.id) and event.changes["name"] == {"before": "Front desk", "after": None}


def test_a_system_job_may_act(organization):
    agent = agent_create(organization=organization, actor=Principal.system("seed"), data=VALID)
    assert agent.pk and _events("agent.created").get().actor_type == "system"


def test_other_organizations_agents_are_not_reachable(organization, other_organization, owner):
    theirs = AgentFactory(organization=other_organization)
    with pytest.raises(Agent.DoesNotExist):
        agent_update(organization=organization, actor=owner, agent=theirs, data={"name": "Mine now"})
    OrganizationFactory()  # unrelated organizations change nothing either
    theirs.refresh_from_db()
    assert theirs.name.startswith("Receptionist")


def test_deleting_an_agent_keeps_its_past_calls(organization, owner):
    from telephony.models import Call, CallDirection

    agent = agent_create(organization=organization, actor=owner, data=VALID)
    call = Call.objects.create(
        organization=organization, direction=CallDirection.INBOUND, agent=agent,
        from_number="+14155550100", to_number="+14155550199",
    )  # fmt: skip
    agent_delete(organization=organization, actor=owner, agent=agent)
    call.refresh_from_db()
    assert call.agent_id is None


def test_voice_list_is_cached_per_key_owner_and_a_failure_for_a_minute(
    organization, other_organization, elevenlabs_standin
):
    from integrations.models import ProviderCredential
    from telephony.providers.voices import voice_catalog

    def asked():
        return len([r for r in elevenlabs_standin.requests if r.path == "/v1/voices"])

    assert voice_catalog(organization=organization).get("21m00Tcm4TlvDq8ikWAM").name == "Rachel"
    voice_catalog(organization=organization)
    voice_catalog(organization=other_organization)
    assert asked() == 1  # both use the platform's key: one list, cached
    # An organization with its own ElevenLabs key gets its own list (the stand-in refuses that key).
    from django.utils import timezone

    ProviderCredential.objects.create(
        organization=other_organization, provider="elevenlabs", values={"api_key": "sk_own_key"}, last4="_key",
        verified_at=timezone.now(),
    )  # fmt: skip
    own = voice_catalog(organization=other_organization)
    assert not own.available and "ElevenLabs voices could not be listed" in own.error and "sk_own_key" not in own.error
    assert asked() == 2
    assert not voice_catalog(organization=other_organization).available
    assert asked() == 2  # the failure is remembered, not asked again at once
    assert voice_catalog(organization=organization).available


@pytest.mark.parametrize("retries", [0, 1])
def test_a_server_error_listing_voices_is_retried_as_often_as_configured(retries, organization, settings,
                                                                         elevenlabs_standin):  # fmt: skip
    from telephony.providers.voices import voice_catalog

    settings.PROVIDER_MAX_RETRIES = retries
    elevenlabs_standin.fail_next(503, "Service unavailable", path_prefix="/v1/voices", times=10)

    catalog = voice_catalog(organization=organization)

    assert not catalog.available and "try again" in catalog.error.lower()
    assert len(elevenlabs_standin.requests_to("/v1/voices", "GET")) == 1 + retries
