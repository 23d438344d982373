"""Portal pages: contacts (list and search, create, a contact's page, edit, delete), CSV import and export.

Everyone who uses the product works with contacts (``product.use``). Every rule is a service's
(messaging.services.contacts, messaging.services.imports): its refusals come back onto the field
they concern, with a 4xx status. A contact's page shows its conversations and its calls; calls
are found by the contact's number through the blind index (telephony's calls and contacts use the
same purpose, so index values compare).

An import is previewed before it runs: the upload page keeps the file and shows where it goes
(``contact-import-detail``: the columns' mapping, the first rows, every row's errors); confirming
imports it at once or in Celery, and the same page then shows a progress bar that polls
``contact-import-progress`` (htmx) until the summary.

[!!] The upload view reads the request's body only after ``_limit_upload(request)``: CSRF is
checked by the view itself, after the limit is in place (the middleware would otherwise parse the
upload first).
"""

from __future__ import annotations

from urllib.parse import urlencode
from zoneinfo import available_timezones

from django.contrib import messages
from django.core.files.uploadhandler import FileUploadHandler
from django.core.handlers.asgi import ASGIRequest
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone
from django.views import View
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from accounts.mixins import OrganizationViewMixin
from accounts.tenancy import get_for_org_or_404
from accounts.views import apply_error
from jagcall.kernel.errors import ApplicationError
from messaging.forms import ContactForm, ContactImportForm, ContactSearchForm
from messaging.models import Contact, ContactImport, Conversation, ImportStatus
from messaging.selectors import contacts_for
from messaging.services.contacts import contact_create, contact_delete, contact_time_zone, contact_update
from messaging.services.imports import (
    FIELD_LABELS,
    ImportRefused,
    KNOWN_COLUMNS,
    contact_import_confirm,
    contact_import_discard,
    contact_import_preview,
    contact_import_upload,
    contacts_export,
    failed_rows_csv,
    max_import_bytes,
    too_large_message,
)

PERMISSION = "product.use"
PER_PAGE = 50
CALLS_SHOWN = 20
# Room for the multipart envelope and the form's other fields around the file.
UPLOAD_OVERHEAD_BYTES = 64 * 1024


def _contact(organization, contact_id) -> Contact:
    return get_for_org_or_404(Contact, organization=organization, pk=contact_id)


def _import(organization, import_id) -> ContactImport:
    imports = ContactImport.objects.select_related("created_by")
    return get_for_org_or_404(imports, organization=organization, pk=import_id)


def _time_zones() -> list[str]:
    return sorted(available_timezones())


def _contact_calls(organization, contact: Contact) -> list:
    """The contact's calls, newest first: calls of the organization from or to the contact's number."""
    from telephony.models import Call

    candidates = Call._meta.get_field("from_number_index").candidates(contact.phone, organization_id=organization.id)
    return list(
        Call.objects.for_org(organization)
        .filter(Q(from_number_index__in=candidates) | Q(to_number_index__in=candidates))
        .select_related("agent")
        .order_by("-created_at", "-id")[:CALLS_SHOWN]
    )


def _thread_url(organization, conversation) -> str:
    """The inbox thread of ``conversation``, or "" while the inbox pages are not mounted."""
    try:
        return reverse("messaging:thread", kwargs={"org_slug": organization.slug, "conversation_id": conversation.id})
    except NoReverseMatch:
        return ""


def _contact_conversations(organization, contact: Contact) -> list[dict]:
    conversations = (
        Conversation.objects.for_org(organization)
        .filter(contact=contact)
        .select_related("phone_number")
        .order_by("-last_message_at", "-id")
    )
    return [{"conversation": c, "url": _thread_url(organization, c)} for c in conversations]


# --- contacts ---------------------------------------------------------------------------------


