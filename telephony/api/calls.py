"""API: calls at /api/v1/calls (list, place one) and /api/v1/calls/{call_id} (a call, its timeline and what it left).

Reading needs ``calls:read``; placing ``calls:write``. Numbers are shown in
full to API clients (they hold ``calls:read``). Placing a call goes through
``telephony.services.outbound.place_call``: the pre-dial gate's refusals are
422 with the rule's code (``invalid_number``, ``no_calling_rights``,
``caller_number``, ``do_not_call``, ``calling_hours``, and rules added later)
and its message; Twilio not taking the call is 502 (503 when retrying may
help) ``provider_error``, the call then listed as failed. A POST may carry an
``Idempotency-Key``: the same key and body within 24 hours answer the first
call again, and Twilio is asked once.
"""

from __future__ import annotations

from django.urls import path
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, extend_schema_field
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.api.base import OrganizationAPIView
from jagcall.kernel.api.pagination import CursorPagination
from jagcall.kernel.phone import InvalidPhoneNumber, parse_e164
from telephony.models import (
    Agent,
    Call,
    CallAnalysis,
    CallDirection,
    CallRecording,
    CallStatus,
    PhoneNumber,
    StepStatus,
    Transcript,
)
from telephony.selectors.calls import call_get, call_list, call_timeline
from telephony.services.dialing import DialRefused
from telephony.services.outbound import MAX_VARIABLE_VALUE, MAX_VARIABLES, place_call

_ERROR = {"$ref": "#/components/schemas/Error"}
_RULE_CODES = "`invalid_number`, `no_calling_rights`, `caller_number`, `do_not_call`, `calling_hours`"


# --- output -------------------------------------------------------------------------------


class CallAgentSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()


class CallOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    direction = serializers.ChoiceField(choices=CallDirection.choices)
    status = serializers.ChoiceField(choices=CallStatus.choices)
    status_label = serializers.CharField(source="get_status_display")
    agent = CallAgentSerializer(allow_null=True)
    phone_number_id = serializers.UUIDField(allow_null=True, help_text="The organization's number the call used")
    from_number = serializers.CharField(help_text="E.164: the caller (ours on an outbound call)")
    to_number = serializers.CharField(help_text="E.164: the callee (ours on an inbound call)")
    twilio_sid = serializers.CharField(allow_null=True)
    placed_by = serializers.CharField(help_text="Who placed an outbound call (email, API key or app); empty inbound")
    created_at = serializers.DateTimeField()
    answered_at = serializers.DateTimeField(allow_null=True)
    ended_at = serializers.DateTimeField(allow_null=True)
    duration_seconds = serializers.IntegerField(allow_null=True)
    billable_seconds = serializers.IntegerField(allow_null=True)
    price = serializers.DecimalField(max_digits=10, decimal_places=5, allow_null=True)
    price_unit = serializers.CharField()
    error_code = serializers.CharField()
    error_message = serializers.CharField()


class CallEventSerializer(serializers.Serializer):
    kind = serializers.CharField(help_text="A call status (queued ... completed) or a step such as stream.started")
    occurred_at = serializers.DateTimeField()
    source = serializers.CharField()
    sequence_number = serializers.IntegerField(allow_null=True)
    details = serializers.JSONField()


class StepSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=StepStatus.choices)
    failure_reason = serializers.CharField()
    attempts = serializers.IntegerField()
    completed_at = serializers.DateTimeField(allow_null=True)


class RecordingStateSerializer(StepSerializer):
    duration_seconds = serializers.IntegerField(allow_null=True)
    channels = serializers.IntegerField()


class UtteranceSerializer(serializers.Serializer):
    speaker = serializers.IntegerField()
    start = serializers.FloatField()
    end = serializers.FloatField()
    text = serializers.CharField()


class TranscriptStateSerializer(StepSerializer):
    language = serializers.CharField()
    utterances = serializers.SerializerMethodField(help_text="When done: who said what, when (seconds)")

    @extend_schema_field(UtteranceSerializer(many=True, allow_null=True))
    def get_utterances(self, transcript):
        return transcript.utterances if transcript.status == StepStatus.DONE else None


