"""The accounts API: tokens for one organization, and who the caller is.

Token endpoints take no credential header (the password, or the refresh
token, is the credential) and answer errors as ``{"detail", "code"}``.
Everything else derives from OrganizationAPIView and authenticates with a
JWT bound to one organization (accounts/api/jwt.py).
"""

from __future__ import annotations

from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.api.base import OrganizationAPIView
from accounts.api.jwt import (
    OrganizationJWTAuthentication,
    api_token_issue,
    api_token_refresh,
    api_token_revoke,
)
from accounts.models import Membership
from jagcall.errors import ApplicationError

# Token responses must never be cached by a client or proxy (RFC 6749, 5.1).
NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def _error_response(error: ApplicationError) -> Response:
    headers = dict(NO_STORE)
    if error.status == status.HTTP_401_UNAUTHORIZED:
        headers["WWW-Authenticate"] = 'Bearer realm="api"'
    return Response({"detail": error.message, "code": error.code}, status=error.status, headers=headers)


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

    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            api_token_revoke(request=request._request, refresh=serializer.validated_data["refresh"])
        except ApplicationError as error:
            return _error_response(error)
        return Response(status=status.HTTP_204_NO_CONTENT, headers=NO_STORE)


class MeApi(OrganizationAPIView):
    """GET -> the caller, the token's organization and the caller's role in it."""

    authentication_classes = [OrganizationJWTAuthentication]

    class OutputSerializer(serializers.Serializer):
        class UserSerializer(serializers.Serializer):
            id = serializers.UUIDField()
            email = serializers.EmailField()
            name = serializers.CharField()

        class OrganizationSerializer(serializers.Serializer):
            id = serializers.UUIDField()
            slug = serializers.SlugField()
            name = serializers.CharField()

        user = UserSerializer()
        organization = OrganizationSerializer()
        role = serializers.CharField()

    def get_org_queryset(self):
        return Membership.objects.select_related("user")

    def get(self, request):
        data = {"user": request.user, "organization": self.organization, "role": request.membership_role}
        return Response(self.OutputSerializer(data).data)
