"""Compliance API: GET /api/v1/audit-events; the do-not-call list at /api/v1/do-not-call."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import ValidationError
from rest_framework.response import Response

from accounts.api.base import OrganizationAPIView
from compliance import selectors, services
from compliance.forms import AuditEventFilterSet
from compliance.models import AuditEvent, DoNotCallEntry, DoNotCallReason, DoNotCallSource
from jagcall.kernel.api.pagination import CursorPagination


class AuditEventCursorPagination(CursorPagination):
    # The (organization, occurred_at, id) index serves this order.
    ordering = ("-occurred_at", "-id")


_FILTER_PARAMETERS = [
    OpenApiParameter("actor", OpenApiTypes.STR, description="A person's id, an API key (jc_live_<prefix>), or text in the actor's email"),
    OpenApiParameter("action", OpenApiTypes.STR, description="Exact (member.removed) or a prefix (member. or member.*)"),
    OpenApiParameter("resource_type", OpenApiTypes.STR),
    OpenApiParameter("resource_id", OpenApiTypes.STR),
    OpenApiParameter("outcome", OpenApiTypes.STR, enum=["success", "denied", "failed"]),
    OpenApiParameter("actor_type", OpenApiTypes.STR, enum=["user", "api_key", "oauth_application", "support", "system", "anonymous"]),
    OpenApiParameter("ip", OpenApiTypes.STR),
    OpenApiParameter("since", OpenApiTypes.DATETIME, description="Inclusive, ISO 8601 (a date means its start, UTC)"),
    OpenApiParameter("until", OpenApiTypes.DATETIME, description="Exclusive, ISO 8601 (a date includes that whole day)"),
]


class AuditEventListApi(OrganizationAPIView):
    """GET -> the organization's audit events, newest first (cursor-paginated), with the portal's filters.

    Reading the log is itself recorded (``audit.viewed``, once per credential
    and filter set every few minutes).
    """

    required_scopes = {"GET": "audit:read"}

    class OutputSerializer(serializers.Serializer):
        class ActorSerializer(serializers.Serializer):
            type = serializers.CharField(source="actor_type")
            label = serializers.CharField(source="actor_label")
            user_id = serializers.UUIDField(source="actor_id", allow_null=True)
            api_key_prefix = serializers.CharField(allow_null=True)

            def to_representation(self, instance):
                data = super().to_representation(instance)
                data["api_key_prefix"] = data["api_key_prefix"] or None
                return data

        class ResourceSerializer(serializers.Serializer):
            type = serializers.CharField(source="resource_type", allow_null=True)
            id = serializers.CharField(source="resource_id", allow_null=True)

            def to_representation(self, instance):
                return {key: value or None for key, value in super().to_representation(instance).items()}

        id = serializers.UUIDField()
        occurred_at = serializers.DateTimeField()
        seq = serializers.IntegerField()
        action = serializers.CharField()
        outcome = serializers.CharField()
        actor = ActorSerializer(source="*")
        resource = ResourceSerializer(source="*")
        ip = serializers.IPAddressField(allow_null=True)
        user_agent = serializers.CharField()
        request_id = serializers.CharField()
        changes = serializers.JSONField(allow_null=True)
        metadata = serializers.JSONField()
        prev_hash = serializers.CharField()
        hash = serializers.CharField()

    def get_org_queryset(self):
        return AuditEvent.objects.all()

    @extend_schema(parameters=_FILTER_PARAMETERS, responses=OutputSerializer(many=True))
    def get(self, request):
        filterset = AuditEventFilterSet(request.query_params)
        if not filterset.is_valid():
            raise ValidationError(filterset.errors)
        filters = filterset.cleaned_filters()
        paginator = AuditEventCursorPagination()
        page = paginator.paginate_queryset(
            selectors.audit_event_list(organization=self.organization, filters=filters), request, view=self
        )
        services.audit_record_read(request=request, organization=self.organization, filters=filters, via="api")
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


# --- do-not-call ----------------------------------------------------------------------------


class DoNotCallOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    number = serializers.CharField(help_text="E.164")
    reason = serializers.ChoiceField(choices=DoNotCallReason.choices)
    source = serializers.ChoiceField(choices=DoNotCallSource.choices)
    added_by = serializers.CharField(help_text="Who added it: an email, an API key (jc_live_<prefix>) or an integration")
    created_at = serializers.DateTimeField()


class DoNotCallListApi(OrganizationAPIView):
    """GET -> the do-not-call list, newest first (cursor-paginated); POST {number, reason} -> add a number.

    A number already on the list is a 409 ``already_listed``; a number that
    is not a valid phone number is a 400 ``invalid_number``. Outbound calls
    to a listed number are refused before they are dialled.
    """

    required_scopes = {"GET": "compliance:read", "POST": "compliance:write"}
    OutputSerializer = DoNotCallOutputSerializer

    class InputSerializer(serializers.Serializer):
        number = serializers.CharField(max_length=40, help_text="E.164, e.g. +14155550100")
        reason = serializers.ChoiceField(choices=DoNotCallReason.choices, default=DoNotCallReason.REQUESTED)

    def get_org_queryset(self):
        return DoNotCallEntry.objects.all()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        paginator = CursorPagination()
        paginator.ordering = ("-created_at", "-id")
        entries = selectors.do_not_call_list(organization=self.organization)
        page = paginator.paginate_queryset(entries, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        entry = services.do_not_call_add(
            organization=self.organization,
            actor=request.auth,
            number=serializer.validated_data["number"],
            reason=serializer.validated_data["reason"],
            source=DoNotCallSource.API,
        )
        return Response(self.OutputSerializer(entry).data, status=status.HTTP_201_CREATED)


class DoNotCallDetailApi(OrganizationAPIView):
    """GET -> one entry; DELETE -> take the number off the list (owners' and admins' credentials only)."""

    required_scopes = {"GET": "compliance:read", "DELETE": "compliance:write"}
    OutputSerializer = DoNotCallOutputSerializer

    def get_org_queryset(self):
        return DoNotCallEntry.objects.all()

    @extend_schema(responses=OutputSerializer)
    def get(self, request, do_not_call_id):
        entry = selectors.do_not_call_get(organization=self.organization, id=do_not_call_id)
        return Response(self.OutputSerializer(entry).data)

    @extend_schema(responses={204: None})
    def delete(self, request, do_not_call_id):
        entry = selectors.do_not_call_get(organization=self.organization, id=do_not_call_id)
        services.do_not_call_remove(organization=self.organization, actor=request.auth, entry=entry)
        return Response(status=status.HTTP_204_NO_CONTENT)
