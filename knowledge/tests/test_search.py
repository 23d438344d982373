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


def test_only_the_words_that_name_something_exactly_are_searched_as_words():
    from knowledge.search_terms import exact_words

    assert exact_words("How long is the PX-4410 warranty?") == ["PX-4410"]
    assert exact_words("What comes with application code HARBOR12?") == ["HARBOR12"]
    assert exact_words("Is parking on Elm Street free?") == ["Elm", "Street"]
    assert exact_words("Call extension 219 please") == ["219"]
    assert exact_words("Can my kid's grandma take her to the dentist?") == []
    assert exact_words("What does it cost to leave the car overnight?") == []


@pytest.mark.django_db(databases=["default", "owner"])
def test_the_search_by_words_uses_its_index_and_sees_only_the_scoped_organization(organization, owner, other_organization):
    """The owner's function behind the search by words: the GIN index, and the policy's very filter."""
    from django.db import connection, connections

    from knowledge.scope import organization_scope
    from knowledge.search_terms import query_terms
    from knowledge.services import document_add, document_process, knowledge_base_create

    base = knowledge_base_create(organization=organization, actor=owner, name="Codes")
    document = document_add(
        organization=organization, actor=owner, knowledge_base=base, name="codes.txt",
        content=b"The PX-4410 valve has a five year warranty. The BSP-C kit fits every tap.",
    )  # fmt: skip
    document_process(document)
    terms = query_terms("PX-4410", organization_id=organization.pk)
    call = "SELECT id FROM knowledge_keyword_search(%s::uuid[], %s::tsquery, 10)"
    with connection.cursor() as cursor:
        cursor.execute(call, [[str(base.pk)], terms])
        assert cursor.fetchall() == []  # no organization named: nothing
    with organization_scope(other_organization), connection.cursor() as cursor:
        cursor.execute(call, [[str(base.pk)], terms])
        assert cursor.fetchall() == []  # another organization named: nothing of this one
    with organization_scope(organization), connection.cursor() as cursor:
        cursor.execute(call, [[str(base.pk)], terms])
        assert len(cursor.fetchall()) == 1
    # The function's query can use the GIN index (the owner is not subject to the policy that would prevent it).
    with connections["owner"].cursor() as cursor:
        cursor.execute("SET enable_seqscan = off")
        cursor.execute(
            "EXPLAIN SELECT id FROM knowledge_chunk WHERE organization_id = %s AND search_terms @@ %s::tsquery",
            [organization.pk, terms],
        )
        plan = "\n".join(row[0] for row in cursor.fetchall())
        cursor.execute("RESET enable_seqscan")
    assert "knowledge_chunk" in plan and ("Bitmap Index Scan" in plan or "Index Scan" in plan), plan
