"""Portal pages: knowledge bases (list and create, a base's documents and uploads, its playground).

Everyone who uses the product works with the knowledge bases (``product.use``).
Every rule is the service's (knowledge.services): its refusals come back onto
the field they concern, or, for an upload, as JSON with the service's status
and message for the page's script (static/knowledge/knowledge.js), and as a
flash after a redirect when the page's form is posted without it.

[!!] The upload view reads the request's body only after
``limit_uploads(request)``: CSRF is checked by the view itself, after the
limit is in place (the middleware would otherwise parse the upload first).
"""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.db.models import Count, Q
from django.http import JsonResponse, StreamingHttpResponse
from django.template.defaultfilters import filesizeformat
from django.utils.http import content_disposition_header
from django.shortcuts import redirect, render
from django.template.loader import render_to_string
from django.urls import path
from django.views import View
from django.views.decorators.csrf import csrf_exempt, csrf_protect

from accounts.mixins import OrganizationViewMixin
from accounts.tenancy import get_for_org_or_404
from accounts.views import apply_error
from jagcall.kernel.errors import ApplicationError
from knowledge import selectors
from knowledge.models import Document, DocumentStatus, KnowledgeBase
from knowledge.services import (
    MAX_DESCRIPTION,
    MAX_NAME,
    document_add,
    document_delete,
    document_payload,
    document_reprocess,
    knowledge_base_create,
    knowledge_base_delete,
    knowledge_base_update,
    limit_uploads,
    max_upload_bytes,
    storage_quota,
    storage_used,
)

PERMISSION = "product.use"
DEFAULT_K = 5


class KnowledgeBaseForm(forms.Form):
    """Name and description; the service decides what is allowed."""

    name = forms.CharField(
        required=False,
        max_length=MAX_NAME,
        help_text="How your team recognises it, e.g. “Patient handbook”.",
        widget=forms.TextInput(attrs={"autocomplete": "off"}),
    )
    description = forms.CharField(
        required=False,
        max_length=MAX_DESCRIPTION,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Optional: what it holds and which agents should answer from it.",
    )


class PlaygroundForm(forms.Form):
    query = forms.CharField(
        required=False,
        label="Question",
        widget=forms.TextInput(attrs={"autocomplete": "off", "placeholder": "e.g. When are you open on Fridays?"}),
        help_text="Ask as a caller would; the passages an agent would be given appear below.",
    )
    k = forms.IntegerField(
        label="Passages (k)",
        min_value=1,
        max_value=selectors.MAX_K,
        initial=DEFAULT_K,
        widget=forms.NumberInput(attrs={"min": 1, "max": selectors.MAX_K}),
    )


def progress_label(payload: dict) -> str:
    """What a document's progress bar says (the script writes the same from the live events)."""
    status = payload["status"]
    if status == DocumentStatus.READY:
        return "Ready"
    if status == DocumentStatus.FAILED:
        return "Failed"
    if status == DocumentStatus.QUEUED:
        return "Waiting to be processed…"
    if payload["chunks_total"]:
        return f"Embedding chunk {payload['chunks_done']} of {payload['chunks_total']}"
    return "Reading pages…"


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _knowledge_base(organization, knowledge_base_id) -> KnowledgeBase:
    return get_for_org_or_404(KnowledgeBase, organization=organization, pk=knowledge_base_id)


def _document(organization, knowledge_base, document_id) -> Document:
    return get_for_org_or_404(
        Document.objects.select_related("uploaded_by"),
        organization=organization,
        pk=document_id,
        knowledge_base=knowledge_base,
    )


def _rows(documents) -> list[dict]:
    rows = []
    for document in documents:
        payload = document_payload(document)
        rows.append({"document": document, "payload": payload, "label": progress_label(payload)})
    return rows


def _summaries(organization) -> list[KnowledgeBase]:
    return list(
        selectors.knowledge_bases_for(organization).annotate(
            documents_total=Count("documents"),
            documents_ready=Count("documents", filter=Q(documents__status=DocumentStatus.READY)),
            documents_working=Count(
                "documents", filter=Q(documents__status__in=(DocumentStatus.QUEUED, DocumentStatus.PROCESSING))
            ),
            documents_failed=Count("documents", filter=Q(documents__status=DocumentStatus.FAILED)),
        )
    )


