"""Reads of knowledge bases, and retrieval: ``search``, the one way to find passages.

[!!] ``search(organization, knowledge_bases, query, k)`` filters by the
organization first: the knowledge bases named are narrowed to that
organization's own, and every query on chunks names the organization (one
partition of the table) inside ``organization_scope``, whose row-level
security hides every other organization's chunks even from a query that
forgot the filter.

How it searches (docs/knowledge.md):

- by meaning: the question's embedding against the chunks', by cosine
  distance. Where the knowledge bases searched hold at most
  KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS chunks, every one is compared (exact,
  fast because an organization's chunks share a partition). Above that the
  HNSW index is walked with pgvector's iterative scans (relaxed order, then
  sorted), which keep scanning until enough rows of this organization are
  found; if the walk still returns fewer rows than exist, the exact search
  answers instead. Either way a search returns k rows whenever k exist.
- by words: PostgreSQL full-text search on the chunks' hashed lexemes
  (knowledge/search_terms.py), so exact names, codes and numbers are found.
- both rankings fused by reciprocal rank fusion (score = sum of
  1 / (60 + rank)), the standard way to merge rankings whose scores are not
  comparable.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass

from django.conf import settings
from django.db import connection

from jagcall.kernel.errors import ApplicationError
from knowledge.models import Chunk, Document, DocumentStatus, KnowledgeBase
from knowledge.processing.embeddings import embed_query
from knowledge.scope import organization_scope
from knowledge.search_terms import exact_words, query_terms

RRF_K = 60
MAX_K = 50
MAX_QUERY_LENGTH = 1000
MODES = ("hybrid", "vector", "keyword")
# pgvector's HNSW settings for one search (SET LOCAL): candidates kept while walking the graph, and how
# many index tuples an iterative scan may visit before it gives up (then the exact search answers).
HNSW_EF_SEARCH = 100
HNSW_MAX_SCAN_TUPLES = 40_000
# "relaxed_order" (results nearly sorted, sorted here) or "strict_order" (sorted by the index scan itself).
HNSW_ITERATIVE_SCAN = "relaxed_order"


@dataclass(frozen=True)
class Hit:
    chunk_id: uuid.UUID
    document_id: uuid.UUID
    document_name: str
    knowledge_base_id: uuid.UUID
    page_start: int
    page_end: int
    text: str
    score: float  # the fused score (reciprocal rank fusion); higher is better
    similarity: float | None  # cosine similarity to the question (1 = same meaning), when ranked by meaning
    vector_rank: int | None  # 1-based rank by meaning, None when not among the candidates
    keyword_rank: int | None  # 1-based rank by words, None when no word matched

    @property
    def pages(self) -> str:
        return str(self.page_start) if self.page_start == self.page_end else f"{self.page_start}-{self.page_end}"

    @property
    def document_title(self) -> str:
        return self.document_name

    @property
    def page(self) -> int:
        return self.page_start


# --- knowledge bases and documents ---------------------------------------------------------


def knowledge_bases_for(organization):
    return KnowledgeBase.objects.for_org(organization).order_by("name")


def documents_for(organization, knowledge_base=None):
    documents = Document.objects.for_org(organization).select_related("knowledge_base")
    if knowledge_base is not None:
        documents = documents.filter(knowledge_base=knowledge_base)
    return documents.order_by("-created_at")


def documents_in_progress(organization, knowledge_base=None) -> int:
    return documents_for(organization, knowledge_base).filter(
        status__in=(DocumentStatus.QUEUED, DocumentStatus.PROCESSING)
    ).count()


def document_file_chunks(document: Document, block: int = 1024 * 1024):
    """The document's original file, decrypted block by block as it is read (memory stays flat)."""
    with document.file.open("rb") as handle:
        while True:
            data = handle.read(block)
            if not data:
                return
            yield data


def document_content_type(document: Document) -> str:
    if document.kind == "pdf":
        return "application/pdf"
    return f"text/plain; charset={document.charset or 'utf-8'}"


# --- retrieval --------------------------------------------------------------------------


def _vector_literal(vector) -> str:
    return "[" + ",".join(f"{float(value):.6f}" for value in vector) + "]"


def _exact(cursor, *, organization_id, bases, vector: str, limit: int) -> list[tuple]:
    # The MATERIALIZED scan computes every distance of the organization's rows in these bases; the
    # planner cannot trade it for the approximate index.
    cursor.execute(
        """
        WITH scoped AS MATERIALIZED (
            SELECT id, embedding <=> %s::halfvec AS distance
            FROM knowledge_chunk
            WHERE organization_id = %s AND knowledge_base_id = ANY(%s::uuid[])
        )
        SELECT id, distance FROM scoped ORDER BY distance, id LIMIT %s
        """,
        [vector, organization_id, bases, limit],
    )
    return cursor.fetchall()


def _approximate(cursor, *, organization_id, bases, vector: str, limit: int) -> list[tuple]:
    # One round trip for the three settings (SET LOCAL: they end with the transaction).
    cursor.execute(
        "SELECT set_config('hnsw.ef_search', %s, true), set_config('hnsw.iterative_scan', %s, true),"
        " set_config('hnsw.max_scan_tuples', %s, true)",
        [str(max(HNSW_EF_SEARCH, limit)), HNSW_ITERATIVE_SCAN, str(HNSW_MAX_SCAN_TUPLES)],
    )
    cursor.execute(
        """
        SELECT id, embedding <=> %s::halfvec AS distance
        FROM knowledge_chunk
        WHERE organization_id = %s AND knowledge_base_id = ANY(%s::uuid[])
        ORDER BY embedding <=> %s::halfvec
        LIMIT %s
        """,
        [vector, organization_id, bases, vector, limit],
    )
    rows = cursor.fetchall()
    return sorted(rows, key=lambda row: (row[1], row[0]))  # relaxed order: nearly sorted


