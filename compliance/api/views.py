"""The audit log API: GET /api/v1/audit-events."""

from __future__ import annotations

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.exceptions import ValidationError

from accounts.api.base import OrganizationAPIView
from compliance import selectors, services
from compliance.forms import AuditEventFilterSet
from compliance.models import AuditEvent
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
