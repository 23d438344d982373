"""The API kernel learns which views are organization-bound from the app that
defines them (jagcall/kernel/api/registry.py), never by importing it."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured
from django.urls import path
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.response import Response
from rest_framework.views import APIView

from jagcall.kernel.api import registry


class _GadgetTokenAuthentication(BaseAuthentication):
    """A gadget token."""

    def authenticate(self, request):
        return None

    def authenticate_header(self, request):
        return "Bearer"


class _GadgetBaseView(APIView):
    """An organization-bound base of an app the kernel does not know."""

    authentication_classes = [_GadgetTokenAuthentication]


class GadgetCreateApi(_GadgetBaseView):
    required_scopes = {"POST": "organization:write"}

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField()

    @extend_schema(request=InputSerializer, responses={201: InputSerializer})
    def post(self, request):
        return Response(status=201)


@pytest.fixture
def own_registry(monkeypatch):
    """An empty registry for the test; the one accounts filled comes back after it."""
    monkeypatch.setattr(registry, "_organization_view_bases", [])


def _post_operation() -> dict:
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        document = SchemaGenerator(patterns=[path("api/v1/gadgets", GadgetCreateApi.as_view())]).get_schema(
            request=None, public=True
        )
    return document["paths"]["/api/v1/gadgets"]["post"]


def test_accounts_registers_its_organization_base_view():
    from accounts.api.base import OrganizationAPIView

    assert OrganizationAPIView in registry.organization_view_bases()
    assert not registry.is_organization_view(APIView())


def test_a_registered_base_makes_its_subclasses_organization_bound(own_registry):
    assert not registry.is_organization_view(GadgetCreateApi())
    registry.register_organization_view(_GadgetBaseView)
    registry.register_organization_view(_GadgetBaseView)  # twice is harmless
    assert registry.organization_view_bases().count(_GadgetBaseView) == 1
    assert registry.is_organization_view(GadgetCreateApi())
    assert registry.is_organization_view(GadgetCreateApi)


def test_a_base_can_be_registered_by_its_dotted_path(own_registry):
    registry.register_organization_view(f"{__name__}._GadgetBaseView")
    assert registry.is_organization_view(GadgetCreateApi())
    assert _GadgetBaseView in registry.organization_view_bases()


def test_a_stale_dotted_path_says_what_to_fix(own_registry):
    registry.register_organization_view("accounts.api.nowhere.OrganizationAPIView")
    with pytest.raises(ImproperlyConfigured, match="Register the class at its current path"):
        registry.is_organization_view(GadgetCreateApi())


def test_only_a_class_or_a_dotted_path_can_be_registered(own_registry):
    for wrong in (GadgetCreateApi(), "OrganizationAPIView", None):
        with pytest.raises(TypeError, match="view class or its dotted path"):
            registry.register_organization_view(wrong)


def test_the_schema_gives_a_registered_base_the_organization_conventions(own_registry):
    before = _post_operation()
    assert "Idempotency-Key" not in {p["name"] for p in before.get("parameters", [])}
    assert "RateLimit-Limit" not in before["responses"]["201"]["headers"]

    registry.register_organization_view(_GadgetBaseView)
    after = _post_operation()
    assert "Idempotency-Key" in {p["name"] for p in after["parameters"]}
    assert {"RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(after["responses"]["201"]["headers"])
    assert {"409", "429", "503"} <= set(after["responses"])
    assert after["responses"]["403"]["content"]["application/json"]["example"]["error"]["code"] == "missing_scope"
