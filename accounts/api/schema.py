"""How the OpenAPI schema describes accounts' API: which views are
organization-bound, and the authentication classes of each credential.

The schema's kernel (jagcall/kernel/api/schema/) imports no app; accounts tells
it what it needs from ``AccountsConfig.ready()``, which imports this module:
drf-spectacular registers each extension class below when it is defined, and
``register()`` declares OrganizationAPIView organization-bound (rate-limit
headers, Idempotency-Key on POST, the 401/403/429 answers of docs/api.md).
"""

from __future__ import annotations

from django.conf import settings
from drf_spectacular.extensions import OpenApiAuthenticationExtension

from jagcall.kernel.api.registry import register_organization_view


def register() -> None:
    """Called from AccountsConfig.ready(). A dotted path: the API stack is imported when the schema is built."""
    register_organization_view("accounts.api.base.OrganizationAPIView")


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
        from accounts.scopes import SCOPES  # read when the schema is built, after every app is ready

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
