"""The token endpoints: no credential header (the password, or the refresh token, is the credential).

Errors come in the API's one error shape (jagcall/kernel/api/errors.py),
never cached.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.jwt.services import api_token_issue, api_token_refresh, api_token_revoke
from jagcall.kernel.api.errors import NO_STORE, exception_handler
from jagcall.kernel.errors import ApplicationError


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


