"""The REST API: Django REST framework, its rate limits, and the OpenAPI schema."""

from __future__ import annotations

from jagcall.kernel.env import env

# --- REST framework ---------------------------------------------------------
REST_FRAMEWORK = {
    # Organization-bound views set theirs in accounts.api.base.OrganizationAPIView.
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "jagcall.kernel.api.pagination.CursorPagination",
    "PAGE_SIZE": 50,
    "EXCEPTION_HANDLER": "jagcall.kernel.api.errors.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "jagcall.kernel.api.schema.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["jagcall.kernel.api.throttling.SlidingWindowThrottle"],
    "UNAUTHENTICATED_USER": None,
}
# Per credential (API key) or per person (JWT, session), per minute.
API_RATE_LIMIT_READS = env("API_RATE_LIMIT_READS", default=200, cast=int)
API_RATE_LIMIT_WRITES = env("API_RATE_LIMIT_WRITES", default=30, cast=int)
API_RATE_LIMIT_WINDOW_SECONDS = 60
# All of an organization's keys and people together: this many times one caller's budget.
API_RATE_LIMIT_ORGANIZATION_MULTIPLIER = env("API_RATE_LIMIT_ORGANIZATION_MULTIPLIER", default=5, cast=int)

# --- OpenAPI schema of the API (drf-spectacular) -------------------------------
# Served at /api/v1/schema/ with Swagger UI at /api/docs/; the UI's assets come
# from drf-spectacular-sidecar through our own static files, never a CDN.
# jagcall.kernel.api (in settings/apps.py) registers the schema extensions at startup.
SPECTACULAR_SETTINGS = {
    "TITLE": "JagCall API",
    "VERSION": "1.0.0",
    "DESCRIPTION": (
        "The JagCall REST API. Every endpoint follows the conventions in docs/api.md: "
        "credentials in `Authorization: Bearer` only (an API key `jc_live_…` or a JWT from "
        "`POST /api/v1/auth/token`), each bound to one organization; one scope per operation "
        "(listed on each operation as `x-required-scopes`); errors always as "
        '`{"error": {"code", "message", "details"}}`; cursor-paginated lists (`limit`, `cursor`); '
        "rate limits announced in `RateLimit-*` headers; and an optional `Idempotency-Key` on POST."
    ),
    # 3.1: a security requirement may name the scope an http bearer credential needs.
    "OAS_VERSION": "3.1.0",
    "SCHEMA_PATH_PREFIX": r"/api/v[0-9]+",
    "SERVE_INCLUDE_SCHEMA": False,
    "SERVE_PUBLIC": True,
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    # Only the public API: any other DRF view (none today) stays out of the schema.
    "PREPROCESSING_HOOKS": ["jagcall.kernel.api.schema.only_public_api"],
    "COMPONENT_SPLIT_REQUEST": True,
    # Choice sets that share a field name ("status") get a name of their own in the schema.
    "ENUM_NAME_OVERRIDES": {
        "CallStatusEnum": "telephony.models.CallStatus",
        "PipelineStepStatusEnum": "telephony.models.StepStatus",
        "CallDirectionEnum": "telephony.models.CallDirection",
        "MessageStatusEnum": "messaging.models.MessageStatus",
        "MessageDirectionEnum": "messaging.models.Direction",
    },
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # validatorUrl null: Swagger UI would otherwise load a badge from an outside validator.
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None, "persistAuthorization": False},
}
