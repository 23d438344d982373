"""Every API error, whatever raised it, has one shape: {"error": {"code", "message", "details"}}."""

from __future__ import annotations

import pytest
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.test import APIRequestFactory
from rest_framework.views import APIView

from jagcall.kernel.errors import ApplicationError

pytestmark = pytest.mark.django_db


class EchoApi(APIView):
    authentication_classes: list = []
    permission_classes: list = []

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=5)
        count = serializers.IntegerField(min_value=1)

    def post(self, request):
        data = self.InputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        if data.validated_data["name"] == "taken":
            raise ApplicationError("That name is taken; choose another.", code="duplicate", field="name", status=409)
        if data.validated_data["name"] == "boom":
            raise RuntimeError("internal detail that must not leak")
        return Response({"ok": True})


def call(data):
    request = APIRequestFactory().post("/api/v1/echo", data, format="json")
    return EchoApi.as_view()(request)


def assert_shape(response, status, code):
    assert response.status_code == status
    body = response.data
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"]
    return body["error"]


def test_validation_errors_list_their_fields():
    error = assert_shape(call({"name": "much too long", "count": 0}), 400, "invalid")
    assert set(error["details"]) == {"name", "count"}
    assert "name" in error["message"] and "count" in error["message"]


def test_service_errors_keep_their_code_status_and_field():
    error = assert_shape(call({"name": "taken", "count": 1}), 409, "duplicate")
    assert error["details"] == {"name": ["That name is taken; choose another."]}


def test_unexpected_errors_are_a_500_in_the_same_shape_without_internals(caplog):
    error = assert_shape(call({"name": "boom", "count": 1}), 500, "server_error")
    assert "internal detail" not in error["message"]


def test_malformed_json_is_a_400(client):
    request = APIRequestFactory().post("/api/v1/echo", "{not json", content_type="application/json")
    assert_shape(EchoApi.as_view()(request), 400, "parse_error")


def test_authentication_errors_and_unknown_endpoints(client):
    response = client.get("/api/v1/me")
    assert response.status_code == 401
    assert set(response.json()["error"]) == {"code", "message", "details"}
    response = client.get("/api/v1/no-such-endpoint")
    assert response.status_code == 404 and response["Content-Type"].startswith("application/json")
    assert response.json()["error"]["code"] == "not_found"


def test_an_invalid_token_reads_as_one_message(client):
    response = client.get("/api/v1/me", HTTP_AUTHORIZATION="Bearer not.a.token")
    assert response.status_code == 401
    error = response.json()["error"]
    assert error["code"] == "token_not_valid"
    assert "fields" not in error["message"] and error["message"]