class ContactListView(OrganizationViewMixin, View):
    """The organization's contacts by name, 50 a page; ``q`` finds a name (part) or a whole number."""

    permission_required = PERMISSION
    template_name = "messaging/contacts/list.html"

    def get(self, request, org_slug):
        form = ContactSearchForm(request.GET or None)
        query = form.cleaned_data["q"].strip() if form.is_valid() else ""
        paginator = Paginator(contacts_for(self.organization, query=query), PER_PAGE)
        page = paginator.get_page(request.GET.get("page"))
        any_contacts = bool(query) or paginator.count > 0 or Contact.objects.for_org(self.organization).exists()
        context = {
            "form": form,
            "query": query,
            "page": page,
            "any_contacts": any_contacts,
            "query_prefix": f"{urlencode({'q': query})}&" if query else "",
        }
        return render(request, self.template_name, context, status=200 if form.is_valid() or not form.is_bound else 400)


class _ContactEditorMixin:
    template_name = "messaging/contacts/form.html"

    def render_editor(self, request, form, *, contact=None, status=200):
        context = {"form": form, "contact": contact, "time_zones": _time_zones()}
        return render(request, self.template_name, context, status=status)

    def save(self, request, *, contact=None):
        form = ContactForm(request.POST)
        if not form.is_valid():
            return None, self.render_editor(request, form, contact=contact, status=400)
        data = dict(form.cleaned_data)
        try:
            if contact is None:
                saved = contact_create(organization=self.organization, actor=self.principal, data=data)
            else:
                saved = contact_update(organization=self.organization, actor=self.principal, contact=contact, data=data)
        except ApplicationError as error:
            apply_error(form, error)
            return None, self.render_editor(request, form, contact=contact, status=error.status)
        return saved, None


class ContactCreateView(_ContactEditorMixin, OrganizationViewMixin, View):
    permission_required = PERMISSION

    def get(self, request, org_slug):
        return self.render_editor(request, ContactForm(initial={"phone": request.GET.get("phone", "")[:40]}))

    def post(self, request, org_slug):
        contact, refused = self.save(request)
        if refused is not None:
            return refused
        messages.success(request, f"Contact “{contact.display_name}” added.")
        return redirect("messaging:contact-detail", org_slug=self.organization.slug, contact_id=contact.id)


class ContactDetailView(OrganizationViewMixin, View):
    """A contact: its details, its text conversations and its calls."""

    permission_required = PERMISSION
    template_name = "messaging/contacts/detail.html"

    def get(self, request, org_slug, contact_id):
        contact = _contact(self.organization, contact_id)
        zone = contact_time_zone(contact)
        context = {
            "contact": contact,
            "time_zone": zone,
            "time_zone_guessed": bool(zone) and not contact.time_zone,
            "custom_fields": sorted((contact.custom_fields or {}).items(), key=lambda item: item[0].lower()),
            "conversations": _contact_conversations(self.organization, contact),
            "calls": _contact_calls(self.organization, contact),
            "calls_shown": CALLS_SHOWN,
        }
        return render(request, self.template_name, context)


class ContactUpdateView(_ContactEditorMixin, OrganizationViewMixin, View):
    permission_required = PERMISSION

    def get(self, request, org_slug, contact_id):
        contact = _contact(self.organization, contact_id)
        return self.render_editor(request, ContactForm(initial=ContactForm.initial_for(contact)), contact=contact)

    def post(self, request, org_slug, contact_id):
        contact = _contact(self.organization, contact_id)
        saved, refused = self.save(request, contact=contact)
        if refused is not None:
            return refused
        messages.success(request, f"Contact “{saved.display_name}” saved.")
        return redirect("messaging:contact-detail", org_slug=self.organization.slug, contact_id=saved.id)


class ContactDeleteView(OrganizationViewMixin, View):
    """Ask (saying what goes with it), then delete the contact and its conversations."""

    permission_required = PERMISSION
    template_name = "messaging/contacts/delete.html"

    def get(self, request, org_slug, contact_id):
        contact = _contact(self.organization, contact_id)
        conversations = Conversation.objects.for_org(self.organization).filter(contact=contact).count()
        return render(request, self.template_name, {"contact": contact, "conversations": conversations})

    def post(self, request, org_slug, contact_id):
        contact = _contact(self.organization, contact_id)
        contact_delete(organization=self.organization, actor=self.principal, contact=contact)
        messages.success(request, f"Contact “{contact.display_name}” deleted, with its text conversations.")
        return redirect("messaging:contact-list", org_slug=self.organization.slug)


