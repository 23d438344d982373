"""API: knowledge bases at /api/v1/knowledge-bases, their documents, and search.

Reading and searching need ``knowledge:read``; creating, changing and
deleting knowledge bases, uploading, reprocessing and deleting documents
``knowledge:write``. Every rule is knowledge.services' or
knowledge.selectors' (their ApplicationError becomes the error shape with
its status): an upload is refused with 413 (too large, over the plan's
quota), 415 (not a PDF or text by its bytes) or 409 (already there, with
the document that holds it in ``error.details.document_id``).

[!!] An upload's limit is set before anything reads the body
(``DocumentListApi.perform_authentication``): a body declared far over
20 MB is refused from its Content-Length, and a file is cut off at the
first byte over the limit, never read whole into memory or onto disk.
"""

from __future__ import annotations

from django.db.models import Count
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.parsers import MultiPartParser
from rest_framework.response import Response

from accounts.api.base import OrganizationAPIView
from accounts.tenancy import get_for_org_or_404
from jagcall.kernel.api.errors import error_body
from jagcall.kernel.api.pagination import CursorPagination
from knowledge.api.serializers import (
    KnowledgeBaseInputSerializer,
    KnowledgeBaseOutputSerializer,
    KnowledgeDocumentOutputSerializer,
    KnowledgeDocumentUploadInputSerializer,
    KnowledgeSearchInputSerializer,
    KnowledgeSearchOutputSerializer,
    KnowledgeSearchResultSerializer,
)
from knowledge.models import Document, KnowledgeBase
from knowledge.selectors import documents_for, knowledge_bases_for, search
from knowledge.services import (
    DuplicateDocument,
    document_add,
    document_delete,
    document_payload,
    document_reprocess,
    knowledge_base_create,
    knowledge_base_delete,
    knowledge_base_update,
    limit_uploads,
)

_ERROR = {"$ref": "#/components/schemas/Error"}


def _knowledge_base(organization, knowledge_base_id) -> KnowledgeBase:
    """One knowledge base of the organization with its document count; 404 for another organization's id."""
    bases = knowledge_bases_for(organization).annotate(document_count=Count("documents"))
    return get_for_org_or_404(bases, organization=organization, pk=knowledge_base_id)


def _document(organization, knowledge_base_id, document_id) -> Document:
    knowledge_base = _knowledge_base(organization, knowledge_base_id)
    return get_for_org_or_404(documents_for(organization, knowledge_base), organization=organization, pk=document_id)


def _document_data(document: Document) -> dict:
    return KnowledgeDocumentOutputSerializer(
        {
            **document_payload(document),
            "kind": document.kind,
            "size_bytes": document.size_bytes,
            "created_at": document.created_at,
            "processed_at": document.processed_at,
        }
    ).data


def _charset(upload) -> str | None:
    """The character set the upload's part declared (``text/plain; charset=ISO-8859-1``), if any."""
    charset = getattr(upload, "charset", None)
    if isinstance(charset, bytes):  # the multipart parser leaves header parameters as bytes
        charset = charset.decode("latin-1")
    return charset or None


