"""Portal pages of compliance.

The audit log (its filtered list and exports; owners and admins) and the do-not-call list.
"""

from __future__ import annotations

from django.core.handlers.asgi import ASGIRequest
from django.http import HttpResponseBadRequest, StreamingHttpResponse
from django.contrib import messages
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views import View

from accounts.mixins import OrganizationViewMixin
from accounts.views import apply_error
from compliance import exports, selectors, services
from compliance.digests import latest_digest
from compliance.forms import AuditEventFilterSet, DoNotCallAddForm
from compliance.models import DoNotCallSource
from jagcall.kernel.errors import ApplicationError

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


# --- do-not-call ----------------------------------------------------------------------------


class DoNotCallListView(OrganizationViewMixin, View):
    """The organization's do-not-call list and the form to add a number (anyone who places calls)."""

    permission_required = "product.use"
    template_name = "compliance/do_not_call.html"

    def _render(self, request, form=None, status=200):
        context = {
            "entries": selectors.do_not_call_list(organization=self.organization),
            "form": form or DoNotCallAddForm(),
            "can_remove": self.principal.can("compliance.manage"),
        }
        return render(request, self.template_name, context, status=status)

    def get(self, request, org_slug):
        return self._render(request)

    def post(self, request, org_slug):
        form = DoNotCallAddForm(request.POST)
        if form.is_valid():
            try:
                entry = services.do_not_call_add(
                    organization=self.organization,
                    actor=self.principal,
                    number=form.cleaned_data["number"],
                    reason=form.cleaned_data["reason"],
                    source=DoNotCallSource.PORTAL,
                )
            except ApplicationError as error:
                apply_error(form, error)
            else:
                messages.success(request, f"{entry.number} is on the do-not-call list: calls to it are refused.")
                return redirect("compliance:do-not-call-list", org_slug=self.organization.slug)
        return self._render(request, form=form, status=400)


class DoNotCallRemoveView(OrganizationViewMixin, View):
    """Take a number off the list (owners and admins)."""

    permission_required = "compliance.manage"
    http_method_names = ["post"]

    def post(self, request, org_slug, do_not_call_id):
        entry = selectors.do_not_call_get(organization=self.organization, id=do_not_call_id)
        number = entry.number
        try:
            services.do_not_call_remove(organization=self.organization, actor=self.principal, entry=entry)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"{number} is off the do-not-call list: it may be called again.")
        return redirect("compliance:do-not-call-list", org_slug=self.organization.slug)
