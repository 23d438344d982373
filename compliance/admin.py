"""The back office: every organization's audit events (and the platform's), read-only."""

from __future__ import annotations

import datetime as dt
import json

from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Max, Min
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.html import format_html

from compliance.models import AuditChainCheckpoint, AuditEvent, AuditEventQuerySet, DoNotCallEntry
from jagcall.kernel.admin import BACK_OFFICE, ReadOnlyModelAdmin

# django-auditlog is used only for its model diff (compliance/diff.py); its LogEntry
# table is never written, so its admin page would only mislead.
try:
    from auditlog.models import LogEntry
except ImportError:  # pragma: no cover
    LogEntry = None
if LogEntry is not None and admin.site.is_registered(LogEntry):
    admin.site.unregister(LogEntry)


# --- staying fast on millions of rows -------------------------------------------------------


class _BackOfficeQuerySet(AuditEventQuerySet):
    """The date drill-down without a DISTINCT over the whole table.

    Django's date hierarchy asks for every distinct year (month, day) of the
    filtered rows; here the periods between the first and the last event are
    offered instead (two index probes), some of which may hold no event.
    """

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None):
        bounds = self.order_by().aggregate(first=Min(field_name), last=Max(field_name))
        first, last = bounds["first"], bounds["last"]
        if first is None:
            return []
        tz = tzinfo or timezone.get_current_timezone()
        first, last = first.astimezone(tz), last.astimezone(tz)
        current = first.replace(month=1 if kind == "year" else first.month, day=1 if kind in ("year", "month") else first.day,
                                hour=0, minute=0, second=0, microsecond=0)
        periods = []
        while current <= last and len(periods) < 400:
            periods.append(current)
            if kind == "year":
                current = current.replace(year=current.year + 1)
            elif kind == "month":
                current = (current.replace(day=28) + dt.timedelta(days=4)).replace(day=1)
            else:
                current = current + dt.timedelta(days=1)
        return periods if order == "ASC" else list(reversed(periods))


class _EstimatedCountPaginator(Paginator):
    """The unfiltered list's total from PostgreSQL's statistics instead of COUNT(*) over millions of rows."""

    @cached_property
    def count(self):
        query = getattr(self.object_list, "query", None)
        if query is not None and not query.where:
            with connection.cursor() as cursor:
                cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [AuditEvent._meta.db_table])
                row = cursor.fetchone()
            if row and row[0] > 100_000:
                return int(row[0])
        return super().count


class RecentActionFilter(admin.SimpleListFilter):
    """Filter by action, offering the actions of the newest events (no DISTINCT over the whole table)."""

    title = "action"
    parameter_name = "action"

    def lookups(self, request, model_admin):
        recent = AuditEvent.objects.unscoped("the back office's list of recent actions, every organization").order_by("-occurred_at", "-id").values_list("action", flat=True)[:5000]
        return [(action, action) for action in sorted(set(recent))]

    def queryset(self, request, queryset):
        return queryset.filter(action=self.value()) if self.value() else queryset


@admin.register(AuditEvent)
class AuditEventAdmin(ReadOnlyModelAdmin):
    list_display = ("occurred_at", "organization_name", "actor_label", "actor_type", "action", "resource", "outcome", "ip")
    list_filter = ("outcome", "actor_type", RecentActionFilter)
    search_fields = (
        "organization__name", "=organization__slug", "actor_label", "=actor_key", "action", "=resource_id", "=ip",
        "=request_id", "=id",
    )
    date_hierarchy = "occurred_at"
    list_select_related = ("organization",)
    show_full_result_count = False  # a count of millions of rows on every page helps nobody
    paginator = _EstimatedCountPaginator
    list_per_page = 50
    ordering = ("-occurred_at", "-id")  # the global time index (audit_evt_time_idx)
    fields = (
        "id", "occurred_at", "organization", "seq", "action", "outcome", "actor_type", "actor", "actor_key",
        "actor_label", "api_key_prefix", "resource_type", "resource_id", "ip", "user_agent", "request_id",
        "changes_display", "metadata_display", "prev_hash", "hash",
    )
    readonly_fields = fields

    @admin.display(description="organization", ordering="organization__name")
    def organization_name(self, obj):
        return obj.organization.name if obj.organization_id else "— platform —"

    @admin.display(description="resource")
    def resource(self, obj):
        return f"{obj.resource_type}:{obj.resource_id}" if obj.resource_type else ""

    @admin.display(description="changes")
    def changes_display(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.changes, indent=2, ensure_ascii=False)) if obj.changes else "—"

    @admin.display(description="metadata")
    def metadata_display(self, obj):
        return format_html("<pre>{}</pre>", json.dumps(obj.metadata, indent=2, ensure_ascii=False)) if obj.metadata else "—"

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        return _BackOfficeQuerySet(model=queryset.model, query=queryset.query, using=queryset.db).unscoped(BACK_OFFICE)

    def get_search_results(self, request, queryset, search_term):
        queryset, _dupes = super().get_search_results(request, queryset, search_term)
        return queryset, False  # every lookup is to-one: no duplicates


@admin.register(AuditChainCheckpoint)
class AuditChainCheckpointAdmin(ReadOnlyModelAdmin):
    list_display = ("created_at", "organization", "seq", "events_purged", "occurred_at")
    search_fields = ("organization__name", "=organization__slug")
    list_select_related = ("organization",)
    date_hierarchy = "created_at"
    readonly_fields = ("organization", "seq", "hash", "occurred_at", "events_purged", "created_at")
    fields = readonly_fields


@admin.register(DoNotCallEntry)
class DoNotCallEntryAdmin(ReadOnlyModelAdmin):
    """Support sees that an organization's list exists and who added what; the numbers stay on its own pages.

    Entries change only through compliance.services (audited), from the portal or the API.
    """

    list_display = ("id", "organization", "reason", "source", "added_by", "created_at")
    list_filter = ("reason", "source")
    list_select_related = ("organization",)
    fields = ("id", "organization", "reason", "source", "added_by", "created_at")
    readonly_fields = fields
    ordering = ("-created_at",)
    show_full_result_count = False
