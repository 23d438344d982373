"""The API's OpenAPI schema: the conventions of docs/api.md, generated from the views.

Contract:
- A view declares only its serializers (``@extend_schema(request=…, responses=…)``
  on each handler). ``AutoSchema`` adds everything the conventions imply,
  from the view itself, so an endpoint added later is documented the same
  way without more code:
  - the scope each method needs (``required_scopes``, accounts/scopes.py): in
    the description, as ``x-required-scopes`` and in each security
    requirement (OpenAPI 3.1 lets a bearer requirement name the roles it needs);
  - the error responses, all referencing the one ``Error`` component, which is
    exactly what jagcall/kernel/api/errors.py writes: 400 (field details) on writes
    and on reads with query parameters beyond the paginator's,
    401, 403 (``missing_scope``), 404 for ids in the path and for lists (a bad
    cursor), 409 and 503 for the Idempotency-Key of organization-bound POSTs,
    429 with Retry-After;
  - RateLimit-* headers on the responses of organization-bound views (the
    ones the limiter counts), X-Request-ID on every response;
  - the optional Idempotency-Key request header on organization-bound POSTs;
  - cursor pagination (``limit``, ``cursor``) on every list response.
- Authentication classes are described by OpenApiAuthenticationExtension
  classes (API keys, JWTs and the portal session below). A class without one of its own is
  described by ``FallbackScheme`` from what it answers, so adding a class to
  a view never breaks schema generation.
- A handled method without a scope in ``required_scopes`` is refused at run
  time (accounts/permissions.py); the schema warns about it, so
  ``manage.py spectacular --validate --fail-on-warn`` catches it.

Imported at startup by jagcall/kernel/api/apps.py, which registers the extensions.
"""

from __future__ import annotations

import copy
import inspect
import re
from http import HTTPStatus

import uritemplate
from django.conf import settings
from drf_spectacular import openapi
from drf_spectacular.drainage import warn
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import ResolvedComponent, force_instance, get_class
from rest_framework.authentication import SessionAuthentication
from rest_framework.settings import api_settings

API_PREFIX = "/api/v1/"
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


