"""Portal pages of the audit log: the filtered list and its exports (owners and admins)."""

from __future__ import annotations

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views import View

from accounts.mixins import OrganizationViewMixin
from compliance import exports, selectors, services
from compliance.digests import latest_digest
from compliance.forms import AuditEventFilterSet

_CURSOR_PARAMS = ("after", "before")


def _query_without_cursor(request) -> str:
    query = request.GET.copy()
    for name in _CURSOR_PARAMS:
        query.pop(name, None)
    return query.urlencode()


class AuditEventListView(OrganizationViewMixin, View):
    """The organization's audit events, newest first, filtered, a keyset page at a time."""

    permission_required = "audit.view"
    template_name = "audit/event_list.html"

    def get(self, request, org_slug):
        filterset = AuditEventFilterSet(request.GET or None)
        status = 200
        page = selectors.EventPage(events=[], next_cursor=None, previous_cursor=None)
        filters: dict = {}
        if filterset.is_bound and not filterset.is_valid():
            status = 400
        else:
            filters = filterset.cleaned_filters() if filterset.is_bound else {}
            queryset = selectors.audit_event_list(organization=self.organization, filters=filters)
            try:
                page = selectors.audit_event_page(
                    queryset=queryset, after=request.GET.get("after"), before=request.GET.get("before")
                )
            except ValueError:  # a cursor that is not ours: start from the newest
                page = selectors.audit_event_page(queryset=queryset)
            services.audit_record_read(request=request, organization=self.organization, filters=filters, via="portal")
        query = _query_without_cursor(request)
        context = {
            "filterset": filterset,
            "form": filterset.form,
            "events": page.events,
            "page": page,
            "filtered": bool(filters),
            "query": query,
            "query_prefix": f"{query}&" if query else "",
        }
        return render(request, self.template_name, context, status=status)


class AuditEventExportView(OrganizationViewMixin, View):
    """The filtered events as a CSV or JSON Lines download, streamed; the export itself is recorded."""

    permission_required = "audit.view"
    export_format = "csv"
    _FORMATS = {
        "csv": ("text/csv; charset=utf-8", exports.csv_chunks),
        "jsonl": ("application/x-ndjson; charset=utf-8", exports.jsonl_chunks),
    }

    def get(self, request, org_slug):
        filterset = AuditEventFilterSet(request.GET or None)
        if filterset.is_bound and not filterset.is_valid():
            errors = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in filterset.form.errors.items())
            return HttpResponseBadRequest(f"Invalid filters: {errors}", content_type="text/plain; charset=utf-8")
        filters = filterset.cleaned_filters() if filterset.is_bound else {}
        services.audit_record_export(
            request=request, organization=self.organization, filters=filters, export_format=self.export_format
        )
        content_type, render_chunks = self._FORMATS[self.export_format]
        events = selectors.audit_event_iter(
            queryset=selectors.audit_event_list(organization=self.organization, filters=filters)
        )
        # The latest signed digest of the chain's head travels with the export (compliance/digests.py).
        chunks = render_chunks(events, digest=latest_digest(organization_id=self.organization.id))
        if isinstance(request, ASGIRequest):
            chunks = exports.as_async(chunks)
        response = StreamingHttpResponse(chunks, content_type=content_type)
        filename = f"audit-log-{self.organization.slug}-{timezone.now():%Y%m%d-%H%M%S}.{self.export_format}"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        response["X-Content-Type-Options"] = "nosniff"
        return response
