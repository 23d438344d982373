"""What the knowledge base API reads and writes.

Input serializers check types only; every rule about the values is
knowledge.services' (names, uploads) or knowledge.selectors' (search), so
the API and the portal refuse the same things with the same messages.
"""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from knowledge.models import DocumentKind, DocumentStatus
from knowledge.selectors import MAX_K, MAX_QUERY_LENGTH, MODES
from knowledge.services import MAX_DESCRIPTION, MAX_NAME

_STATUSES = ", ".join(f"`{value}`" for value in DocumentStatus.values)
_KINDS = ", ".join(f"`{value}`" for value in DocumentKind.values)


class KnowledgeBaseOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    description = serializers.CharField()
    document_count = serializers.IntegerField(help_text="Its documents, whatever their status")
    chunk_count = serializers.IntegerField(help_text="The passages of its ready documents, which search reads")
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class KnowledgeBaseInputSerializer(serializers.Serializer):
    name = serializers.CharField(
        allow_blank=True, help_text=f"Unique in the organization (ignoring case), at most {MAX_NAME} characters"
    )
    description = serializers.CharField(
        required=False, allow_blank=True, help_text=f"At most {MAX_DESCRIPTION} characters"
    )


class KnowledgeDocumentOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField()
    knowledge_base = serializers.UUIDField(help_text="The knowledge base's id")
    name = serializers.CharField()
    kind = serializers.CharField(help_text=f"What its bytes are: {_KINDS}")
    size_bytes = serializers.IntegerField()
    status = serializers.CharField(
        help_text=f"One of {_STATUSES}. Only a ready document's passages are searched."
    )
    status_label = serializers.CharField()
    error_code = serializers.CharField(
        help_text="Why a failed document could not be indexed, e.g. `encrypted`, `unreadable`, `no_text`, "
        "`timeout`, `encoding`; empty otherwise"
    )
    error_message = serializers.CharField(help_text="The same, written for a person; empty otherwise")
    pages_total = serializers.IntegerField()
    pages_done = serializers.IntegerField()
    chunks_total = serializers.IntegerField()
    chunks_done = serializers.IntegerField()
    progress = serializers.IntegerField(min_value=0, max_value=100, help_text="0-100 while processing; 100 ready")
    created_at = serializers.DateTimeField()
    processed_at = serializers.DateTimeField(allow_null=True)


class KnowledgeDocumentUploadInputSerializer(serializers.Serializer):
    """The multipart form of an upload (the file is judged by knowledge.services.document_add)."""

    file = serializers.FileField(
        allow_empty_file=True,
        help_text="A PDF, or a UTF-8 text or Markdown file (another character set declared in the part's "
        "Content-Type, e.g. `text/plain; charset=ISO-8859-1`), at most 20 MB",
    )
    name = serializers.CharField(
        required=False, allow_blank=True, help_text="What to call it; by default the file's name"
    )


@extend_schema_field({"type": "string", "minLength": 1, "maxLength": MAX_QUERY_LENGTH})
class QueryField(serializers.JSONField):
    """Any JSON in, so that the search, not the parser, says what is wrong with the question."""


@extend_schema_field({"type": "integer", "minimum": 1, "maximum": MAX_K, "default": 5})
class CountField(serializers.JSONField):
    """Any JSON in: a string or a boolean is refused by the search as k, never turned into a number."""


@extend_schema_field({"type": "string", "enum": list(MODES), "default": "hybrid"})
class ModeField(serializers.JSONField):
    """Any JSON in: the search names the modes it knows."""


class KnowledgeSearchInputSerializer(serializers.Serializer):
    query = QueryField(help_text="The question, as a caller would ask it")
    k = CountField(required=False, help_text=f"How many passages to return, 1-{MAX_K}")
    mode = ModeField(
        required=False,
        help_text="`hybrid`: by meaning and by words, fused; `vector`: by meaning only; `keyword`: by words only",
    )


class KnowledgeSearchDocumentSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="document_id")
    name = serializers.CharField(source="document_name")


class KnowledgeSearchResultSerializer(serializers.Serializer):
    text = serializers.CharField(help_text="The passage")
    score = serializers.FloatField(help_text="Reciprocal rank fusion of both rankings; higher is better")
    similarity = serializers.FloatField(
        allow_null=True,
        help_text="Cosine similarity to the question (1: same meaning); null when not ranked by meaning",
    )
    vector_rank = serializers.IntegerField(allow_null=True, help_text="1-based rank by meaning, or null")
    keyword_rank = serializers.IntegerField(allow_null=True, help_text="1-based rank by words, or null")
    document = KnowledgeSearchDocumentSerializer(source="*")
    pages = serializers.CharField(help_text="The pages the passage spans, e.g. `3` or `3-4`")
    page_start = serializers.IntegerField()
    page_end = serializers.IntegerField()


class KnowledgeSearchOutputSerializer(serializers.Serializer):
    results = KnowledgeSearchResultSerializer(many=True, help_text="Best first; at most k")
