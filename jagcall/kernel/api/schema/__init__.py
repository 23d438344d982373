"""The API's OpenAPI schema: the conventions of docs/api.md, generated from the views.

Contract:
- A view declares only its serializers (``@extend_schema(request=…, responses=…)``
  on each handler). ``AutoSchema`` adds everything the conventions imply,
  from the view itself, so an endpoint added later is documented the same
  way without more code:
  - the scope each method needs (the view's ``required_scopes``): in
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
- Which views are organization-bound is registered by the app that defines
  their base class (jagcall/kernel/api/registry.py); the kernel imports no app.
- Authentication classes are described by OpenApiAuthenticationExtension
  classes that their app keeps next to them (accounts/api/schema.py: API keys,
  JWTs, OAuth tokens and the portal session). A class without one of its own is
  described by ``FallbackScheme`` from what it answers, so adding a class to
  a view never breaks schema generation.
- A handled method without a scope in ``required_scopes`` is refused at run
  time (OrganizationScopePermission, accounts/scopes.py); the schema warns about it, so
  ``manage.py spectacular --validate --fail-on-warn`` catches it.

Modules: ``components`` (the shared Error component, headers and parameters),
``responses`` (the error answers an operation documents), ``autoschema`` (the
AutoSchema), ``authentication`` (the fallback description of authentication
classes). Imported at startup by jagcall/kernel/api/apps.py, which registers
the extensions.
"""

from __future__ import annotations

from jagcall.kernel.api.schema.authentication import FallbackScheme
from jagcall.kernel.api.schema.autoschema import AutoSchema
from jagcall.kernel.api.schema.components import ERROR_SCHEMA, HEADERS, IDEMPOTENCY_KEY_PARAMETER

__all__ = [
    "API_PREFIX",
    "AutoSchema",
    "ERROR_SCHEMA",
    "FallbackScheme",
    "HEADERS",
    "IDEMPOTENCY_KEY_PARAMETER",
    "only_public_api",
]

API_PREFIX = "/api/v1/"


def only_public_api(endpoints, **kwargs):
    """Preprocessing hook: the schema describes the public API under /api/v1/ and nothing else."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith(API_PREFIX)]
