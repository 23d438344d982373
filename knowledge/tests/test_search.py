"""Retrieval's HNSW settings: they reach PostgreSQL, and either iterative scan gives k rows nearest first."""

from __future__ import annotations

import pytest
from django.db import connection

from knowledge import selectors
from knowledge.models import Chunk, KnowledgeBase
from knowledge.processing.embeddings import embed_texts
from knowledge.scope import organization_scope
from knowledge.search_terms import index_terms
from knowledge.selectors import search
from knowledge.services import document_add, document_process, knowledge_base_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def base(organization, owner):
    return knowledge_base_create(organization=organization, actor=owner, name="Harbor guide")


@pytest.fixture
def document(base, owner):
    document = document_add(
        organization=base.organization, actor=owner, knowledge_base=base, name="guide.md",
        content=b"The harbor office opens at eight in the morning.",
    )  # fmt: skip
    document_process(document)
    return document


def add_chunks(base, document, texts: list[str]) -> list[Chunk]:
    """Chunks of ``texts`` in ``document``, embedded and indexed as processing stores them."""
    organization_id = base.organization_id
    with organization_scope(organization_id):
        start = Chunk.objects.for_org(organization_id).filter(document_id=document.pk).count()
        rows = [
            Chunk(
                organization_id=organization_id, knowledge_base=base, document=document, ordinal=start + index,
                page_start=1, page_end=1, text=text, embedding=vector, search_terms=terms,
            )
            for index, (text, vector, terms) in enumerate(
                zip(texts, embed_texts(texts), index_terms(texts, organization_id=organization_id))
            )
        ]  # fmt: skip
        Chunk.objects.bulk_create(rows)
        total = Chunk.objects.for_org(organization_id).count()
    KnowledgeBase.objects.for_org(organization_id).filter(pk=base.pk).update(chunk_count=total)
    base.refresh_from_db()
    return rows


def test_the_walks_settings_reach_postgresql(base, document, monkeypatch):
    add_chunks(base, document, [f"Berth {n} is reserved for fishing boats on weekdays." for n in range(30)])
    monkeypatch.setattr(selectors, "HNSW_EF_SEARCH", 77)
    monkeypatch.setattr(selectors, "HNSW_MAX_SCAN_TUPLES", 1234)
    monkeypatch.setattr(selectors, "HNSW_ITERATIVE_SCAN", "strict_order")
    vector = selectors._vector_literal(embed_texts(["Where can fishing boats moor?"])[0])
    arguments = {"organization_id": str(base.organization_id), "bases": [str(base.pk)], "vector": vector}
    with organization_scope(base.organization), connection.cursor() as cursor:
        rows = selectors._approximate(cursor, **arguments, limit=20)
        cursor.execute("SELECT current_setting('hnsw.ef_search'), current_setting('hnsw.max_scan_tuples'),"
                       " current_setting('hnsw.iterative_scan')")  # fmt: skip
        assert cursor.fetchone() == ("77", "1234", "strict_order")
        assert len(rows) == 20 and [row[1] for row in rows] == sorted(row[1] for row in rows)
        rows = selectors._approximate(cursor, **arguments, limit=200)
        cursor.execute("SELECT current_setting('hnsw.ef_search')")
        assert cursor.fetchone()[0] == "200"  # never fewer candidates than asked for
        assert len(rows) == 31  # every chunk: the base holds fewer than asked


@pytest.mark.parametrize("iterative", ["relaxed_order", "strict_order"])
def test_either_iterative_scan_returns_k_rows_nearest_first(base, document, settings, monkeypatch, iterative):
    add_chunks(base, document, [f"Slip {n} has shore power and fresh water for {n % 7 + 2} nights." for n in range(40)])
    settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = 0
    monkeypatch.setattr(selectors, "HNSW_ITERATIVE_SCAN", iterative)
    for k in (1, 5, 20):
        hits = search(base.organization, [base], "Is there electricity at the slips?", k=k, mode="vector")
        assert len(hits) == k
        assert [hit.vector_rank for hit in hits] == list(range(1, k + 1))
        assert [hit.similarity for hit in hits] == sorted((hit.similarity for hit in hits), reverse=True)
