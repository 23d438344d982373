"""The back office's view of OAuth: find an application or a token by name or organization.

django-oauth-toolkit registers its (swapped) models itself, with the classes
named in OAUTH2_PROVIDER["*_ADMIN_CLASS"]: these. So they are defined here,
not registered here.

[!!] Read-only, and no secret is ever shown: not the client secret (nor its
hash), not a token's checksum, not an authorization code's hash, not a PKCE
challenge. Support revokes through the services, like the portal does.
"""

from __future__ import annotations

from django.contrib import admin, messages

from jagcall.kernel.admin import ReadOnlyModelAdmin
from accounts.principals import Principal
from accounts.oauth import services

_ORGANIZATION_SEARCH = ("organization__name", "organization__slug")


class ApplicationAdmin(ReadOnlyModelAdmin):
    list_display = ("name", "organization", "client_type", "client_id", "created")
    list_filter = ("client_type", "created")
    search_fields = ("name", "client_id", *_ORGANIZATION_SEARCH)
    list_select_related = ("organization",)
    fields = (
        "id", "name", "organization", "client_id", "client_type", "authorization_grant_type",
        "redirect_uris", "created_by", "created", "updated",
    )
    readonly_fields = fields
    actions = ["revoke_tokens"]

    @admin.action(description="Revoke every token of the selected applications")
    def revoke_tokens(self, request, queryset):
        ended = 0
        for application in queryset.select_related("organization"):
            ended += services.oauth_application_revoke_tokens(
                organization=application.organization, application=application, actor=Principal.support(request.user), request=request
            )
        self.message_user(request, f"{ended} connection(s) ended.", messages.SUCCESS)


class _TokenAdmin(ReadOnlyModelAdmin):
    list_select_related = ("user", "application", "organization")
    search_fields = ("user__email", "application__name", "application__client_id", *_ORGANIZATION_SEARCH)


class GrantAdmin(_TokenAdmin):
    list_display = ("id", "user", "application", "organization", "expires", "used_at")
    fields = ("id", "user", "application", "organization", "scope", "redirect_uri", "expires", "used_at", "created")
    readonly_fields = fields


class AccessTokenAdmin(_TokenAdmin):
    list_display = ("id", "user", "application", "organization", "scope", "expires")
    list_filter = ("expires",)
    fields = ("id", "user", "application", "organization", "scope", "expires", "created", "updated")
    readonly_fields = fields


class RefreshTokenAdmin(_TokenAdmin):
    list_display = ("id", "user", "application", "organization", "created", "revoked", "expires_at")
    list_filter = ("revoked", "expires_at")
    fields = (
        "id", "user", "application", "organization", "token_family", "access_token", "created", "revoked", "expires_at",
    )
    readonly_fields = fields


class IDTokenAdmin(ReadOnlyModelAdmin):
    list_display = ("id", "user", "application", "expires")
    search_fields = ("user__email", "application__name")
    fields = ("id", "user", "application", "scope", "expires", "created")
    readonly_fields = fields
