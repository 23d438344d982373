"""The AutoSchema: drf-spectacular's, plus the conventions of docs/api.md
(see jagcall/kernel/api/schema/__init__.py for the contract)."""

from __future__ import annotations

import copy
import re
from http import HTTPStatus

import uritemplate
from drf_spectacular import openapi
from drf_spectacular.drainage import warn
from drf_spectacular.plumbing import ResolvedComponent, force_instance, get_class
from rest_framework.settings import api_settings

from jagcall.kernel.api.registry import is_organization_view
from jagcall.kernel.api.schema.components import (
    ERROR_SCHEMA,
    HEADERS,
    IDEMPOTENCY_KEY_PARAMETER,
    RATE_LIMIT_HEADERS,
    Convention,
)
from jagcall.kernel.api.schema.responses import error_responses


def _component_name(cls: type) -> str:
    """A unique, readable component name from where the serializer is declared.

    Our serializers nest in their views (``ApiKeyListApi.InputSerializer``) or
    in one another (``MeApi.OutputSerializer.UserSerializer``), so the class
    name alone repeats. The qualified name does not: ``Api``, ``Serializer``,
    ``Input`` and ``Output`` are dropped from its parts (``ApiKeyListApi.
    InputSerializer`` becomes ``ApiKeyList``, then ``ApiKeyListRequest`` as a
    request body).
    """
    parts = [part for part in cls.__qualname__.split(".") if "<" not in part] or [cls.__name__]
    words = []
    for index, part in enumerate(parts):
        last = index == len(parts) - 1
        if not last and part.endswith("Api"):
            part = part[: -len("Api")]
        part = part.removesuffix("Serializer")
        part = re.sub(r"(Input|Output)$", "", part)
        words.append(part)
    return "".join(words) or cls.__name__


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema plus the conventions of docs/api.md (see the module docstring)."""

    # --- what the view declares ---

    def required_scope(self) -> str | None:
        scopes = getattr(self.view, "required_scopes", None)
        if not isinstance(scopes, dict):
            return None
        scope = scopes.get(self.method)
        if scope is None and self.method in ("HEAD", "OPTIONS"):
            scope = scopes.get("GET")
        return scope

    def get_serializer_name(self, serializer, direction):
        return _component_name(get_class(serializer))

    def get_paginated_name(self, serializer_name: str) -> str:
        # ``AuditEventListApi.OutputSerializer`` is ``AuditEventList``: its page is ``PaginatedAuditEventList``.
        return f"Paginated{serializer_name.removesuffix('List')}List"

    def _get_paginator(self):
        # Every list is cursor-paginated (docs/api.md, Lists), also in views that page by hand.
        pagination_class = getattr(self.view, "pagination_class", None) or api_settings.DEFAULT_PAGINATION_CLASS
        return pagination_class() if pagination_class else None

    def _get_request_for_media_type(self, serializer, direction="request"):
        # Our PATCH handlers validate their InputSerializer in full: the fields
        # they take are required. drf-spectacular would describe every PATCH
        # body as partial; a view whose PATCH is partial says so with
        # @extend_schema(request=InputSerializer(partial=True)).
        instance = force_instance(serializer)
        if self.method == "PATCH" and getattr(instance, "partial", True) is False:
            self.method = "PUT"
            try:
                return super()._get_request_for_media_type(instance, direction)
            finally:
                self.method = "PATCH"
        return super()._get_request_for_media_type(serializer, direction)

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # A nullable "any value" field (JSONField(allow_null=True)) comes out as
        # oneOf [{}, null], which no null satisfies (it matches both): any value it is.
        if isinstance(schema.get("oneOf"), list) and {} in schema["oneOf"]:
            del schema["oneOf"]
        # drf-spectacular leaves out that a list must not be empty.
        if getattr(field, "allow_empty", True) is False and schema.get("type") in ("array", ["array", "null"]):
            schema["minItems"] = max(1, schema.get("minItems", 0))
        return schema

    def _resolve_path_parameters(self, variables):
        parameters = super()._resolve_path_parameters(variables)
        for parameter in parameters:
            if parameter.get("schema", {}).get("format") == "uuid" and not parameter.get("description"):
                parameter["description"] = (
                    "The object's id. An id of another organization answers 404, like one that does not exist."
                )
        return parameters

    # --- what the conventions add ---

    def get_operation(self, path, path_regex, path_prefix, method, registry):
        operation = super().get_operation(path, path_regex, path_prefix, method, registry)
        if operation is None:
            return None
        # Organization-bound (a registered base, e.g. OrganizationAPIView): rate-limited per caller,
        # scoped, Idempotency-Key on POST.
        organization_view = is_organization_view(self.view)
        idempotent = organization_view and self.method == "POST"
        scope = self.required_scope()
        if scope is None and isinstance(getattr(self.view, "required_scopes", None), dict):
            warn(
                f"{type(self.view).__name__} handles {self.method} but declares no scope for it in "
                "required_scopes, so every such request is refused. Add the scope (accounts/scopes.py)."
            )

        notes = []
        if scope:
            notes.append(f"**Scope:** `{scope}`. A credential without it gets a 403 `missing_scope`.")
            operation["x-required-scopes"] = [scope]
            operation["security"] = [
                {name: list(scopes) or [scope] for name, scopes in requirement.items()}
                for requirement in operation.get("security", [])
            ]
        if idempotent:
            notes.append("Send an `Idempotency-Key` header so that a retry runs once.")
            parameters = [p for p in operation.get("parameters", []) if p.get("name") != "Idempotency-Key"]
            operation["parameters"] = sorted(
                [*parameters, copy.deepcopy(IDEMPOTENCY_KEY_PARAMETER)], key=lambda p: p["name"]
            )
        if notes:
            operation["description"] = "\n\n".join([operation.get("description", ""), *notes]).strip()

        operation["responses"] = self._with_conventions(operation, organization_view, idempotent)
        return operation

    def _register_shared_components(self) -> None:
        self.registry.register_on_missing(
            ResolvedComponent(name="Error", type=ResolvedComponent.SCHEMA, object=Convention, schema=ERROR_SCHEMA)
        )
        for name, header in HEADERS.items():
            self.registry.register_on_missing(
                ResolvedComponent(name=name, type=ResolvedComponent.HEADER, object=Convention, schema=header)
            )

    def _filter_parameters(self, operation: dict) -> list[str]:
        """Query parameters a request may get wrong (the paginator's own never answer 400)."""
        paginator = self._get_paginator() if self._is_list_view() else None
        own = {getattr(paginator, "cursor_query_param", None), getattr(paginator, "page_size_query_param", None)}
        return [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query" and p["name"] not in own]

    def _error_responses(self, operation: dict, organization_view: bool, idempotent: bool) -> dict[str, dict]:
        return error_responses(
            method=self.method,
            scope=self.required_scope(),
            has_filters=bool(self._filter_parameters(operation)),
            has_path_ids=bool(uritemplate.variables(self.path)),
            is_list=self._is_list_view(),
            organization_view=organization_view,
            idempotent=idempotent,
        )

    def _with_conventions(self, operation: dict, organization_view: bool, idempotent: bool) -> dict:
        self._register_shared_components()
        responses = {str(code): response for code, response in operation["responses"].items()}
        for code, response in self._error_responses(operation, organization_view, idempotent).items():
            responses.setdefault(code, response)
        for code, response in responses.items():
            if "$ref" in response:
                continue
            if not response.get("description") and code.isdigit():
                response["description"] = HTTPStatus(int(code)).phrase
            names = ["X-Request-ID"]
            if organization_view:
                names += RATE_LIMIT_HEADERS
                if code == "429":
                    names.append("Retry-After")
            if idempotent and code.startswith("2"):
                names.append("Idempotent-Replayed")
            headers = response.setdefault("headers", {})
            for name in names:
                headers.setdefault(name, {"$ref": f"#/components/headers/{name}"})
        return dict(sorted(responses.items()))
