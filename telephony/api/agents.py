"""API: agents at /api/v1/agents (list, create) and /api/v1/agents/{agent_id} (read, change, delete).

Reading needs ``agents:read``; creating, changing and deleting ``agents:write``.
The settings are checked by ``telephony.services.agents.agent_clean``: a
refusal is a 400 listing every setting at fault in ``error.details``.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.api.base import OrganizationAPIView
from jagcall.kernel.api.pagination import CursorPagination
from telephony.models import Agent, LLMProvider, VoicemailAction
from telephony.selectors.agents import agent_get, agent_list
from telephony.services.agents import (
    ANALYSIS_TYPES,
    LLM_MODELS,
    MAX_ANALYSIS_FIELDS,
    MAX_CALL_SECONDS,
    MAX_KNOWLEDGE_BASES,
    MAX_TOOLS,
    MIN_CALL_SECONDS,
    STT_LANGUAGES,
    STT_MODELS,
    TOOL_TYPES,
    AgentInvalid,
    agent_create,
    agent_delete,
    agent_problems,
    agent_update,
)

_ALL_MODELS = [model for models in LLM_MODELS.values() for model in models]


class ToolSerializer(serializers.Serializer):
    """What the schema documents for one tool (the service checks it)."""

    type = serializers.ChoiceField(choices=list(TOOL_TYPES.items()))
    number = serializers.CharField(required=False, help_text="transfer: where to, in E.164 (e.g. +14155550100)")
    user_id = serializers.UUIDField(required=False, help_text="transfer: a member of the organization, in the browser")
    description = serializers.CharField(required=False, max_length=500, help_text="When the agent should use it")


class AnalysisFieldSerializer(serializers.Serializer):
    """What the schema documents for one post-call analysis field (the service checks it)."""

    name = serializers.RegexField(r"^[a-z][a-z0-9_]{0,63}$", help_text="snake_case, unique; not 'summary'")
    type = serializers.ChoiceField(choices=list(ANALYSIS_TYPES.items()))
    description = serializers.CharField(required=False, allow_blank=True, max_length=500)
    options = serializers.ListField(child=serializers.CharField(max_length=100), required=False, help_text="enum only")


@extend_schema_field(ToolSerializer(many=True))
class ToolsField(serializers.JSONField):
    """Any JSON in, so that agent_clean, not the parser, explains what is wrong with a tool."""


@extend_schema_field(AnalysisFieldSerializer(many=True))
class AnalysisSchemaField(serializers.JSONField):
    """Any JSON in, so that agent_clean explains what is wrong with a field."""


class AgentOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    system_prompt = serializers.CharField()
    first_message = serializers.CharField()
    llm_provider = serializers.ChoiceField(choices=LLMProvider.choices)
    llm_model = serializers.CharField()
    temperature = serializers.FloatField()
    voice_id = serializers.CharField(help_text="ElevenLabs voice id; empty: JagCall's default voice")
    voice_name = serializers.CharField()
    stt_language = serializers.CharField()
    stt_model = serializers.CharField()
    tools = ToolsField()
    ai_disclosure_enabled = serializers.BooleanField()
    ai_disclosure = serializers.CharField()
    recording_disclosure_enabled = serializers.BooleanField()
    recording_disclosure = serializers.CharField()
    record_calls = serializers.BooleanField()
    max_call_seconds = serializers.IntegerField()
    voicemail_action = serializers.ChoiceField(choices=VoicemailAction.choices)
    voicemail_message = serializers.CharField()
    analysis_schema = AnalysisSchemaField()
    knowledge_bases = serializers.SerializerMethodField(help_text="Ids of the knowledge bases the agent answers from")
    phone_numbers = serializers.SerializerMethodField(help_text="The organization's numbers this agent answers (E.164)")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    @extend_schema_field(serializers.ListField(child=serializers.UUIDField()))
    def get_knowledge_bases(self, agent) -> list[str]:
        return [str(base.pk) for base in getattr(agent, "linked_knowledge_bases", [])]

    @extend_schema_field(serializers.ListField(child=serializers.CharField()))
    def get_phone_numbers(self, agent) -> list[str]:
        return [number.number for number in getattr(agent, "answered_numbers", [])]


class AgentInputSerializer(serializers.Serializer):
    """Types only; every rule about the values is agent_clean's, so all problems are reported together."""

    name = serializers.CharField(max_length=200, help_text="Unique in the organization, at most 120 characters")
    system_prompt = serializers.CharField(allow_blank=True, help_text="Required, at most 20,000 characters")
    first_message = serializers.CharField(required=False, allow_blank=True)
    llm_provider = serializers.ChoiceField(choices=LLMProvider.choices, required=False)
    llm_model = serializers.CharField(
        required=False,
        help_text=f"OpenAI: {', '.join(LLM_MODELS['openai'])}; Anthropic: {', '.join(LLM_MODELS['anthropic'])}",
    )
    temperature = serializers.FloatField(required=False, help_text="0-2 for OpenAI, 0-1 for Anthropic")
    voice_id = serializers.CharField(
        required=False,
        allow_blank=True,
        help_text="An ElevenLabs voice id of the account's list; empty: the default voice",
    )
    stt_language = serializers.CharField(required=False, help_text=f"One of {', '.join(STT_LANGUAGES)}")
    stt_model = serializers.CharField(required=False, help_text=f"One of {', '.join(STT_MODELS)}")
    tools = ToolsField(required=False, help_text=f"At most {MAX_TOOLS}, no duplicates")
    ai_disclosure_enabled = serializers.BooleanField(required=False)
    ai_disclosure = serializers.CharField(required=False, allow_blank=True, help_text="Required while it is enabled")
    recording_disclosure_enabled = serializers.BooleanField(required=False)
    recording_disclosure = serializers.CharField(
        required=False, allow_blank=True, help_text="Required while it is enabled"
    )
    record_calls = serializers.BooleanField(required=False)
    max_call_seconds = serializers.IntegerField(required=False, help_text=f"{MIN_CALL_SECONDS}-{MAX_CALL_SECONDS}")
    voicemail_action = serializers.ChoiceField(choices=VoicemailAction.choices, required=False)
    voicemail_message = serializers.CharField(required=False, allow_blank=True, help_text="Required to leave a message")
    analysis_schema = AnalysisSchemaField(
        required=False, help_text=f"At most {MAX_ANALYSIS_FIELDS} fields besides the summary"
    )
    knowledge_bases = serializers.ListField(
        child=serializers.UUIDField(),
        required=False,
        help_text=f"Ids of the organization's knowledge bases the agent answers from (at most {MAX_KNOWLEDGE_BASES})",
    )