class KnowledgeBaseListView(OrganizationViewMixin, View):
    """The organization's knowledge bases with their counts, and the form that creates one."""

    permission_required = PERMISSION
    template_name = "knowledge/list.html"

    def render_page(self, request, form, status=200):
        context = {"knowledge_bases": _summaries(self.organization), "form": form}
        return render(request, self.template_name, context, status=status)

    def get(self, request, org_slug):
        return self.render_page(request, KnowledgeBaseForm(auto_id="id_create_%s"))

    def post(self, request, org_slug):
        form = KnowledgeBaseForm(request.POST, auto_id="id_create_%s")
        if not form.is_valid():
            return self.render_page(request, form, status=400)
        try:
            knowledge_base = knowledge_base_create(
                organization=self.organization, actor=self.principal, **form.cleaned_data
            )
        except ApplicationError as error:
            apply_error(form, error)
            return self.render_page(request, form, status=error.status)
        messages.success(request, f"Knowledge base “{knowledge_base.name}” created. Add its documents below.")
        return redirect("knowledge:base-detail", org_slug=self.organization.slug, knowledge_base_id=knowledge_base.pk)


class _DetailMixin:
    template_name = "knowledge/detail.html"

    def render_detail(self, request, knowledge_base, *, edit_form=None, status=200):
        documents = selectors.documents_for(self.organization, knowledge_base).select_related("uploaded_by")
        if edit_form is None:
            edit_form = KnowledgeBaseForm(
                initial={"name": knowledge_base.name, "description": knowledge_base.description},
                auto_id="id_edit_%s",
            )
        context = {
            "knowledge_base": knowledge_base,
            "rows": _rows(documents),
            "edit_form": edit_form,
            "max_upload_bytes": max_upload_bytes(),
            "storage_used": storage_used(self.organization),
            "storage_quota": storage_quota(self.organization),
            "live_events_url": f"/ws/o/{self.organization.slug}/events/",
        }
        return render(request, self.template_name, context, status=status)


class KnowledgeBaseDetailView(_DetailMixin, OrganizationViewMixin, View):
    """A knowledge base's documents, live while they are processed; the upload zone; its name and description."""

    permission_required = PERMISSION

    def get(self, request, org_slug, knowledge_base_id):
        return self.render_detail(request, _knowledge_base(self.organization, knowledge_base_id))


class KnowledgeBaseUpdateView(_DetailMixin, OrganizationViewMixin, View):
    permission_required = PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug, knowledge_base_id):
        knowledge_base = _knowledge_base(self.organization, knowledge_base_id)
        form = KnowledgeBaseForm(request.POST, auto_id="id_edit_%s")
        if not form.is_valid():
            return self.render_detail(request, knowledge_base, edit_form=form, status=400)
        try:
            knowledge_base = knowledge_base_update(
                organization=self.organization, actor=self.principal, knowledge_base=knowledge_base,
                **form.cleaned_data,
            )  # fmt: skip
        except ApplicationError as error:
            apply_error(form, error)
            return self.render_detail(request, knowledge_base, edit_form=form, status=error.status)
        messages.success(request, f"Knowledge base “{knowledge_base.name}” saved.")
        return redirect("knowledge:base-detail", org_slug=self.organization.slug, knowledge_base_id=knowledge_base.pk)


class KnowledgeBaseDeleteView(OrganizationViewMixin, View):
    """Ask (naming the agents that answer from it), then delete the knowledge base and its documents."""

    permission_required = PERMISSION
    template_name = "knowledge/delete.html"

    def get(self, request, org_slug, knowledge_base_id):
        knowledge_base = _knowledge_base(self.organization, knowledge_base_id)
        # The agents that answer from it (telephony's, through the relation it declares; knowledge imports no app).
        agents = list(knowledge_base.agents.for_org(self.organization).order_by("name").only("id", "name"))
        documents = selectors.documents_for(self.organization, knowledge_base).count()
        context = {"knowledge_base": knowledge_base, "agents": agents, "documents": documents}
        return render(request, self.template_name, context)

    def post(self, request, org_slug, knowledge_base_id):
        knowledge_base = _knowledge_base(self.organization, knowledge_base_id)
        try:
            knowledge_base_delete(organization=self.organization, actor=self.principal, knowledge_base=knowledge_base)
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect(
                "knowledge:base-detail", org_slug=self.organization.slug, knowledge_base_id=knowledge_base.pk
            )
        messages.success(request, f"Knowledge base “{knowledge_base.name}” deleted.")
        return redirect("knowledge:base-list", org_slug=self.organization.slug)


