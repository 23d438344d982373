"""Knowledge bases, their documents, and the chunks that retrieval searches.

A document's original file is stored with the encrypted file storage; the
text of its chunks is encrypted with the organization's keys. What stays in
the clear, so that PostgreSQL can search it, is derived from the text
without giving it back: each chunk's embedding (384 numbers) and its
keyword index, whose words are keyed hashes (knowledge/search_terms.py).
docs/security/knowledge.md says why.

[!!] Chunks live in one table partitioned by organization
(``knowledge_chunk``, HASH on ``organization_id``, made by migration 0001),
so an organization's rows are stored together and a search reads one
partition. Row-level security is the second wall: the application's role
sees a chunk only inside ``organization_scope(organization)``
(knowledge/scope.py), which names the organization for the transaction.
Chunks are deleted by the database with their document, knowledge base or
organization (ON DELETE CASCADE), never row by row through the ORM.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.postgres.search import SearchVectorField
from django.db import models
from django.utils import timezone
from pgvector.django import HalfVectorField

from accounts.tenancy import OrganizationOwned
from jagcall.kernel.crypto.fields import EncryptedTextField
from jagcall.kernel.crypto.storage import EncryptedFileField

EMBEDDING_DIMENSIONS = 384


class KnowledgeBase(OrganizationOwned):
    """A named set of documents that agents answer from."""

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    # Kept up to date by the services: how many chunks its ready documents hold (search picks its plan by it).
    chunk_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="knowledge_base_name_unique"),
        ]

    def __str__(self) -> str:
        return self.name


class DocumentStatus(models.TextChoices):
    QUEUED = "queued", "Waiting to be processed"
    PROCESSING = "processing", "Processing"
    READY = "ready", "Ready"
    FAILED = "failed", "Failed"


class DocumentKind(models.TextChoices):
    PDF = "pdf", "PDF"
    TEXT = "text", "Text or Markdown"


class Document(OrganizationOwned):
    """One uploaded file and the state of its processing.

    ``content_hash``: HMAC of the file's bytes under the organization's
    blind-index key, so the same file is found twice in one knowledge base
    without storing a plain hash that anyone could test guesses against.
    """

    knowledge_base = models.ForeignKey(KnowledgeBase, on_delete=models.CASCADE, related_name="documents")
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=10, choices=DocumentKind.choices)
    charset = models.CharField(max_length=40, blank=True)  # a text file's declared character set, if not UTF-8
    file = EncryptedFileField()
    size_bytes = models.PositiveBigIntegerField()
    content_hash = models.CharField(max_length=80)
    status = models.CharField(max_length=12, choices=DocumentStatus.choices, default=DocumentStatus.QUEUED)
    error_code = models.CharField(max_length=20, blank=True)
    error_message = models.CharField(max_length=300, blank=True)
    pages_total = models.PositiveIntegerField(default=0)
    pages_done = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    attempts = models.PositiveSmallIntegerField(default=0)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    processing_started_at = models.DateTimeField(null=True, blank=True)
    processed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "knowledge_base", "content_hash"], name="knowledge_document_once_per_base"
            ),
        ]
        indexes = [models.Index(fields=["organization", "status"], name="knowledge_document_status")]

    def __str__(self) -> str:
        return self.name

    @property
    def progress_percent(self) -> int:
        """0-100: reading the pages is the first tenth, embedding the chunks the rest."""
        if self.status == DocumentStatus.READY:
            return 100
        if self.status != DocumentStatus.PROCESSING or not self.pages_total:
            return 0
        read = 10 * self.pages_done // self.pages_total
        if not self.chunks_total:
            return read
        return min(99, read + 90 * self.chunks_done // self.chunks_total)


class Chunk(OrganizationOwned):
    """A passage of a document, its embedding and its keyword index (see the module docstring).

    The table is made by hand in migration 0001 (partitioned, primary key
    ``(organization_id, id)``, foreign keys ON DELETE CASCADE, row-level
    security, HNSW, GIN and B-tree indexes); Django's migration state holds
    the fields below and nothing of that.
    """

    organization = models.ForeignKey(
        "accounts.Organization", on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    knowledge_base = models.ForeignKey(
        KnowledgeBase, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+"
    )
    document = models.ForeignKey(Document, on_delete=models.DO_NOTHING, db_constraint=False, related_name="+")
    ordinal = models.PositiveIntegerField()
    page_start = models.PositiveIntegerField()
    page_end = models.PositiveIntegerField()
    text = EncryptedTextField()
    embedding = HalfVectorField(dimensions=EMBEDDING_DIMENSIONS)
    search_terms = SearchVectorField()

    class Meta:
        db_table = "knowledge_chunk"
        ordering = ["document", "ordinal"]

    def __str__(self) -> str:
        return f"{self.document_id} #{self.ordinal}"
