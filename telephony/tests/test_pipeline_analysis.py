"""The analysis step's validation: the model's answer is checked against the agent's schema, whatever it promises.

Run in-process (the service, not the task) against the LLM stand-ins with scripted answers.
"""

from __future__ import annotations

import pytest

from accounts.tests.factories import OrganizationFactory
from telephony.models import Call, CallAnalysis, CallDirection, StepStatus, Transcript
from telephony.services.analysis import analysis_create, analysis_json_schema, analysis_validate
from telephony.tests.factories import AgentFactory

pytestmark = pytest.mark.django_db

SCHEMA = [
    {"name": "appointment_requested", "type": "boolean"},
    {"name": "sentiment", "type": "enum", "options": ["positive", "neutral", "negative"]},
    {"name": "party_size", "type": "integer"},
]
UTTERANCES = [
    {"speaker": 0, "start": 0.0, "end": 2.0, "text": "Bright Smile Dental, how can I help?"},
    {"speaker": 1, "start": 2.5, "end": 5.0, "text": "I'd like a cleaning for two people on Thursday."},
]


def transcribed_call(*, provider="openai", model="gpt-4o-mini", utterances=UTTERANCES):
    organization = OrganizationFactory()
    agent = AgentFactory(organization=organization, analysis_schema=SCHEMA, llm_provider=provider, llm_model=model)
    call = Call.objects.create(
        organization=organization, direction=CallDirection.INBOUND, agent=agent,
        from_number="+14155550100", to_number="+14155550199",
    )  # fmt: skip
    Transcript.objects.create(
        organization=organization, call=call, status=StepStatus.DONE, utterances=utterances,
        text=" ".join(u["text"] for u in utterances) or None,
    )  # fmt: skip
    CallAnalysis.objects.create(organization=organization, call=call)
    return call


def test_the_schema_is_strict_every_field_required_and_nullable():
    schema = analysis_json_schema(SCHEMA)

    assert schema["additionalProperties"] is False
    assert schema["required"] == ["summary", "appointment_requested", "sentiment", "party_size"]
    assert schema["properties"]["sentiment"] == {"type": ["string", "null"], "enum": ["positive", "neutral", "negative", None]}
    assert schema["properties"]["party_size"]["type"] == ["integer", "null"]


def test_validation_names_each_wrong_field():
    summary, values, errors = analysis_validate(
        SCHEMA, {"summary": " A call. ", "appointment_requested": "yes", "sentiment": "angry", "party_size": 2.0}
    )

    assert summary == "A call."
    assert values == {"party_size": 2}
    assert errors["appointment_requested"] == "expected true or false, got str"
    assert "'angry' is not one of positive, neutral, negative" in errors["sentiment"]
    assert analysis_validate(SCHEMA, {"summary": "x"})[2] == {name["name"]: "the model did not give this field" for name in SCHEMA}
    assert analysis_validate(SCHEMA, {"summary": "x", "appointment_requested": None, "sentiment": None, "party_size": None})[2] == {}
    assert analysis_validate(SCHEMA, {"summary": 3})[0] is None
    assert "expected a whole number" in analysis_validate(SCHEMA, {"party_size": True})[2]["party_size"]


def test_an_invalid_answer_is_asked_once_more_then_what_validates_is_kept(openai_standin):
    call = transcribed_call()
    openai_standin.structured_replies = [
        {"summary": "Booked a cleaning.", "appointment_requested": True, "sentiment": "thrilled"},  # party_size missing
        {"summary": "Second answer.", "appointment_requested": "yes", "sentiment": "furious", "party_size": 2},
    ]

    analysis = analysis_create(call=call)

    assert len(openai_standin.completions) == 2  # asked once more, not more
    assert "previous answer was invalid" in openai_standin.completions[1]["messages"][0]["content"]
    assert analysis.status == StepStatus.DONE
    assert analysis.summary == "Booked a cleaning."
    fields = analysis.fields
    assert fields["appointment_requested"] == {"value": True, "valid": True, "reason": ""}
    assert fields["party_size"] == {"value": 2, "valid": True, "reason": ""}
    assert fields["sentiment"]["valid"] is False and fields["sentiment"]["value"] is None
    assert "'furious' is not one of" in fields["sentiment"]["reason"]


def test_a_valid_answer_is_asked_once(openai_standin):
    call = transcribed_call()
    openai_standin.structured_replies = [
        {"summary": "Booked.", "appointment_requested": True, "sentiment": "positive", "party_size": None},
    ]

    analysis = analysis_create(call=call)

    assert len(openai_standin.completions) == 1
    assert analysis.fields["party_size"] == {"value": None, "valid": True, "reason": ""}


def test_anthropic_answers_are_validated_the_same_way(anthropic_standin):
    call = transcribed_call(provider="anthropic", model="claude-haiku-4-5")
    anthropic_standin.structured_replies = [
        {"summary": "Booked.", "appointment_requested": 1, "sentiment": "positive", "party_size": 2},
        {"summary": "Booked.", "appointment_requested": False, "sentiment": "positive", "party_size": 2},
    ]

    analysis = analysis_create(call=call)

    assert len(anthropic_standin.messages) == 2
    assert analysis.fields["appointment_requested"] == {"value": False, "valid": True, "reason": ""}
    assert analysis.provider == "anthropic"


def test_no_summary_twice_fails_the_step_with_a_reason(openai_standin):
    from jagcall.kernel.errors import ApplicationError

    call = transcribed_call()
    openai_standin.structured_replies = [{"summary": ""}, {"summary": "   "}]

    with pytest.raises(ApplicationError, match="no summary"):
        analysis_create(call=call)


def test_a_call_without_speech_is_summarized_without_asking_a_model(openai_standin):
    call = transcribed_call(utterances=[])

    analysis = analysis_create(call=call)

    assert openai_standin.completions == []
    assert analysis.summary == "No speech was recognized in this call's recording."
    assert all(field["value"] is None and field["valid"] for field in analysis.fields.values())


def test_the_organizations_own_key_is_used(openai_standin):
    from integrations.models import ProviderCredential
    from django.utils import timezone

    call = transcribed_call()
    own_key = openai_standin.api_key
    openai_standin.api_key = "sk-the-organizations-own-key"
    ProviderCredential.objects.create(
        organization=call.organization, provider="openai", values={"api_key": "sk-the-organizations-own-key"},
        last4="-key", verified_at=timezone.now(),
    )  # fmt: skip

    analysis = analysis_create(call=call)

    assert analysis.status == StepStatus.DONE
    assert openai_standin.requests_to("/v1/chat/completions")[0].header("authorization") == "Bearer sk-the-organizations-own-key"
    assert own_key != openai_standin.api_key
