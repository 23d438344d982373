"""Received webhooks in the back office: which provider deliveries arrived, for support to trace a retry."""

from __future__ import annotations

from django.contrib import admin

from jagcall.kernel.admin import ReadOnlyModelAdmin
from jagcall.kernel.webhooks.models import ReceivedWebhook


@admin.register(ReceivedWebhook)
class ReceivedWebhookAdmin(ReadOnlyModelAdmin):
    """Read-only: a row is written with the event's handling and purged after WEBHOOK_DEDUPE_DAYS."""

    list_display = ("received_at", "provider", "event_id", "organization_id")
    list_filter = ("provider",)
    search_fields = ("event_id", "=organization_id")
    ordering = ("-received_at",)
    date_hierarchy = "received_at"
    fields = ("id", "provider", "event_id", "received_at", "organization_id")
    readonly_fields = fields
