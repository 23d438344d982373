"""The API keys API: list, create (the secret shown once), read, revoke."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.api.base import OrganizationAPIView
from accounts.api_keys import selectors
from accounts.api_keys.models import ApiKey
from accounts.api_keys.services import api_key_create, api_key_revoke
from accounts.scopes import ALL_SCOPES
from jagcall.kernel.api.errors import NO_STORE
from jagcall.kernel.api.pagination import CursorPagination


class ApiKeyOutputSerializer(serializers.Serializer):
    """A key as listed: never its secret nor its hash."""

    id = serializers.UUIDField()
    name = serializers.CharField()
    prefix = serializers.CharField()
    scopes = serializers.ListField(child=serializers.CharField())
    status = serializers.CharField()
    created_at = serializers.DateTimeField()
    created_by = serializers.EmailField(source="created_by.email", default=None, allow_null=True)
    expires_at = serializers.DateTimeField(allow_null=True)
    last_used_at = serializers.DateTimeField(allow_null=True)
    last_used_ip = serializers.IPAddressField(allow_null=True)
    revoked_at = serializers.DateTimeField(allow_null=True)


class ApiKeyListApi(OrganizationAPIView):
    """GET -> the organization's keys (cursor-paginated); POST -> a new key, its secret shown this once."""

    required_scopes = {"GET": "api_keys:read", "POST": "api_keys:write"}

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=100)
        scopes = serializers.ListField(
            child=serializers.ChoiceField(choices=sorted(ALL_SCOPES)), allow_empty=False, max_length=len(ALL_SCOPES)
        )
        expires_at = serializers.DateTimeField(required=False, allow_null=True)

    OutputSerializer = ApiKeyOutputSerializer

    class CreatedOutputSerializer(ApiKeyOutputSerializer):
        key = serializers.CharField()

    def get_org_queryset(self):
        return ApiKey.objects.select_related("created_by")

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        paginator = CursorPagination()
        page = paginator.paginate_queryset(selectors.api_key_list(organization=self.organization), request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)

    @extend_schema(request=InputSerializer, responses={201: CreatedOutputSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        api_key, raw_key = api_key_create(
            organization=self.organization,
            actor=request.auth,
            name=data["name"],
            scopes=data["scopes"],
            expires_at=data.get("expires_at"),
            request=request._request,
        )
        api_key.key = raw_key
        return Response(self.CreatedOutputSerializer(api_key).data, status=status.HTTP_201_CREATED, headers=NO_STORE)


class ApiKeyDetailApi(OrganizationAPIView):
    """GET -> one key (never its secret); DELETE -> revoke it, effective at once."""

    required_scopes = {"GET": "api_keys:read", "DELETE": "api_keys:write"}
    OutputSerializer = ApiKeyOutputSerializer

    def get_org_queryset(self):
        return ApiKey.objects.select_related("created_by")

    @extend_schema(responses=OutputSerializer)
    def get(self, request, api_key_id):
        api_key = selectors.api_key_get(organization=self.organization, id=api_key_id)
        return Response(self.OutputSerializer(api_key).data)

    @extend_schema(responses={204: None})
    def delete(self, request, api_key_id):
        api_key = selectors.api_key_get(organization=self.organization, id=api_key_id)
        api_key_revoke(
            organization=self.organization,
            api_key=api_key,
            actor=request.auth,
            request=request._request,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
