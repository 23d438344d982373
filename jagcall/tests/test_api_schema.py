"""The OpenAPI schema at /api/v1/schema/ and the docs at /api/docs/.

The schema must describe every route under /api/v1/, carry the API's
conventions on every operation (jagcall/kernel/api/schema/), validate with
``--fail-on-warn``, and its docs page must load nothing from outside.
"""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from io import StringIO
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml
from django.core.management import call_command
from django.http import Http404
from django.urls import path
from drf_spectacular.drainage import GENERATOR_STATS
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.utils import extend_schema
from rest_framework import exceptions, serializers
from rest_framework.authentication import BaseAuthentication
from rest_framework.response import Response

from accounts.api.base import OrganizationAPIView
from accounts.models import Membership
from accounts.tests.urlwalk import all_routes
from jagcall.kernel.api.errors import error_body, exception_handler
from jagcall.kernel.api.schema import ERROR_SCHEMA
from jagcall.kernel.errors import ApplicationError

SCHEMA_URL = "/api/v1/schema/"
DOCS_URL = "/api/docs/"
# The schema's own route: it describes the API, it is not part of it.
NOT_DESCRIBED = {"api-schema"}


@pytest.fixture(scope="module")
def schema(django_db_blocker):
    from django.test import Client

    with django_db_blocker.unblock():
        response = Client().get(SCHEMA_URL, {"format": "json"})
    assert response.status_code == 200, response.content[:500]
    return json.loads(response.content)


def operations(schema):
    for api_path, item in schema["paths"].items():
        for method, operation in item.items():
            yield api_path, method.upper(), operation


def _openapi_path(route: str) -> str:
    return "/" + re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", route)


def _handled_methods(view_class) -> list[str]:
    return [
        method.upper()
        for method in view_class.http_method_names
        if method not in ("head", "options") and hasattr(view_class, method)
    ]


# --- serving -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_schema_is_public_yaml_by_default_and_json_on_request(client):
    response = client.get(SCHEMA_URL)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/vnd.oai.openapi")
    document = yaml.safe_load(response.content)
    assert document["openapi"].startswith("3.1")
    assert document["info"]["title"] == "JagCall API"

    for response in (
        client.get(SCHEMA_URL, {"format": "json"}),
        client.get(SCHEMA_URL, HTTP_ACCEPT="application/json"),
        client.get(SCHEMA_URL, HTTP_ACCEPT="application/vnd.oai.openapi+json"),
    ):
        assert response.status_code == 200
        assert "json" in response["Content-Type"]
        assert json.loads(response.content)["paths"]


def test_spectacular_validates_without_a_warning(tmp_path):
    GENERATOR_STATS.reset()
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out), stdout=StringIO(), stderr=StringIO())
    assert yaml.safe_load(out.read_text())["paths"]


# --- coverage ------------------------------------------------------------------------------


def test_every_route_under_api_v1_is_described(schema):
    missing = []
    for route in all_routes():
        if not route.route.startswith("api/v1/") or route.name in NOT_DESCRIBED:
            continue
        api_path = _openapi_path(route.route)
        if route.view_class is None:
            missing.append(f"{route.name} ({api_path}): not a class-based API view")
            continue
        for method in _handled_methods(route.view_class):
            if method.lower() not in schema["paths"].get(api_path, {}):
                missing.append(f"{method} {api_path} ({route.name})")
    assert not missing, "not in the OpenAPI schema:\n" + "\n".join(missing)
    assert all(api_path.startswith("/api/v1/") for api_path in schema["paths"]), "only the public API is described"


def test_organization_operations_carry_scope_security_and_conventions(schema):
    from django.urls import resolve

    checked = 0
    for api_path, method, operation in operations(schema):
        view_class = resolve(re.sub(r"\{\w+\}", "00000000-0000-0000-0000-000000000000", api_path)).func.view_class
        if not issubclass(view_class, OrganizationAPIView):
            continue
        checked += 1
        where = f"{method} {api_path}"
        scope = view_class.required_scopes[method]
        assert operation["x-required-scopes"] == [scope], where
        assert f"`{scope}`" in operation["description"], where
        names = {name for requirement in operation["security"] for name in requirement}
        assert {"ApiKeyAuth", "JwtAuth"} <= names, where
        assert all(scopes == [scope] for requirement in operation["security"] for scopes in requirement.values()), where

        responses = operation["responses"]
        for code in ("401", "403", "429"):
            assert responses[code]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
        assert "Retry-After" in responses["429"]["headers"], where
        for code, response in responses.items():
            assert {"X-Request-ID", "RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset"} <= set(
                response["headers"]
            ), f"{where} {code}"

        parameters = {p["name"]: p for p in operation.get("parameters", [])}
        if method == "POST":
            assert parameters["Idempotency-Key"]["in"] == "header", where
            assert {"400", "409", "503"} <= set(responses), where
            success = next(code for code in responses if code.startswith("2"))
            assert "Idempotent-Replayed" in responses[success]["headers"], where
        else:
            assert "Idempotency-Key" not in parameters, where
        if method in ("POST", "PUT", "PATCH", "DELETE"):
            assert "400" in responses, where
        if "{" in api_path:
            assert "404" in responses, where
            for parameter in parameters.values():
                if parameter["in"] == "path":
                    assert parameter["schema"] == {"type": "string", "format": "uuid"}, where
    assert checked >= 8