class AnalysisStateSerializer(StepSerializer):
    summary = serializers.SerializerMethodField()
    # Named "fields" in the output; the method is not get_fields, which DRF's Serializer already uses.
    fields = serializers.SerializerMethodField(
        method_name="get_analysis_fields", help_text="When done: the agent's analysis fields, filled"
    )

    @extend_schema_field(OpenApiTypes.STR)
    def get_summary(self, analysis):
        return analysis.summary if analysis.status == StepStatus.DONE else None

    @extend_schema_field(OpenApiTypes.OBJECT)
    def get_analysis_fields(self, analysis):
        return analysis.fields if analysis.status == StepStatus.DONE else None


class CallDetailOutputSerializer(CallOutputSerializer):
    variables = serializers.DictField(child=serializers.CharField(), allow_null=True)
    events = CallEventSerializer(many=True, help_text="The timeline, oldest first")
    recording = RecordingStateSerializer(allow_null=True)
    transcript = TranscriptStateSerializer(allow_null=True)
    analysis = AnalysisStateSerializer(allow_null=True)


def _detail(call: Call) -> dict:
    organization = call.organization

    def step(model):
        return model.objects.for_org(organization).filter(call=call).first()

    return {
        **CallOutputSerializer(call).data,
        "variables": call.variables,
        "events": CallEventSerializer(call_timeline(call=call), many=True).data,
        "recording": _step(RecordingStateSerializer, step(CallRecording)),
        "transcript": _step(TranscriptStateSerializer, step(Transcript)),
        "analysis": _step(AnalysisStateSerializer, step(CallAnalysis)),
    }


def _step(serializer, row):
    return None if row is None else serializer(row).data


# --- input --------------------------------------------------------------------------------


@extend_schema_field(
    {
        "type": "object",
        "additionalProperties": {"type": "string", "maxLength": MAX_VARIABLE_VALUE},
        "maxProperties": MAX_VARIABLES,
        "description": "Values for the agent's prompt, e.g. {\"first_name\": \"Ada\"}: names are identifiers "
        f"(letters, digits, underscores), at most {MAX_VARIABLES}, values text up to {MAX_VARIABLE_VALUE} characters.",
    }
)
class VariablesField(serializers.JSONField):
    """Any JSON in, so that the service, not the parser, explains what is wrong with a variable."""


class CallPlaceInputSerializer(serializers.Serializer):
    agent_id = serializers.UUIDField(help_text="The agent that talks on the call")
    to = serializers.CharField(max_length=40, help_text="The destination in E.164, e.g. +14155550100")
    from_number_id = serializers.UUIDField(required=False, help_text="The caller number: one of your numbers' ids")
    from_ = serializers.CharField(
        required=False, max_length=40, help_text="Or the caller number in E.164 (one of your numbers)"
    )
    variables = VariablesField(required=False)

    def get_fields(self):
        fields = super().get_fields()
        fields["from"] = fields.pop("from_")
        return fields

    def validate(self, data):
        if ("from_number_id" in data) == ("from" in data):
            raise ValidationError(
                {"from": [
                    "Give the caller number: either from_number_id (one of your numbers' ids) or from (its E.164)."
                ]}
            )
        return data


class CallFilterSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=CallStatus.choices, required=False)
    direction = serializers.ChoiceField(choices=CallDirection.choices, required=False)
    agent_id = serializers.UUIDField(required=False)
    created_after = serializers.DateTimeField(required=False, help_text="Inclusive, ISO 8601 with a time zone")
    created_before = serializers.DateTimeField(required=False, help_text="Exclusive, ISO 8601 with a time zone")
    number = serializers.CharField(required=False, max_length=40, help_text="The other party's number, E.164 (exact)")

    def validate_number(self, value):
        try:
            return parse_e164(value)
        except InvalidPhoneNumber as error:
            raise ValidationError(str(error)) from None


