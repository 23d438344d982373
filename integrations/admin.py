"""Integrations in the back office (support staff only; see jagcall/kernel/admin.py)."""

from __future__ import annotations

from django.contrib import admin

from integrations.models import ProviderCredential
from jagcall.kernel.admin import ReadOnlyModelAdmin


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(ReadOnlyModelAdmin):
    """[!!] Which organization uses its own account at which provider; never the secret (``values``)."""

    list_display = ("organization", "provider", "last4", "account_sid", "verified_at")
    list_filter = ("provider",)
    list_select_related = ("organization",)
    search_fields = ("organization__name", "organization__slug", "account_sid")
    fields = ("id", "organization", "provider", "last4", "account_sid", "verified_at", "created_at", "updated_at")
    readonly_fields = fields