class DocumentUploadView(OrganizationViewMixin, View):
    """One upload (the script sends each file in a request of its own); JSON for the script, a redirect without it.

    JSON answers: 201 with ``{"document": <document_payload>, "row": <the table row's HTML>}``, or the
    service's status with ``{"error": {"code", "message", "field"}}``.
    """

    permission_required = PERMISSION
    http_method_names = ["post"]

    @classmethod
    def as_view(cls, **initkwargs):
        # CSRF is checked in post(), once limit_uploads() stands before the body's parser.
        return csrf_exempt(super().as_view(**initkwargs))

    def post(self, request, org_slug, knowledge_base_id):
        knowledge_base = _knowledge_base(self.organization, knowledge_base_id)
        wants_json = _wants_json(request)
        try:
            limit_uploads(request)
            return csrf_protect(self._receive)(request, knowledge_base=knowledge_base, wants_json=wants_json)
        except ApplicationError as error:
            return self._refused(request, knowledge_base, error, wants_json=wants_json)

    def _receive(self, request, *, knowledge_base, wants_json):
        files = request.FILES.getlist("file")
        if not files:
            raise ApplicationError("Choose a PDF, text or Markdown file to upload.", code="no_file", field="file")
        if wants_json and len(files) > 1:
            raise ApplicationError("Send one file per request.", code="too_many_files", field="file")
        added, refused = [], []
        for upload in files:
            charset = getattr(upload, "charset", None)
            try:
                added.append(
                    document_add(
                        organization=self.organization, actor=self.principal, knowledge_base=knowledge_base,
                        name=upload.name, content=upload, charset=charset,
                    )  # fmt: skip
                )
            except ApplicationError as error:
                if wants_json:
                    raise
                refused.append((upload.name, error))
        if wants_json:
            document = Document.objects.for_org(self.organization).select_related("uploaded_by").get(pk=added[0].pk)
            row = render_to_string(
                "knowledge/_document_row.html", {"row": _rows([document])[0], "knowledge_base": knowledge_base},
                request=request,
            )  # fmt: skip
            usage = (
                f"{filesizeformat(storage_used(self.organization))} of your plan's "
                f"{filesizeformat(storage_quota(self.organization))} in use."
            )
            return JsonResponse({"document": document_payload(document), "row": row, "storage": usage}, status=201)
        for document in added:
            messages.success(request, f"“{document.name}” was added; it is processed in the background.")
        for name, error in refused:
            messages.error(request, f"“{name}”: {error.message}")
        return self._back(knowledge_base)

    def _refused(self, request, knowledge_base, error: ApplicationError, *, wants_json):
        if wants_json:
            body = {"error": {"code": error.code, "message": error.message, "field": error.field}}
            existing = getattr(error, "existing", None)
            if existing is not None:
                body["error"]["existing"] = {"id": str(existing.pk), "name": existing.name}
            return JsonResponse(body, status=error.status)
        messages.error(request, error.message)
        return self._back(knowledge_base)

    def _back(self, knowledge_base):
        return redirect("knowledge:base-detail", org_slug=self.organization.slug, knowledge_base_id=knowledge_base.pk)


class DocumentReprocessView(OrganizationViewMixin, View):
    """Try again: process a document again from its stored file."""

    permission_required = PERMISSION
    http_method_names = ["post"]

    def post(self, request, org_slug, knowledge_base_id, document_id):
        knowledge_base = _knowledge_base(self.organization, knowledge_base_id)
        document = _document(self.organization, knowledge_base, document_id)
        try:
            document = document_reprocess(organization=self.organization, actor=self.principal, document=document)
        except ApplicationError as error:
            if _wants_json(request):
                return JsonResponse({"error": {"code": error.code, "message": error.message}}, status=error.status)
            messages.error(request, error.message)
        else:
            if _wants_json(request):
                return JsonResponse({"document": document_payload(document)})
            messages.success(request, f"“{document.name}” is being processed again.")
        return redirect("knowledge:base-detail", org_slug=self.organization.slug, knowledge_base_id=knowledge_base.pk)


