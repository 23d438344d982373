"""Knowledge bases in the back office (support staff only; see jagcall/kernel/admin.py).

Read-only: knowledge bases and documents change through knowledge.services
(the upload rules, the audit of each change), in the portal or over the API.
Support sees what a document is and where its processing stands, never its
content: not the file, not the chunks' text.
"""

from __future__ import annotations

from django.contrib import admin
from django.core.exceptions import ValidationError
from django.template.response import TemplateResponse

from jagcall.kernel.admin import ReadOnlyModelAdmin
from knowledge.models import Chunk, Document, KnowledgeBase
from knowledge.scope import organization_scope


@admin.register(KnowledgeBase)
class KnowledgeBaseAdmin(ReadOnlyModelAdmin):
    list_display = ("name", "organization", "chunk_count", "updated_at")
    list_select_related = ("organization",)
    search_fields = ("name", "organization__name", "organization__slug")
    ordering = ("organization__name", "name")
    fields = ("id", "organization", "name", "description", "chunk_count", "created_at", "updated_at")
    readonly_fields = fields


@admin.register(Document)
class DocumentAdmin(ReadOnlyModelAdmin):
    list_display = ("name", "organization", "knowledge_base", "status", "error_code", "size_bytes", "created_at")
    list_filter = ("status", "kind", "error_code")
    list_select_related = ("organization", "knowledge_base")
    search_fields = ("name", "knowledge_base__name", "organization__name", "organization__slug")
    ordering = ("-created_at",)
    fields = (
        "id", "organization", "knowledge_base", "name", "kind", "charset", "size_bytes", "status", "error_code",
        "error_message", "pages_total", "pages_done", "chunks_total", "chunks_done", "attempts", "uploaded_by",
        "created_at", "updated_at", "processing_started_at", "processed_at",
    )  # fmt: skip
    readonly_fields = fields


@admin.register(Chunk)
class ChunkAdmin(ReadOnlyModelAdmin):
    """A document's chunks: their place and pages, never their text.

    [!!] Row-level security shows chunks only within one organization's
    scope, so the list opens on one document (``?document__id__exact=``,
    linked from nowhere else on purpose: support rarely needs it).
    """

    list_display = ("document", "ordinal", "page_start", "page_end")
    ordering = ("ordinal",)
    fields = ("id", "organization", "knowledge_base", "document", "ordinal", "page_start", "page_end")
    readonly_fields = fields
    search_fields = ("document__name",)

    def get_queryset(self, request):
        return Chunk.objects.unscoped("back office: one document's chunks, within its organization's scope")

    def changelist_view(self, request, extra_context=None):
        document_id = request.GET.get("document__id__exact")
        document = None
        if document_id:
            try:
                document = Document.objects.unscoped("back office: the document whose chunks are listed").filter(
                    pk=document_id
                ).first()
            except ValidationError:  # not a UUID
                document = None
        extra_context = {**(extra_context or {}), "subtitle": document.name if document else "Open a document's chunks"}
        if document is None:
            return super().changelist_view(request, extra_context)
        with organization_scope(document.organization_id):
            response = super().changelist_view(request, extra_context)
            if isinstance(response, TemplateResponse):
                response.render()
        return response