_FILTER_PARAMETERS = [
    OpenApiParameter("status", OpenApiTypes.STR, enum=CallStatus.values),
    OpenApiParameter("direction", OpenApiTypes.STR, enum=CallDirection.values),
    OpenApiParameter("agent_id", OpenApiTypes.UUID),
    OpenApiParameter("created_after", OpenApiTypes.DATETIME, description="Inclusive, ISO 8601"),
    OpenApiParameter("created_before", OpenApiTypes.DATETIME, description="Exclusive, ISO 8601"),
    OpenApiParameter("number", OpenApiTypes.STR, description="The other party's number in E.164 (exact match)"),
]


class CallCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")


def _caller_number(organization, data) -> PhoneNumber:
    numbers = PhoneNumber.objects.for_org(organization).filter(released_at__isnull=True, voice_enabled=True)
    if "from_number_id" in data:
        found, shown = numbers.filter(id=data["from_number_id"]).first(), str(data["from_number_id"])
    else:
        found, shown = numbers.filter(number=data["from"].strip()).first(), data["from"].strip()
    if found is None:
        raise DialRefused(
            "caller_number",
            f"{shown} is not one of {organization.name}'s active voice numbers. "
            "List them with GET /api/v1/numbers, or buy one.",
            "from",
        )
    return found


# --- views --------------------------------------------------------------------------------


class CallListApi(OrganizationAPIView):
    """GET -> the organization's calls, newest first (cursor-paginated, filterable); POST -> place a call."""

    required_scopes = {"GET": "calls:read", "POST": "calls:write"}

    def get_org_queryset(self):
        return Call.objects.all()

    @extend_schema(parameters=_FILTER_PARAMETERS, responses=CallOutputSerializer(many=True))
    def get(self, request):
        filters = CallFilterSerializer(data=request.query_params)
        filters.is_valid(raise_exception=True)
        given = filters.validated_data
        names = {"status": "status", "direction": "direction", "agent_id": "agent", "number": "number"}
        queryset = call_list(
            organization=self.organization, filters={key: given[name] for name, key in names.items() if name in given}
        )
        if "created_after" in given:
            queryset = queryset.filter(created_at__gte=given["created_after"])
        if "created_before" in given:
            queryset = queryset.filter(created_at__lt=given["created_before"])
        paginator = CallCursorPagination()
        page = paginator.paginate_queryset(queryset, request, view=self)
        return paginator.get_paginated_response(CallOutputSerializer(page, many=True).data)

    @extend_schema(
        request=CallPlaceInputSerializer,
        responses={
            201: CallDetailOutputSerializer,
            422: OpenApiResponse(
                response=_ERROR,
                description=f"The pre-dial gate refused the call; `error.code` names the rule ({_RULE_CODES}) and "
                "`error.message` says what to do. Nothing was written and nothing dialled.",
            ),
            502: OpenApiResponse(response=_ERROR, description="`provider_error`: Twilio refused the call; it is "
                                 "listed as failed with the reason."),
            503: OpenApiResponse(response=_ERROR, description="`provider_error`: Twilio could not be reached; retry."),
        },
    )
    def post(self, request):
        serializer = CallPlaceInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        agent = Agent.objects.for_org(self.organization).filter(id=data["agent_id"]).first()
        if agent is None:
            raise ValidationError({"agent_id": ["No agent of your organization has this id (GET /api/v1/agents)."]})
        call = place_call(
            organization=self.organization,
            actor=request.auth,
            agent=agent,
            to_number=data["to"],
            from_number=_caller_number(self.organization, data),
            variables=data.get("variables"),
        )
        call = call_get(organization=self.organization, call_id=call.id)
        response = Response(_detail(call), status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/calls/{call.id}"
        return response


class CallDetailApi(OrganizationAPIView):
    """GET -> one call with its timeline, its variables and the state of its recording, transcript and analysis.

    The transcript's utterances and the analysis's summary and fields are
    given once their step is done (null before).
    """

    required_scopes = {"GET": "calls:read"}

    def get_org_queryset(self):
        return Call.objects.all()

    @extend_schema(responses=CallDetailOutputSerializer)
    def get(self, request, call_id):
        return Response(_detail(call_get(organization=self.organization, call_id=call_id)))


urlpatterns = [
    path("calls", CallListApi.as_view(), name="call-list"),
    path("calls/<uuid:call_id>", CallDetailApi.as_view(), name="call-detail"),
]