class ContactExportView(OrganizationViewMixin, View):
    """Every contact as a CSV download (formula-escaped, see csv_cell), streamed; the export is recorded."""

    permission_required = PERMISSION

    def get(self, request, org_slug):
        chunks = contacts_export(organization=self.organization, actor=self.principal)
        if isinstance(request, ASGIRequest):
            from compliance.exports import as_async

            chunks = as_async(chunks)
        response = StreamingHttpResponse(chunks, content_type="text/csv; charset=utf-8")
        filename = f"contacts-{self.organization.slug}-{timezone.now():%Y%m%d-%H%M%S}.csv"
        response["Content-Disposition"] = f'attachment; filename="{filename}"'
        response["Cache-Control"] = "no-store"
        response["X-Content-Type-Options"] = "nosniff"
        return response


# --- import -----------------------------------------------------------------------------------


class _UploadLimit(FileUploadHandler):
    """First of the upload's handlers: stops reading the file at the first byte over the limit.

    [!!] It raises from inside the multipart parser, so the rest of the file is never read; the view
    answers 413.
    """

    def new_file(self, *args, **kwargs):
        self.received = 0
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > max_import_bytes():
            raise ImportRefused(too_large_message(), code="file_too_large", status=413)
        return raw_data

    def file_complete(self, file_size):
        return None


def _limit_upload(request) -> None:
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > max_import_bytes() + UPLOAD_OVERHEAD_BYTES:
        raise ImportRefused(too_large_message(), code="file_too_large", status=413)
    request.upload_handlers.insert(0, _UploadLimit(request))


class ContactImportView(OrganizationViewMixin, View):
    """GET: how to prepare a file, and the upload form; POST: upload it, then see its preview."""

    permission_required = PERMISSION
    template_name = "messaging/contacts/import.html"

    @classmethod
    def as_view(cls, **initkwargs):
        # CSRF is checked in post(), once _limit_upload() stands before the body's parser.
        return csrf_exempt(super().as_view(**initkwargs))

    def render_page(self, request, form, status=200):
        context = {
            "form": form,
            "max_bytes": max_import_bytes(),
            "known_columns": [(FIELD_LABELS[name], aliases) for name, aliases in KNOWN_COLUMNS.items()],
        }
        return render(request, self.template_name, context, status=status)

    def get(self, request, org_slug):
        return self.render_page(request, ContactImportForm())

    def post(self, request, org_slug):
        try:
            _limit_upload(request)
            return csrf_protect(self._receive)(request)
        except ApplicationError as error:
            return self.render_page(request, ContactImportForm.refused(error.message), status=error.status)

    def _receive(self, request):
        form = ContactImportForm(request.POST, request.FILES)
        if not form.is_valid():
            return self.render_page(request, form, status=400)
        upload = form.cleaned_data["file"]
        raw = b"".join(upload.chunks())
        try:
            contact_import = contact_import_upload(
                organization=self.organization, actor=self.principal, file_name=upload.name, raw=raw
            )
        except ApplicationError as error:
            apply_error(form, error)
            return self.render_page(request, form, status=error.status)
        return redirect("messaging:contact-import-detail", org_slug=self.organization.slug, import_id=contact_import.id)


def _error_rows(items: list[dict]) -> list[dict]:
    """Each error of each row, one line per field: what the preview and the summary list."""
    rows = []
    for item in items:
        for error in item.get("errors", []):
            rows.append({"row": item["row"], "field": error.get("field", ""), "message": error.get("message", "")})
    return rows


ERRORS_SHOWN = 100