def _validated(organization, data, *, agent=None) -> dict:
    """The typed input, or a 400 listing every problem: wrong types and the service's refusals of the rest."""
    serializer = AgentInputSerializer(data=data, partial=agent is not None)
    if serializer.is_valid():
        return serializer.validated_data
    errors = dict(serializer.errors)
    if isinstance(data, dict):
        rest = {key: value for key, value in data.items() if key not in errors and key in AgentInputSerializer().fields}
        if agent is None:  # what a creation lacks is reported once, by the serializer
            rest = {**{key: "placeholder" for key in ("name", "system_prompt") if key in errors}, **rest}
        for key, messages in agent_problems(organization=organization, data=rest, agent=agent).items():
            errors.setdefault(key, messages)
    raise ValidationError(errors)


class AgentListApi(OrganizationAPIView):
    """GET -> the organization's agents by name (cursor-paginated); POST -> create an agent.

    A refused agent is a 400 whose ``error.details`` lists every setting at
    fault with what to change.
    """

    required_scopes = {"GET": "agents:read", "POST": "agents:write"}

    def get_org_queryset(self):
        return Agent.objects.all()

    @extend_schema(responses=AgentOutputSerializer(many=True))
    def get(self, request):
        paginator = CursorPagination()
        paginator.ordering = ("name", "id")
        page = paginator.paginate_queryset(agent_list(organization=self.organization), request, view=self)
        return paginator.get_paginated_response(AgentOutputSerializer(page, many=True).data)

    @extend_schema(request=AgentInputSerializer, responses={201: AgentOutputSerializer})
    def post(self, request):
        data = _validated(self.organization, request.data)
        try:
            agent = agent_create(organization=self.organization, actor=request.auth, data=data)
        except AgentInvalid as error:
            raise ValidationError(error.errors) from None
        agent = agent_get(organization=self.organization, id=agent.id)
        return Response(AgentOutputSerializer(agent).data, status=status.HTTP_201_CREATED)


class AgentDetailApi(OrganizationAPIView):
    """GET -> one agent; PATCH -> change the settings given; DELETE -> delete it (409 while it answers numbers)."""

    required_scopes = {"GET": "agents:read", "PATCH": "agents:write", "DELETE": "agents:write"}

    def get_org_queryset(self):
        return Agent.objects.all()

    @extend_schema(responses=AgentOutputSerializer)
    def get(self, request, agent_id):
        return Response(AgentOutputSerializer(agent_get(organization=self.organization, id=agent_id)).data)

    @extend_schema(request=AgentInputSerializer(partial=True), responses=AgentOutputSerializer)
    def patch(self, request, agent_id):
        agent = agent_get(organization=self.organization, id=agent_id)
        data = _validated(self.organization, request.data, agent=agent)
        try:
            agent_update(organization=self.organization, actor=request.auth, agent=agent, data=data)
        except AgentInvalid as error:
            raise ValidationError(error.errors) from None
        return Response(AgentOutputSerializer(agent_get(organization=self.organization, id=agent_id)).data)

    @extend_schema(
        responses={
            204: None,
            409: OpenApiResponse(
                response={"$ref": "#/components/schemas/Error"},
                description="`agent_in_use`: the agent still answers phone numbers (the message names them); "
                "assign them to another agent first.",
            ),
        }
    )
    def delete(self, request, agent_id):
        agent = agent_get(organization=self.organization, id=agent_id)
        agent_delete(organization=self.organization, actor=request.auth, agent=agent)
        return Response(status=status.HTTP_204_NO_CONTENT)


urlpatterns = [
    path("agents", AgentListApi.as_view(), name="agent-list"),
    path("agents/<uuid:agent_id>", AgentDetailApi.as_view(), name="agent-detail"),
]