def test_lists_are_cursor_paginated(schema):
    lists = [(p, o) for p, m, o in operations(schema) if o["operationId"].endswith("_list")]
    assert {p for p, _ in lists} >= {"/api/v1/api-keys", "/api/v1/members"}
    for api_path, operation in lists:
        parameters = {p["name"]: p for p in operation["parameters"]}
        assert parameters["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 200, "default": 50}
        assert parameters["cursor"]["in"] == "query"
        page = schema["components"]["schemas"][
            operation["responses"]["200"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        ]
        assert page["required"] == ["next", "previous", "results"]
        assert page["properties"]["next"]["type"] == ["string", "null"]
        assert page["properties"]["results"]["type"] == "array"
        assert "404" in operation["responses"], f"{api_path}: a bad cursor is a 404"


def test_security_schemes_describe_api_keys_and_tokens(schema):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["ApiKeyAuth"] == {**schemes["ApiKeyAuth"], "type": "http", "scheme": "bearer"}
    assert schemes["ApiKeyAuth"]["bearerFormat"].startswith("jc_live_")
    assert schemes["JwtAuth"]["bearerFormat"] == "JWT"
    token = schema["paths"]["/api/v1/auth/token"]["post"]
    assert token["security"] == [{}], "the token endpoint takes no credential header"
    assert "Idempotency-Key" not in {p["name"] for p in token.get("parameters", [])}


def test_patch_bodies_require_the_fields_the_handler_requires(schema):
    body = schema["paths"]["/api/v1/organization"]["patch"]["requestBody"]
    component = body["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
    assert schema["components"]["schemas"][component]["required"] == ["name"]


# --- the error shape -------------------------------------------------------------------------


def test_error_component_is_exactly_what_the_error_handler_writes(schema):
    assert schema["components"]["schemas"]["Error"] == ERROR_SCHEMA
    assert set(error_body("c", "m")["error"]) == set(ERROR_SCHEMA["properties"]["error"]["required"])

    class Nested(serializers.Serializer):
        class Inner(serializers.Serializer):
            email = serializers.EmailField()

        inner = Inner()
        tags = serializers.ListField(child=serializers.ChoiceField(choices=["a"]))

    nested = Nested(data={"inner": {"email": "nope"}, "tags": ["b"]})
    assert not nested.is_valid()
    raised = [
        exceptions.ValidationError(nested.errors),
        exceptions.ValidationError(["one", "two"]),
        exceptions.ParseError(),
        exceptions.NotAuthenticated(),
        exceptions.AuthenticationFailed({"detail": "Token is invalid", "code": "token_not_valid"}),
        exceptions.PermissionDenied("This request needs the scope members:write.", code="missing_scope"),
        exceptions.NotFound(),
        Http404(),
        exceptions.Throttled(wait=12),
        ApplicationError("Give the key a name.", field="name"),
        ApplicationError("In progress.", code="idempotency_in_progress", status=409),
        RuntimeError("boom"),
    ]
    for exc in raised:
        response = exception_handler(exc, {})
        body = json.loads(json.dumps(response.data))
        jsonschema.validate(body, ERROR_SCHEMA)
        assert response.status_code >= 400


# --- robustness for views and credentials added later ------------------------------------------


class _WidgetTokenAuthentication(BaseAuthentication):
    """A token of a kind the schema has no extension for."""

    def authenticate(self, request):
        return None

    def authenticate_header(self, request):
        return 'Bearer realm="api"'


class WidgetListApi(OrganizationAPIView):
    authentication_classes = [*OrganizationAPIView.authentication_classes, _WidgetTokenAuthentication]
    required_scopes = {"GET": "organization:read"}

    class OutputSerializer(serializers.Serializer):
        id = serializers.UUIDField()
        extra = serializers.JSONField(allow_null=True)

    def get_org_queryset(self):
        return Membership.objects.unscoped("test: inspects rows directly").all()

    @extend_schema(responses=OutputSerializer(many=True))
    def get(self, request):
        return Response({"next": None, "previous": None, "results": []})


class WidgetDetailApi(OrganizationAPIView):
    required_scopes = {"GET": "organization:read"}  # no scope for DELETE: every DELETE is refused

    def get_org_queryset(self):
        return Membership.objects.unscoped("test: inspects rows directly").all()

    @extend_schema(responses={204: None})
    def delete(self, request, widget_id):
        return Response(status=204)


def _generate(*patterns):
    GENERATOR_STATS.reset()
    with GENERATOR_STATS.silence():
        document = SchemaGenerator(patterns=list(patterns)).get_schema(request=None, public=True)
    return document


def test_an_authentication_class_without_an_extension_is_described_not_a_failure():
    document = _generate(path("api/v1/widgets", WidgetListApi.as_view()))
    assert not GENERATOR_STATS, "schema generation warned"
    scheme = document["components"]["securitySchemes"]["_WidgetTokenAuthentication"]
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    security = document["paths"]["/api/v1/widgets"]["get"]["security"]
    assert {"_WidgetTokenAuthentication": ["organization:read"]} in security
    # A later view gets the conventions with nothing but its serializers declared.
    operation = document["paths"]["/api/v1/widgets"]["get"]
    assert operation["x-required-scopes"] == ["organization:read"]
    assert {"limit", "cursor"} <= {p["name"] for p in operation["parameters"]}


def test_a_nullable_json_field_accepts_null_and_any_value():
    document = _generate(path("api/v1/widgets", WidgetListApi.as_view()))
    extra = document["components"]["schemas"]["WidgetList"]["properties"]["extra"]
    for value in (None, {"a": 1}, [1], "text"):
        jsonschema.validate(value, extra)


def test_a_handled_method_without_a_scope_is_a_schema_warning():
    _generate(path("api/v1/widgets/<uuid:widget_id>", WidgetDetailApi.as_view()))
    assert GENERATOR_STATS
    assert any("declares no scope" in message for message in GENERATOR_STATS._warn_cache)
    GENERATOR_STATS.reset()


# --- the docs page ---------------------------------------------------------------------------------


class _References(HTMLParser):
    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for name in ("src", "href"):
            if attrs.get(name) and tag in ("script", "link", "img", "a", "iframe", "source"):
                self.urls.append(attrs[name])


def docs_references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    return parser.urls


def assert_no_outside_reference(html: str) -> list[str]:
    """Every script, stylesheet and image of the page is one of ours under /static/; returns them."""
    assert not re.search(r"""(?:https?:)?//[\w.-]+\.[a-z]{2,}""", html, flags=re.IGNORECASE), "absolute URL in the page"
    references = docs_references(html)
    assert references, "the page references no assets"
    for url in references:
        parts = urlsplit(url)
        assert not parts.scheme and not parts.netloc, f"outside reference: {url}"
        assert parts.path.startswith("/static/"), f"not a local static asset: {url}"
    return references


@pytest.mark.django_db
def test_docs_page_loads_only_local_assets(client):
    response = client.get(DOCS_URL)
    assert response.status_code == 200
    html = response.content.decode()
    assert "swagger-ui" in html and SCHEMA_URL in html
    references = assert_no_outside_reference(html)
    assert any(url.endswith("swagger-ui-bundle.js") for url in references)
    for url in references:
        asset = client.get(url)
        assert asset.status_code == 200, url
        assert b"".join(asset.streaming_content if asset.streaming else [asset.content]), url


def test_collectstatic_includes_the_docs_assets(settings, tmp_path):
    """The production storage (hashed, compressed) collects the sidecar's assets and resolves their references."""
    settings.STATIC_ROOT = tmp_path
    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
    }
    call_command("collectstatic", "--noinput", verbosity=0)
    manifest = json.loads((tmp_path / "staticfiles.json").read_text())["paths"]
    for name in ("swagger-ui-bundle.js", "swagger-ui-standalone-preset.js", "swagger-ui.css", "favicon-32x32.png"):
        hashed = manifest[f"drf_spectacular_sidecar/swagger-ui-dist/{name}"]
        assert (tmp_path / hashed).is_file()


def test_oauth_tokens_are_described_as_the_authorization_code_flow_with_every_scope():
    from django.test import Client

    from accounts.scopes import SCOPES

    schema = Client().get("/api/v1/schema/?format=json").json()
    oauth = schema["components"]["securitySchemes"]["OAuth2"]
    assert oauth["type"] == "oauth2"
    assert list(oauth["flows"]) == ["authorizationCode"]
    flow = oauth["flows"]["authorizationCode"]
    assert (flow["authorizationUrl"], flow["tokenUrl"]) == ("/oauth/authorize", "/oauth/token")
    assert set(flow["scopes"]) == set(SCOPES)
    members = schema["paths"]["/api/v1/members"]["get"]
    assert {"OAuth2": ["members:read"]} in members["security"]