def _progress_context(organization, contact_import: ContactImport) -> dict:
    errors = _error_rows(contact_import.row_errors or []) if contact_import.status == ImportStatus.DONE else []
    return {
        "contact_import": contact_import,
        "errors": errors[:ERRORS_SHOWN],
        "errors_total": len(errors),
        "error_row_count": len(contact_import.row_errors or []) if contact_import.status == ImportStatus.DONE else 0,
        "polling": contact_import.status in (ImportStatus.QUEUED, ImportStatus.RUNNING),
    }


class ContactImportDetailView(OrganizationViewMixin, View):
    """A previewed import (mapping, first rows, errors, confirm), then its progress and its summary."""

    permission_required = PERMISSION

    def get(self, request, org_slug, import_id):
        contact_import = _import(self.organization, import_id)
        if contact_import.status == ImportStatus.PREVIEW:
            return self.render_preview(request, contact_import)
        context = _progress_context(self.organization, contact_import)
        return render(request, "messaging/contacts/import_status.html", context)

    def render_preview(self, request, contact_import, *, refusal: str = "", status: int = 200):
        try:
            preview = contact_import_preview(contact_import)
        except ApplicationError as error:  # a file kept from before a rule changed: say so, offer to drop it
            preview, refusal = None, refusal or error.message
        errors = _error_rows(preview.error_rows) if preview else []
        context = {
            "contact_import": contact_import,
            "preview": preview,
            "columns": [c for c in preview.columns if c.field] if preview else [],
            "ignored_columns": [c for c in preview.columns if not c.field] if preview else [],
            "errors": errors[:ERRORS_SHOWN],
            "errors_total": len(errors),
            "refusal": refusal,
        }
        return render(request, "messaging/contacts/import_preview.html", context, status=status)


class ContactImportProgressView(OrganizationViewMixin, View):
    """The progress bar (or, once done, the summary) alone: what the import page polls."""

    permission_required = PERMISSION

    def get(self, request, org_slug, import_id):
        contact_import = _import(self.organization, import_id)
        context = _progress_context(self.organization, contact_import)
        return render(request, "messaging/contacts/_import_progress.html", context)


class ContactImportConfirmView(OrganizationViewMixin, View):
    """Import the previewed file (or try a failed import again, from where it stopped)."""

    permission_required = PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug, import_id):
        contact_import = _import(self.organization, import_id)
        try:
            contact_import_confirm(organization=self.organization, actor=self.principal, contact_import=contact_import)
        except ApplicationError as error:
            messages.error(request, error.message)
        return redirect("messaging:contact-import-detail", org_slug=self.organization.slug, import_id=import_id)


class ContactImportDiscardView(OrganizationViewMixin, View):
    """Drop a previewed (or failed) import and its file."""

    permission_required = PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug, import_id):
        contact_import = _import(self.organization, import_id)
        try:
            contact_import_discard(organization=self.organization, actor=self.principal, contact_import=contact_import)
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("messaging:contact-import-detail", org_slug=self.organization.slug, import_id=import_id)
        messages.success(request, f"“{contact_import.file_name}” was discarded; no contact was changed by it.")
        return redirect("messaging:contact-import", org_slug=self.organization.slug)


class ContactImportErrorsView(OrganizationViewMixin, View):
    """The rows that were not imported, as CSV (each with an ``errors`` column), to fix and import again."""

    permission_required = PERMISSION

    def get(self, request, org_slug, import_id):
        contact_import = _import(self.organization, import_id)
        response = HttpResponse(failed_rows_csv(contact_import), content_type="text/csv; charset=utf-8")
        stem = contact_import.file_name.rsplit(".", 1)[0][:80] or "contacts"
        safe = "".join(ch if ch.isalnum() or ch in "-_" else "-" for ch in stem)
        response["Content-Disposition"] = f'attachment; filename="{safe}-rows-not-imported.csv"'
        response["Cache-Control"] = "no-store"
        response["X-Content-Type-Options"] = "nosniff"
        return response
