"""The accounts API: tokens for one organization, and who the caller is.

Token endpoints take no credential header (the password, or the refresh
token, is the credential) and answer errors in the API's one error shape
(jagcall/kernel/api/errors.py), never cached.
Everything else derives from OrganizationAPIView and authenticates with a
JWT bound to one organization (accounts/api/jwt.py).
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.base import OrganizationAPIView
from accounts.api.jwt import (
    api_token_issue,
    api_token_refresh,
    api_token_revoke,
)
from accounts import selectors
from accounts import services
from accounts.api_keys_services import api_key_create, api_key_revoke
from accounts.models import ApiKey, Membership
from accounts.permissions import has_permission
from accounts.scopes import ALL_SCOPES
from jagcall.kernel.api.errors import exception_handler
from jagcall.kernel.api.pagination import CursorPagination
from jagcall.kernel.errors import ApplicationError, PermissionDenied

# Token responses must never be cached by a client or proxy (RFC 6749, 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _error_response(error: ApplicationError) -> Response:
    """The exception handler's own answer for ``error``, plus no-store."""
    response = exception_handler(error, {})
    for header, value in NO_STORE.items():
        response[header] = value
    return response


class TokenPairOutputSerializer(serializers.Serializer):
    access = serializers.CharField()
    refresh = serializers.CharField()
    token_type = serializers.CharField()
    expires_in = serializers.IntegerField()
    organization = serializers.CharField(source="organization.slug")


class _TokenEndpoint(APIView):
    """No credential header: the body carries the credential."""

    authentication_classes: list = []
    permission_classes = [AllowAny]


class TokenObtainApi(_TokenEndpoint):
    """POST {email, password, organization (slug), otp_code?} -> a token pair for that organization."""

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField(max_length=254)
        password = serializers.CharField(max_length=4096, trim_whitespace=False)
        organization = serializers.SlugField(max_length=60)
        otp_code = serializers.CharField(max_length=64, required=False, allow_blank=True)

    OutputSerializer = TokenPairOutputSerializer

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            pair = api_token_issue(
                request=request._request,
                email=data["email"],
                password=data["password"],
                organization_slug=data["organization"],
                otp_code=data.get("otp_code"),
            )
        except ApplicationError as error:
            return _error_response(error)
        return Response(self.OutputSerializer(pair).data, headers=NO_STORE)


class TokenRefreshApi(_TokenEndpoint):
    """POST {refresh} -> a new pair for the same organization; the refresh token given is spent."""

    class InputSerializer(serializers.Serializer):
        refresh = serializers.CharField(max_length=4096)

    OutputSerializer = TokenPairOutputSerializer

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            pair = api_token_refresh(request=request._request, refresh=serializer.validated_data["refresh"])
        except ApplicationError as error:
            return _error_response(error)
        return Response(self.OutputSerializer(pair).data, headers=NO_STORE)


class TokenRevokeApi(_TokenEndpoint):
    """POST {refresh} -> 204; the refresh token can no longer be used."""

    class InputSerializer(serializers.Serializer):
        refresh = serializers.CharField(max_length=4096)

    @extend_schema(request=InputSerializer, responses={204: None})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            api_token_revoke(request=request._request, refresh=serializer.validated_data["refresh"])
        except ApplicationError as error:
            return _error_response(error)
        return Response(status=status.HTTP_204_NO_CONTENT, headers=NO_STORE)


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


# --- API keys ---------------------------------------------------------------------


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


def _actor(request):
    """The person behind the request (JWT), or the creator of the calling API key."""
    api_key = getattr(request.auth, "api_key", None)
    if api_key is not None:
        return api_key.created_by
    return request.user


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
            created_by=_actor(request),
            grantor_scopes=request.auth.scopes,
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
            actor=_actor(request),
            grantor_scopes=request.auth.scopes,
            request=request._request,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


# --- the organization and its members ---------------------------------------------


def _acting_member(request, organization, action: str):
    """Who changes the organization or its team: the person (JWT), or the API key's creator.

    [!!] A key acts with its own scopes *and* its creator's role: when the
    creator has left the organization or no longer holds a role allowed to do
    ``action`` (accounts/permissions.py), the key cannot do it either.
    """
    api_key = getattr(request.auth, "api_key", None)
    if api_key is None:
        return request.user
    creator = api_key.created_by
    membership = selectors.membership_for_user(organization=organization, user=creator) if creator else None
    if membership is None or not has_permission(membership.role, action):
        raise PermissionDenied(
            "This API key acts for the person who created it, who no longer holds a role allowed to do this. "
            "Ask an owner or admin to create a new key."
        )
    return creator


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
            actor=_acting_member(request, self.organization, "organization.update"),
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

    def get_org_queryset(self):
        return Membership.objects.select_related("user")

    @extend_schema(request=InputSerializer, responses=OutputSerializer)
    def patch(self, request, membership_id):
        membership = selectors.membership_get(organization=self.organization, id=membership_id)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.membership_role_change(
            organization=self.organization,
            actor=_acting_member(request, self.organization, "members.change_role"),
            membership=membership,
            role=serializer.validated_data["role"],
        )
        return Response(self.OutputSerializer(membership).data)

    @extend_schema(responses={204: None})
    def delete(self, request, membership_id):
        membership = selectors.membership_get(organization=self.organization, id=membership_id)
        services.membership_remove(
            organization=self.organization,
            actor=_acting_member(request, self.organization, "members.remove"),
            membership=membership,
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