class DocumentDeleteView(OrganizationViewMixin, View):
    """Ask, then delete a document, its file and its passages."""

    permission_required = PERMISSION
    template_name = "knowledge/document_delete.html"

    def get(self, request, org_slug, knowledge_base_id, document_id):
        knowledge_base = _knowledge_base(self.organization, knowledge_base_id)
        document = _document(self.organization, knowledge_base, document_id)
        return render(request, self.template_name, {"knowledge_base": knowledge_base, "document": document})

    def post(self, request, org_slug, knowledge_base_id, document_id):
        knowledge_base = _knowledge_base(self.organization, knowledge_base_id)
        document = _document(self.organization, knowledge_base, document_id)
        try:
            document_delete(organization=self.organization, actor=self.principal, document=document)
        except ApplicationError as error:
            messages.error(request, error.message)
        else:
            messages.success(request, f"“{document.name}” deleted; agents no longer answer from it.")
        return redirect("knowledge:base-detail", org_slug=self.organization.slug, knowledge_base_id=knowledge_base.pk)


class PlaygroundView(OrganizationViewMixin, View):
    """Ask a question and see what an agent would be given: each passage, where it is from and why it was found."""

    permission_required = PERMISSION
    template_name = "knowledge/playground.html"

    def get(self, request, org_slug, knowledge_base_id):
        knowledge_base = _knowledge_base(self.organization, knowledge_base_id)
        asked = "query" in request.GET
        form = PlaygroundForm(request.GET if asked else None, initial={"k": DEFAULT_K})
        hits, status = None, 200
        if asked:
            if form.is_valid():
                try:
                    hits = selectors.search(
                        self.organization, [knowledge_base], form.cleaned_data["query"], form.cleaned_data["k"]
                    )
                except ApplicationError as error:
                    apply_error(form, error)
                    status = error.status
            else:
                status = 400
        context = {
            "knowledge_base": knowledge_base,
            "form": form,
            "hits": hits,
            "in_progress": selectors.documents_in_progress(self.organization, knowledge_base),
        }
        return render(request, self.template_name, context, status=status)


class DocumentDownloadView(OrganizationViewMixin, View):
    """The original file, decrypted as it streams: always a download (attachment, nosniff), never cached."""

    permission_required = PERMISSION
    http_method_names = ["get"]

    def get(self, request, org_slug, knowledge_base_id, document_id):
        knowledge_base = _knowledge_base(self.organization, knowledge_base_id)
        document = _document(self.organization, knowledge_base, document_id)
        response = StreamingHttpResponse(
            selectors.document_file_chunks(document), content_type=selectors.document_content_type(document)
        )
        response["Content-Length"] = str(document.size_bytes)
        response["Content-Disposition"] = content_disposition_header(as_attachment=True, filename=document.name)
        response["X-Content-Type-Options"] = "nosniff"
        response["Cache-Control"] = "private, no-store"
        return response


urlpatterns = [
    path("", KnowledgeBaseListView.as_view(), name="base-list"),
    path("<uuid:knowledge_base_id>/", KnowledgeBaseDetailView.as_view(), name="base-detail"),
    path("<uuid:knowledge_base_id>/edit/", KnowledgeBaseUpdateView.as_view(), name="base-update"),
    path("<uuid:knowledge_base_id>/delete/", KnowledgeBaseDeleteView.as_view(), name="base-delete"),
    path("<uuid:knowledge_base_id>/playground/", PlaygroundView.as_view(), name="playground"),
    path("<uuid:knowledge_base_id>/documents/", DocumentUploadView.as_view(), name="document-upload"),
    path(
        "<uuid:knowledge_base_id>/documents/<uuid:document_id>/reprocess/",
        DocumentReprocessView.as_view(),
        name="document-reprocess",
    ),
    path(
        "<uuid:knowledge_base_id>/documents/<uuid:document_id>/file/",
        DocumentDownloadView.as_view(),
        name="document-file",
    ),
    path(
        "<uuid:knowledge_base_id>/documents/<uuid:document_id>/delete/",
        DocumentDeleteView.as_view(),
        name="document-delete",
    ),
]