def _by_words(cursor, *, bases, terms: str, limit: int) -> list[tuple]:
    # [!!] Through the owner's function of migration 0002, which filters by the organization of
    # organization_scope exactly as the row-level policy does, so that the GIN index can be used.
    cursor.execute(
        "SELECT id, rank FROM knowledge_keyword_search(%s::uuid[], %s::tsquery, %s)", [bases, terms, limit]
    )
    return cursor.fetchall()


def _clean(query, k) -> tuple[str, int]:
    if not isinstance(query, str) or not query.strip():
        raise ApplicationError("Write a question to search for.", field="query")
    query = query.strip()
    if len(query) > MAX_QUERY_LENGTH:
        raise ApplicationError(
            f"The question may be at most {MAX_QUERY_LENGTH} characters; it has {len(query)}.", field="query"
        )
    if "\x00" in query:
        raise ApplicationError("The question contains a NUL character; remove it.", field="query")
    if isinstance(k, bool) or not isinstance(k, int) or not 1 <= k <= MAX_K:
        raise ApplicationError(f"The number of passages (k) must be a whole number from 1 to {MAX_K}.", field="k")
    return query, k


def search(organization, knowledge_bases: Iterable, query: str, k: int = 5, *, mode: str = "hybrid") -> list[Hit]:
    """The ``k`` passages of ``organization``'s ``knowledge_bases`` that best answer ``query``, best first.

    ``knowledge_bases``: KnowledgeBase objects or ids; any not of this
    organization are ignored. ``mode``: "hybrid" (meaning and words),
    "vector" (meaning only) or "keyword" (words only).
    """
    query, k = _clean(query, k)
    if mode not in MODES:
        raise ApplicationError(f"Unknown search mode {mode!r}; use one of {', '.join(MODES)}.", field="mode")
    ids = []
    for base in knowledge_bases:
        try:
            ids.append(base.pk if isinstance(base, KnowledgeBase) else uuid.UUID(str(base)))
        except ValueError:
            continue
    bases = list(
        KnowledgeBase.objects.for_org(organization).filter(pk__in=ids).values_list("pk", "chunk_count")
    )
    total = sum(count for _, count in bases)
    if not bases:
        return []
    base_ids = [str(pk) for pk, _ in bases]
    organization_id = str(getattr(organization, "pk", organization))
    candidates = max(4 * k, 20)

    vector = _vector_literal(embed_query(query)) if mode != "keyword" else None
    terms = ""
    if mode == "keyword":
        terms = query_terms(query, organization_id=organization_id)
    elif mode == "hybrid":
        # Only the words that name something exactly (codes, numbers, names) are searched as words; the
        # rest of the question is meaning's job (common words matched as words rank noise: docs/knowledge.md).
        named = exact_words(query)
        terms = query_terms(" ".join(named), organization_id=organization_id) if named else ""

    with organization_scope(organization_id), connection.cursor() as cursor:
        by_meaning: list[tuple] = []
        if vector is not None:
            arguments = {"organization_id": organization_id, "bases": base_ids, "vector": vector, "limit": candidates}
            if total > settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS:
                by_meaning = _approximate(cursor, **arguments)
                if len(by_meaning) < min(candidates, total):
                    by_meaning = _exact(cursor, **arguments)
            else:
                by_meaning = _exact(cursor, **arguments)
        by_words = _by_words(cursor, bases=base_ids, terms=terms, limit=candidates) if terms else []

        scores: dict = {}
        vector_rank: dict = {}
        keyword_rank: dict = {}
        similarity: dict = {}
        for rank, (chunk_id, distance) in enumerate(by_meaning, start=1):
            vector_rank[chunk_id] = rank
            similarity[chunk_id] = 1.0 - float(distance)
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
        for rank, (chunk_id, _) in enumerate(by_words, start=1):
            keyword_rank[chunk_id] = rank
            scores[chunk_id] = scores.get(chunk_id, 0.0) + 1.0 / (RRF_K + rank)
        best = sorted(scores, key=lambda chunk_id: (-scores[chunk_id], vector_rank.get(chunk_id, 10**9)))[:k]
        rows = {
            chunk.pk: chunk
            for chunk in Chunk.objects.for_org(organization_id)
            .filter(pk__in=best)
            .select_related("document")
            .only(
                "id", "organization_id", "knowledge_base_id", "document_id", "page_start", "page_end", "text",
                "document__name",
            )
        }
        hits = [
            Hit(
                chunk_id=chunk_id,
                document_id=rows[chunk_id].document_id,
                document_name=rows[chunk_id].document.name,
                knowledge_base_id=rows[chunk_id].knowledge_base_id,
                page_start=rows[chunk_id].page_start,
                page_end=rows[chunk_id].page_end,
                text=rows[chunk_id].text,
                score=round(scores[chunk_id], 6),
                similarity=round(similarity[chunk_id], 4) if chunk_id in similarity else None,
                vector_rank=vector_rank.get(chunk_id),
                keyword_rank=keyword_rank.get(chunk_id),
            )
            for chunk_id in best
            if chunk_id in rows
        ]
    return hits