def only_public_api(endpoints, **kwargs):
    """Preprocessing hook: the schema describes the public API under /api/v1/ and nothing else."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith(API_PREFIX)]


# --- the components every operation shares ---------------------------------------


class _Convention:
    """The identity under which the shared components are registered (one object, no collisions)."""


ERROR_SCHEMA = {
    "type": "object",
    "description": "The one shape of every 4xx and 5xx answer (docs/api.md, Errors).",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": (
                        "Stable and machine-readable: invalid, parse_error, not_authenticated, permission_denied, "
                        "missing_scope, not_found, throttled, idempotency_key_reused, server_error, or a more "
                        "specific one such as otp_required."
                    ),
                },
                "message": {"type": "string", "description": "Written for a person: says what to fix."},
                "details": {
                    "type": "object",
                    "description": 'Field errors of a validation error ({"field": ["message", ...]}); else empty.',
                    "additionalProperties": {"type": "array", "items": {"type": "string"}},
                },
            },
            "required": ["code", "message", "details"],
            "additionalProperties": False,
        }
    },
    "required": ["error"],
    "additionalProperties": False,
}

HEADERS = {
    "X-Request-ID": {
        "description": "The request's id: quote it to support.",
        "required": True,
        "schema": {"type": "string"},
    },
    "RateLimit-Limit": {
        "description": "Requests of this kind (reads, or writes) allowed per window for this caller.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Remaining": {
        "description": "Requests of this kind left in the current window.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "RateLimit-Reset": {
        "description": "Seconds until the oldest counted request leaves the window, freeing a slot.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "Retry-After": {
        "description": "Seconds to wait before retrying.",
        "required": True,
        "schema": {"type": "integer", "minimum": 0},
    },
    "Idempotent-Replayed": {
        "description": "`true` when this is the stored answer to an earlier request with the same Idempotency-Key.",
        "schema": {"type": "string", "enum": ["true"]},
    },
}
RATE_LIMIT_HEADERS = ("RateLimit-Limit", "RateLimit-Remaining", "RateLimit-Reset")

IDEMPOTENCY_KEY_PARAMETER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Makes a retry of this request run once: 1-255 printable ASCII characters, e.g. a UUID. The first "
        "successful answer is kept for 24 hours and replayed for the same request (docs/api.md, Idempotency)."
    ),
    # Header values lose surrounding spaces on the wire: the key starts and ends with a visible character.
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": r"^[!-~]([ -~]*[!-~])?$"},
}


def _error(description: str, example: dict | None = None) -> dict:
    media = {"schema": {"$ref": "#/components/schemas/Error"}}
    if example is not None:
        media["example"] = {"error": {"details": {}, **example}}
        media["example"]["error"]["details"] = media["example"]["error"].pop("details")  # code, message, details
    return {"description": description, "content": {"application/json": media}}


# --- the AutoSchema --------------------------------------------------------------------


def _is_organization_view(view) -> bool:
    """Organization-bound (OrganizationAPIView): rate-limited per caller, scoped, Idempotency-Key on POST."""
    from accounts.api.base import OrganizationAPIView

    return isinstance(view, OrganizationAPIView)


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
        organization_view = _is_organization_view(self.view)
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
            ResolvedComponent(name="Error", type=ResolvedComponent.SCHEMA, object=_Convention, schema=ERROR_SCHEMA)
        )
        for name, header in HEADERS.items():
            self.registry.register_on_missing(
                ResolvedComponent(name=name, type=ResolvedComponent.HEADER, object=_Convention, schema=header)
            )

    def _filter_parameters(self, operation: dict) -> list[str]:
        """Query parameters a request may get wrong (the paginator's own never answer 400)."""
        paginator = self._get_paginator() if self._is_list_view() else None
        own = {getattr(paginator, "cursor_query_param", None), getattr(paginator, "page_size_query_param", None)}
        return [p["name"] for p in operation.get("parameters", []) if p.get("in") == "query" and p["name"] not in own]

    def _error_responses(self, operation: dict, organization_view: bool, idempotent: bool) -> dict[str, dict]:
        method = self.method
        errors = {}
        if method not in WRITE_METHODS and self._filter_parameters(operation):
            errors["400"] = _error(
                "A query parameter is invalid: `details` lists each one's errors.",
                {
                    "code": "invalid",
                    "message": "Check these fields: since. Enter a valid date/time.",
                    "details": {"since": ["Enter a valid date/time."]},
                },
            )
        if method in WRITE_METHODS:
            if method in BODY_METHODS:
                description = (
                    "The request is invalid: `details` lists each field's errors. Malformed JSON is a "
                    "`parse_error`."
                )
            else:
                description = "The request cannot be done as it stands; the message says why."
            if idempotent:
                description += " A malformed Idempotency-Key is an `idempotency_key_invalid`."
            errors["400"] = _error(
                description,
                {
                    "code": "invalid",
                    "message": "Check these fields: name. This field is required.",
                    "details": {"name": ["This field is required."]},
                },
            )
        scope = self.required_scope()
        if organization_view:
            errors["401"] = _error(
                "Not authenticated: no credential, or one that is invalid, expired, revoked or bound to an "
                "organization that is no longer active.",
                {
                    "code": "not_authenticated",
                    "message": "Authenticate with a credential bound to an active organization.",
                },
            )
            errors["403"] = _error(
                "Not allowed: the credential lacks the scope this operation needs (`missing_scope`, the message "
                "names it), or the person behind it holds no role allowed to do this.",
                {"code": "missing_scope", "message": f"This request needs the scope {scope}."} if scope else None,
            )
        else:
            errors["401"] = _error("The credentials given were not accepted; the message says why.")
            errors["403"] = _error("Not allowed; the message says why and what to do.")
        if uritemplate.variables(self.path) or self._is_list_view():
            errors["404"] = _error(
                "Not found: the id does not exist or belongs to another organization"
                + (", or the `cursor` is not valid." if self._is_list_view() else "."),
                {"code": "not_found", "message": "Not found. It does not exist or belongs to another organization."},
            )
        if idempotent:
            errors["409"] = _error(
                "Idempotency-Key conflict: `idempotency_key_reused` (the key was used for a different request), "
                "`idempotency_in_progress` (the first request with it is still running) or "
                "`idempotency_replay_unavailable` (it succeeded, but its answer showed a secret once).",
                {
                    "code": "idempotency_key_reused",
                    "message": "This Idempotency-Key was already used for a different request. Use a new key "
                    "for a new request.",
                },
            )
        if organization_view:
            errors["429"] = _error(
                "Too many requests for this caller's rate limit; `Retry-After` says how many seconds to wait.",
                {"code": "throttled", "message": "Request was throttled. Expected available in 12 seconds."},
            )
        else:
            errors["429"] = _error("Too many attempts; wait a few minutes, then try again.")
        if idempotent:
            errors["503"] = _error(
                "`idempotency_unavailable`: a request with an Idempotency-Key cannot be guarded right now and was "
                "not run. Retry shortly.",
                {
                    "code": "idempotency_unavailable",
                    "message": "Requests with an Idempotency-Key cannot be accepted right now. Retry shortly.",
                },
            )
        return errors

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


# --- authentication schemes ------------------------------------------------------------


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.api_keys.authentication.ApiKeyAuthentication"
    match_subclasses = True
    name = "ApiKeyAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "jc_live_<prefix>_<secret>",
            "description": (
                "An API key of one organization: `Authorization: Bearer jc_live_…`. Owners and admins create "
                "keys and choose their scopes; the secret is shown once."
            ),
        }


class OrganizationJWTScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.jwt.authentication.OrganizationJWTAuthentication"
    match_subclasses = True
    priority = 1  # above drf-spectacular's own simplejwt scheme
    name = "JwtAuth"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": (
                "A person's access token for one organization, from `POST /api/v1/auth/token` (15 minutes; "
                "renew it with `POST /api/v1/auth/token/refresh`). It carries the scopes the person's role allows."
            ),
        }


class OAuthScheme(OpenApiAuthenticationExtension):
    """Access tokens of OAuth applications (accounts/oauth/authentication.py), with the one flow the server offers."""

    target_class = "accounts.oauth.authentication.OAuthAccessTokenAuthentication"
    match_subclasses = True
    optional = True  # if the class moves, FallbackScheme describes it instead of a warning
    name = "OAuth2"

    def get_security_definition(self, auto_schema):
        from accounts.scopes import SCOPES

        return {
            "type": "oauth2",
            "description": (
                "For applications that act for a person: authorization code with PKCE (S256 only), "
                "`Authorization: Bearer jc_oat_…`. The token acts in the organization the person chose at "
                "consent, with the scopes they gave that their role allows. See docs/api.md, OAuth 2.0."
            ),
            "flows": {
                "authorizationCode": {
                    "authorizationUrl": "/oauth/authorize",
                    "tokenUrl": "/oauth/token",
                    "refreshUrl": "/oauth/token",
                    "scopes": {scope: label for scope, (_action, label) in SCOPES.items()},
                }
            },
        }


class OrganizationSessionScheme(OpenApiAuthenticationExtension):
    """The portal's signed-in session, naming its organization in a header (accounts/api/session.py)."""

    target_class = "accounts.api.session.OrganizationSessionAuthentication"
    match_subclasses = True
    optional = True  # if the class moves, FallbackScheme describes it instead of a warning
    name = ["SessionAuth", "OrganizationHeader"]

    def get_security_definition(self, auto_schema):
        return [
            {
                "type": "apiKey",
                "in": "cookie",
                "name": settings.SESSION_COOKIE_NAME,
                "description": (
                    "The portal's signed-in session (for the portal's own pages and exploring the API in a "
                    "browser). Unsafe methods must send Django's CSRF token in `X-CSRFToken`."
                ),
            },
            {
                "type": "apiKey",
                "in": "header",
                "name": "X-Organization",
                "description": "With a session: the slug or id of the organization the request acts on.",
            },
        ]


class FallbackScheme(OpenApiAuthenticationExtension):
    """Any authentication class without an extension of its own, described from what it answers.

    The lowest priority: a class's own extension (here, in drf-spectacular or
    next to the class) always wins over this one.
    """

    target_class = "rest_framework.authentication.BaseAuthentication"
    match_subclasses = True
    priority = -1

    def __init__(self, target):
        super().__init__(target)
        self.name = get_class(target).__name__

    def get_security_definition(self, auto_schema):
        doc = inspect.getdoc(get_class(self.target)) or ""
        description = doc.split("\n\n")[0].replace("\n", " ").strip()
        if isinstance(self.target, SessionAuthentication) or (
            inspect.isclass(self.target) and issubclass(self.target, SessionAuthentication)
        ):
            definition = {"type": "apiKey", "in": "cookie", "name": settings.SESSION_COOKIE_NAME}
        else:
            try:
                challenge = force_instance(self.target).authenticate_header(auto_schema.view.request) or ""
            except Exception:  # the class is only asked, never trusted to answer
                challenge = ""
            word = challenge.split(" ", 1)[0].lower()
            if word in {"bearer", "basic", "digest"}:
                definition = {"type": "http", "scheme": word}
            else:
                definition = {"type": "apiKey", "in": "header", "name": "Authorization"}
        if description:
            definition["description"] = description
        return definition