class KnowledgeBaseListApi(OrganizationAPIView):
    """GET -> the organization's knowledge bases by name (cursor-paginated); POST -> create one."""

    required_scopes = {"GET": "knowledge:read", "POST": "knowledge:write"}

    def get_org_queryset(self):
        return KnowledgeBase.objects.all()

    @extend_schema(responses=KnowledgeBaseOutputSerializer(many=True))
    def get(self, request):
        paginator = CursorPagination()
        paginator.ordering = ("name", "id")
        bases = knowledge_bases_for(self.organization).annotate(document_count=Count("documents"))
        page = paginator.paginate_queryset(bases, request, view=self)
        return paginator.get_paginated_response(KnowledgeBaseOutputSerializer(page, many=True).data)

    @extend_schema(request=KnowledgeBaseInputSerializer, responses={201: KnowledgeBaseOutputSerializer})
    def post(self, request):
        serializer = KnowledgeBaseInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        knowledge_base = knowledge_base_create(
            organization=self.organization,
            actor=request.auth,
            name=serializer.validated_data["name"],
            description=serializer.validated_data.get("description", ""),
        )
        knowledge_base = _knowledge_base(self.organization, knowledge_base.pk)
        response = Response(KnowledgeBaseOutputSerializer(knowledge_base).data, status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/knowledge-bases/{knowledge_base.pk}"
        return response


class KnowledgeBaseDetailApi(OrganizationAPIView):
    """GET -> one knowledge base; PATCH -> change its name or description; DELETE -> delete it and its documents."""

    required_scopes = {"GET": "knowledge:read", "PATCH": "knowledge:write", "DELETE": "knowledge:write"}

    def get_org_queryset(self):
        return KnowledgeBase.objects.all()

    @extend_schema(responses=KnowledgeBaseOutputSerializer)
    def get(self, request, knowledge_base_id):
        return Response(KnowledgeBaseOutputSerializer(_knowledge_base(self.organization, knowledge_base_id)).data)

    @extend_schema(request=KnowledgeBaseInputSerializer(partial=True), responses=KnowledgeBaseOutputSerializer)
    def patch(self, request, knowledge_base_id):
        knowledge_base = _knowledge_base(self.organization, knowledge_base_id)
        serializer = KnowledgeBaseInputSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        knowledge_base_update(
            organization=self.organization,
            actor=request.auth,
            knowledge_base=knowledge_base,
            name=serializer.validated_data.get("name"),
            description=serializer.validated_data.get("description"),
        )
        return Response(KnowledgeBaseOutputSerializer(_knowledge_base(self.organization, knowledge_base_id)).data)

    @extend_schema(responses={204: None})
    def delete(self, request, knowledge_base_id):
        knowledge_base = _knowledge_base(self.organization, knowledge_base_id)
        knowledge_base_delete(organization=self.organization, actor=request.auth, knowledge_base=knowledge_base)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentCursorPagination(CursorPagination):
    ordering = ("-created_at", "-id")


class DocumentListApi(OrganizationAPIView):
    """GET -> a knowledge base's documents, newest first (cursor-paginated); POST -> upload one (multipart).

    The document is processed in the background: poll
    ``GET .../documents/{document_id}`` for its status and progress.
    """

    required_scopes = {"GET": "knowledge:read", "POST": "knowledge:write"}
    parser_classes = [MultiPartParser]

    def get_org_queryset(self):
        return Document.objects.all()

    def perform_authentication(self, request):
        # The first step of initial() that may read the body (a session's CSRF check reads the form):
        # the upload's limit is set before it, on the Django request whose handlers parse the upload.
        if request.method == "POST":
            limit_uploads(request._request)
        super().perform_authentication(request)

    @extend_schema(responses=KnowledgeDocumentOutputSerializer(many=True))
    def get(self, request, knowledge_base_id):
        knowledge_base = _knowledge_base(self.organization, knowledge_base_id)
        paginator = DocumentCursorPagination()
        page = paginator.paginate_queryset(documents_for(self.organization, knowledge_base), request, view=self)
        return paginator.get_paginated_response([_document_data(document) for document in page])

    @extend_schema(
        request={"multipart/form-data": KnowledgeDocumentUploadInputSerializer},
        responses={
            201: KnowledgeDocumentOutputSerializer,
            409: OpenApiResponse(
                response=_ERROR,
                description="`duplicate_document`: the same file is already in this knowledge base; "
                "`error.details.document_id` names the document that holds it. (Also the Idempotency-Key's "
                "conflicts.)",
            ),
            413: OpenApiResponse(
                response=_ERROR,
                description="`file_too_large`: the file is over 20 MB (a body declared far larger is refused "
                "before it is read); `storage_quota_exceeded`: it would take the organization over its plan's "
                "document storage.",
            ),
            415: OpenApiResponse(
                response=_ERROR,
                description="`unsupported_file`: by its bytes, not a PDF nor UTF-8 (or declared character set) text "
                "or Markdown (an image, an archive, a web page, an empty file); `unsupported_media_type`: the "
                "request is not multipart/form-data.",
            ),
        },
    )
    def post(self, request, knowledge_base_id):
        knowledge_base = _knowledge_base(self.organization, knowledge_base_id)
        serializer = KnowledgeDocumentUploadInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        upload = serializer.validated_data["file"]
        try:
            document = document_add(
                organization=self.organization,
                actor=request.auth,
                knowledge_base=knowledge_base,
                name=serializer.validated_data.get("name") or upload.name,
                content=upload,
                charset=_charset(upload),
            )
        except DuplicateDocument as refusal:
            details = {refusal.field: [refusal.message], "document_id": [str(refusal.existing.pk)]}
            return Response(error_body(refusal.code, refusal.message, details), status=refusal.status)
        response = Response(_document_data(document), status=status.HTTP_201_CREATED)
        response["Location"] = f"/api/v1/knowledge-bases/{knowledge_base.pk}/documents/{document.pk}"
        return response


class DocumentDetailApi(OrganizationAPIView):
    """GET -> one document: its status, why it failed, its progress; DELETE -> delete it, its file and passages."""

    required_scopes = {"GET": "knowledge:read", "DELETE": "knowledge:write"}

    def get_org_queryset(self):
        return Document.objects.all()

    @extend_schema(responses=KnowledgeDocumentOutputSerializer)
    def get(self, request, knowledge_base_id, document_id):
        return Response(_document_data(_document(self.organization, knowledge_base_id, document_id)))

    @extend_schema(responses={204: None})
    def delete(self, request, knowledge_base_id, document_id):
        document = _document(self.organization, knowledge_base_id, document_id)
        document_delete(organization=self.organization, actor=request.auth, document=document)
        return Response(status=status.HTTP_204_NO_CONTENT)


class DocumentReprocessApi(OrganizationAPIView):
    """POST -> process a document again from its stored file (after a failure); 409 while it is being processed."""

    required_scopes = {"POST": "knowledge:write"}

    def get_org_queryset(self):
        return Document.objects.all()

    @extend_schema(
        request=None,
        responses={
            202: KnowledgeDocumentOutputSerializer,
            409: OpenApiResponse(
                response=_ERROR,
                description="`busy`: the document is queued or being processed; wait for it to finish. (Also the "
                "Idempotency-Key's conflicts.)",
            ),
        },
    )
    def post(self, request, knowledge_base_id, document_id):
        document = _document(self.organization, knowledge_base_id, document_id)
        document = document_reprocess(organization=self.organization, actor=request.auth, document=document)
        return Response(_document_data(document), status=status.HTTP_202_ACCEPTED)


class KnowledgeBaseSearchApi(OrganizationAPIView):
    """POST -> the passages of a knowledge base that best answer a question, best first, with their pages.

    A search reads, so it needs ``knowledge:read``. Only ready documents'
    passages are found. Bad input is a 400 naming the field (``query``,
    ``k`` or ``mode``).
    """

    required_scopes = {"POST": "knowledge:read"}

    def get_org_queryset(self):
        return KnowledgeBase.objects.all()

    @extend_schema(request=KnowledgeSearchInputSerializer, responses={200: KnowledgeSearchOutputSerializer})
    def post(self, request, knowledge_base_id):
        knowledge_base = _knowledge_base(self.organization, knowledge_base_id)
        serializer = KnowledgeSearchInputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        given = serializer.validated_data
        hits = search(
            self.organization,
            [knowledge_base],
            given["query"],
            given.get("k", 5),
            mode=given.get("mode", "hybrid"),
        )
        return Response({"results": KnowledgeSearchResultSerializer(hits, many=True).data})


urlpatterns = [
    path("knowledge-bases", KnowledgeBaseListApi.as_view(), name="knowledge-base-list"),
    path("knowledge-bases/<uuid:knowledge_base_id>", KnowledgeBaseDetailApi.as_view(), name="knowledge-base-detail"),
    path(
        "knowledge-bases/<uuid:knowledge_base_id>/documents", DocumentListApi.as_view(), name="knowledge-document-list"
    ),
    path(
        "knowledge-bases/<uuid:knowledge_base_id>/documents/<uuid:document_id>",
        DocumentDetailApi.as_view(),
        name="knowledge-document-detail",
    ),
    path(
        "knowledge-bases/<uuid:knowledge_base_id>/documents/<uuid:document_id>/reprocess",
        DocumentReprocessApi.as_view(),
        name="knowledge-document-reprocess",
    ),
    path(
        "knowledge-bases/<uuid:knowledge_base_id>/search", KnowledgeBaseSearchApi.as_view(), name="knowledge-search"
    ),
]
