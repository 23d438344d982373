"""The accounts API: who the caller is, the organization and its members.

Every view derives from OrganizationAPIView: the organization comes from the
credential (API key, OAuth token, JWT or portal session). The token
endpoints are in accounts/jwt/api.py, the API keys' in accounts/api_keys/api.py.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts import selectors, services
from accounts.api.base import OrganizationAPIView
from accounts.models import Membership
from accounts.api_keys.services import KeyDisposition
from jagcall.kernel.api.pagination import CursorPagination


class MeApi(OrganizationAPIView):
    """GET -> who is calling: the person or API key, its organization, role and scopes.

    Every credential may ask: a person (JWT, OAuth token, session) gets
    ``user`` and ``role``; an API key, which acts as its organization only,
    gets ``api_key`` and no user. ``scopes`` are what this credential may do.
    """

    required_scopes = {"GET": "organization:read"}

    class OutputSerializer(serializers.Serializer):
        class UserSerializer(serializers.Serializer):
            id = serializers.UUIDField()
            email = serializers.EmailField()
            name = serializers.CharField()

        class OrganizationSerializer(serializers.Serializer):
            id = serializers.UUIDField()
            slug = serializers.SlugField()
            name = serializers.CharField()

        class ApiKeySerializer(serializers.Serializer):
            id = serializers.UUIDField()
            name = serializers.CharField()
            prefix = serializers.CharField()

        user = UserSerializer(allow_null=True)
        api_key = ApiKeySerializer(allow_null=True)
        organization = OrganizationSerializer()
        role = serializers.CharField(allow_null=True)
        scopes = serializers.ListField(child=serializers.CharField())

    def get_org_queryset(self):
        return Membership.objects.select_related("user")

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        data = {
            "user": request.user,
            "api_key": getattr(request.auth, "api_key", None),
            "organization": self.organization,
            "role": request.membership_role,
            "scopes": sorted(request.auth.scopes),
        }
        return Response(self.OutputSerializer(data).data)


# --- the organization and its members ---------------------------------------------


class OrganizationOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    slug = serializers.SlugField()
    plan_code = serializers.CharField()
    status = serializers.CharField()
    require_two_factor = serializers.BooleanField()
    created_at = serializers.DateTimeField()


class OrganizationDetailApi(OrganizationAPIView):
    """GET -> the credential's organization; PATCH {name} -> rename it."""

    required_scopes = {"GET": "organization:read", "PATCH": "organization:write"}
    OutputSerializer = OrganizationOutputSerializer

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120)

    def get_org_queryset(self):
        # The organization itself is ``self.organization`` (from the credential); no lookup by id.
        return Membership.objects.select_related("user")

    @extend_schema(responses=OutputSerializer)
    def get(self, request):
        return Response(self.OutputSerializer(self.organization).data)

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def patch(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        organization = services.organization_update(
            organization=self.organization,
            actor=request.auth,
            name=serializer.validated_data["name"],
        )
        return Response(self.OutputSerializer(organization).data)


class MembershipOutputSerializer(serializers.Serializer):
    class UserSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        email = serializers.EmailField()
        name = serializers.CharField()

    id = serializers.UUIDField()
    user = UserSerializer()
    role = serializers.CharField()
    created_at = serializers.DateTimeField()


class MembershipListApi(OrganizationAPIView):
    """GET -> the team (cursor-paginated, newest first)."""

    required_scopes = {"GET": "members:read"}
    OutputSerializer = MembershipOutputSerializer

    def get_org_queryset(self):
        return Membership.objects.select_related("user")

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        paginator = CursorPagination()
        memberships = selectors.membership_list(organization=self.organization)
        page = paginator.paginate_queryset(memberships, request, view=self)
        return paginator.get_paginated_response(self.OutputSerializer(page, many=True).data)


class MembershipDetailApi(OrganizationAPIView):
    """PATCH {role} -> change a member's role; DELETE -> remove them from the organization."""

    required_scopes = {"PATCH": "members:write", "DELETE": "members:write"}
    OutputSerializer = MembershipOutputSerializer

    class InputSerializer(serializers.Serializer):
        role = serializers.CharField(max_length=20)
        api_keys = serializers.ChoiceField(
            choices=KeyDisposition.CHOICES,
            default=KeyDisposition.REVOKE,
            help_text="On a demotion: revoke the member's API keys, or keep them working in the caller's name "
            "(only a person can take keys over).",
        )

    class RemoveInputSerializer(serializers.Serializer):
        api_keys = serializers.ChoiceField(
            choices=KeyDisposition.CHOICES,
            default=KeyDisposition.REVOKE,
            help_text="Revoke the member's API keys, or keep them working in the caller's name (only a person "
            "can take keys over).",
        )

    def get_org_queryset(self):
        return Membership.objects.select_related("user")

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def patch(self, request, membership_id):
        membership = selectors.membership_get(organization=self.organization, id=membership_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_role_change(
            organization=self.organization,
            actor=request.auth,
            membership=membership,
            role=serializer.validated_data["role"],
            api_keys=serializer.validated_data["api_keys"],
        )
        return Response(self.OutputSerializer(membership).data)

    @extend_schema(parameters=[RemoveInputSerializer], responses={204: None})
    def delete(self, request, membership_id):
        membership = selectors.membership_get(organization=self.organization, id=membership_id)
        serializer = self.RemoveInputSerializer(data=request.query_params)
        serializer.is_valid(raise_exception=True)
        services.membership_remove(
            organization=self.organization,
            actor=request.auth,
            membership=membership,
            api_keys=serializer.validated_data["api_keys"],
            request=request._request,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
