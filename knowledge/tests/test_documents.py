"""Documents: the upload rules, processing into chunks, reprocessing and deletion (C19, C36)."""

from __future__ import annotations

import pytest
from django.db import connection

from knowledge.models import Chunk, Document, DocumentStatus, KnowledgeBase
from knowledge.scope import organization_scope
from knowledge.selectors import search
from knowledge.services import (
    DuplicateDocument,
    QuotaExceeded,
    UnsupportedFile,
    UploadTooLarge,
    document_add,
    document_delete,
    document_process,
    document_reprocess,
    knowledge_base_create,
)
from knowledge.tests.pdfs import blank_pdf, broken_stream_pdf, encrypted_pdf, text_pdf

pytestmark = pytest.mark.django_db

MB = 1024 * 1024

HANDBOOK = """# Riverside Dental patient handbook

## Opening hours

The practice is open Monday to Thursday from 8 am to 6 pm and on Friday from 8 am to 1 pm.
We are closed on weekends and public holidays.

## Cancellations

Please cancel at least 24 hours before your appointment. A missed appointment without notice costs 45 dollars.

## Emergencies

For a dental emergency outside opening hours call extension 4410 and the dentist on duty calls you back.
"""


def chunks_of(document) -> list[Chunk]:
    with organization_scope(document.organization_id):
        return list(Chunk.objects.for_org(document.organization_id).filter(document_id=document.pk).order_by("ordinal"))


@pytest.fixture
def base(organization, owner):
    return knowledge_base_create(organization=organization, actor=owner, name="Patient handbook")


def add(base, owner, content, name="handbook.md", **kwargs):
    return document_add(
        organization=base.organization, actor=owner, knowledge_base=base, name=name, content=content, **kwargs
    )


def test_a_text_document_is_chunked_embedded_and_found(base, owner):
    document = add(base, owner, HANDBOOK.encode())
    assert document.status == DocumentStatus.QUEUED and document.kind == "text"
    assert document_process(document) == DocumentStatus.READY
    document.refresh_from_db()
    assert document.status == DocumentStatus.READY and document.chunks_done == document.chunks_total > 0
    assert document.pages_total == document.pages_done == 1
    base.refresh_from_db()
    assert base.chunk_count == document.chunks_total

    hits = search(base.organization, [base], "When can I come in on a Friday?", k=1)
    assert len(hits) == 1 and "Friday from 8 am to 1 pm" in hits[0].text
    assert hits[0].document_name == "handbook.md" and hits[0].page_start == 1
    hits = search(base.organization, [base], "extension 4410", k=1, mode="keyword")
    assert "4410" in hits[0].text and hits[0].keyword_rank == 1


def test_pdf_pages_are_kept_on_the_chunks(base, owner):
    pages = [[f"Page one talks about invoices and payment plans {n}." for n in range(10)],
             ["The parking garage is on Elm Street behind the clinic."]]
    document = add(base, owner, text_pdf(pages), name="guide.pdf")
    assert document.kind == "pdf"
    document_process(document)
    document.refresh_from_db()
    assert document.status == DocumentStatus.READY and document.pages_total == 2
    hits = search(base.organization, [base], "Where do I park my car?", k=1)
    assert "parking garage" in hits[0].text and hits[0].page_end == 2


def test_exactly_the_limit_passes_and_one_byte_more_is_refused(base, owner, settings):
    line = b"The quick brown fox jumps over the lazy dog again and again.\n"
    content = (line * (20 * MB // len(line) + 1))[: 20 * MB]
    assert len(content) == 20 * MB
    document = add(base, owner, content, name="big.txt")
    assert document.size_bytes == 20 * MB
    with pytest.raises(UploadTooLarge) as refused:
        add(base, owner, content + b"x", name="bigger.txt")
    assert refused.value.status == 413 and "20 MB" in refused.value.message
    assert Document.objects.for_org(base.organization).count() == 1


@pytest.mark.parametrize(
    "content, reason",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "binary"),
        (b"<!DOCTYPE html><html><body>Hello</body></html>", "Web pages"),
        (b"<html>\n<head><title>Renamed page</title></head><body>Hi</body></html>", "Web pages"),
        (b"<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>", "Web pages"),
        (b"PK\x03\x04" + bytes(100), "binary"),
        (b"", "empty"),
        ("caf\xe9 cr\xe8me".encode("latin-1"), "UTF-8"),
    ],
)
def test_files_are_judged_by_their_bytes_not_their_name(base, owner, content, reason):
    for name in ("notes.pdf", "notes.txt", "notes.md"):
        with pytest.raises(UnsupportedFile) as refused:
            add(base, owner, content, name=name)
        assert refused.value.status == 415 and reason in refused.value.message
    assert not Document.objects.for_org(base.organization).exists()


def test_a_declared_charset_is_honoured(base, owner):
    document = add(base, owner, "Caf\xe9 cr\xe8me is served all day.".encode("latin-1"), charset="ISO-8859-1")
    document_process(document)
    document.refresh_from_db()
    assert document.status == DocumentStatus.READY
    assert "Café crème" in chunks_of(document)[0].text


def test_the_same_file_twice_is_reported_not_stored(base, owner, organization):
    first = add(base, owner, HANDBOOK.encode(), name="a.md")
    with pytest.raises(DuplicateDocument) as refused:
        add(base, owner, HANDBOOK.encode(), name="b.md")
    assert refused.value.status == 409 and "“a.md”" in refused.value.message and refused.value.existing == first
    assert Document.objects.for_org(organization).count() == 1
    # Another knowledge base may hold the same file.
    other = knowledge_base_create(organization=organization, actor=owner, name="Front desk")
    add(other, owner, HANDBOOK.encode(), name="a.md")


def test_the_plans_storage_quota_is_enforced(base, owner, organization):
    from accounts.entitlements import plan_limit

    limit = plan_limit(organization, "knowledge_storage_bytes")
    line = b"Appointments are booked by phone or online.\n"
    big = (line * (19 * MB // len(line)))
    stored = 0
    n = 0
    with pytest.raises(QuotaExceeded) as refused:
        while True:
            add(base, owner, big + str(n).encode(), name=f"part{n}.txt")
            stored += len(big) + len(str(n))
            n += 1
            assert stored <= limit
    assert refused.value.status == 413 and "Your Starter plan allows 100 MB knowledge storage" in refused.value.message
    assert "The Pro plan allows 1 GB" in refused.value.message
    assert sum(Document.objects.for_org(organization).values_list("size_bytes", flat=True)) <= limit


@pytest.mark.parametrize(
    "content, code, words",
    [
        (encrypted_pdf(text_pdf([["Secret prices."]])), "encrypted", "password"),
        (text_pdf([["cut short"]])[:150], "unreadable", "damaged"),
        (broken_stream_pdf(2), "no_text", "text recognition"),
        (blank_pdf(2), "no_text", "text recognition"),
    ],
)
def test_pdfs_that_cannot_be_indexed_fail_with_a_specific_reason(base, owner, content, code, words):
    document = add(base, owner, content, name="scan.pdf")
    assert document_process(document) == DocumentStatus.FAILED
    document.refresh_from_db()
    assert document.status == DocumentStatus.FAILED and document.error_code == code
    assert words in document.error_message
    assert chunks_of(document) == []


def test_processing_again_replaces_the_chunks_never_adds_to_them(base, owner):
    document = add(base, owner, HANDBOOK.encode())
    document_process(document)
    first = chunks_of(document)
    document_reprocess(organization=base.organization, actor=owner, document=document)
    document_process(document)
    document_process(document)  # a task delivered twice
    again = chunks_of(document)
    assert [c.ordinal for c in again] == [c.ordinal for c in first]
    assert {c.pk for c in again}.isdisjoint({c.pk for c in first})
    base.refresh_from_db()
    assert base.chunk_count == len(again)


def test_deleting_a_document_removes_its_chunks_and_its_file(base, owner, django_capture_on_commit_callbacks):
    document = add(base, owner, HANDBOOK.encode())
    document_process(document)
    storage, name = document.file.storage, document.file.name
    assert storage.backend.exists(name) and chunks_of(document)
    with django_capture_on_commit_callbacks(execute=True):
        document_delete(organization=base.organization, actor=owner, document=document)
    with organization_scope(base.organization):
        assert not Chunk.objects.for_org(base.organization).filter(document_id=document.pk).exists()
    assert not storage.backend.exists(name)
    base.refresh_from_db()
    assert base.chunk_count == 0


def test_stored_text_is_encrypted_and_the_keyword_index_holds_no_word(base, owner):
    document = add(base, owner, HANDBOOK.encode())
    document_process(document)
    with organization_scope(base.organization), connection.cursor() as cursor:
        cursor.execute("SELECT text, search_terms::text FROM knowledge_chunk WHERE document_id = %s", [document.pk])
        rows = cursor.fetchall()
    assert rows
    for text, terms in rows:
        assert b"Friday" not in bytes(text) and b"practice" not in bytes(text)
        for word in ("friday", "practic", "dentist", "4410", "cancel"):
            assert word not in terms
    with document.file.storage.backend.open(document.file.name) as raw:
        assert b"Friday" not in raw.read()


def test_a_search_returns_k_rows_whenever_k_exist_by_index_or_exactly(base, owner, settings):
    document = add(base, owner, text_pdf([[f"Line {n} of page {p} about topic {p * 7 + n}." for n in range(40)]
                                          for p in range(1, 9)]), name="long.pdf")
    document_process(document)
    base.refresh_from_db()
    assert base.chunk_count >= 12
    for threshold in (10**6, 0):  # exact, then the HNSW index with iterative scans
        settings.KNOWLEDGE_EXACT_SEARCH_MAX_CHUNKS = threshold
        for k in (1, 5, 12):
            hits = search(base.organization, [base], "topic of page three", k=k, mode="vector")
            assert len(hits) == k
        hits = search(base.organization, [base], "topic", k=50)
        assert len(hits) == base.chunk_count


def test_bad_questions_get_clear_errors(base):
    from jagcall.kernel.errors import ApplicationError

    for query, k, words in (("", 5, "Write a question"), ("x" * 1001, 5, "at most 1000"), ("hours", 0, "from 1 to 50")):
        with pytest.raises(ApplicationError) as refused:
            search(base.organization, [base], query, k=k)
        assert words in refused.value.message


def test_another_organizations_knowledge_base_is_ignored(base, owner, other_organization, other_owner):
    document = add(base, owner, HANDBOOK.encode())
    document_process(document)
    assert search(other_organization, [base], "opening hours", k=5) == []
    assert KnowledgeBase.objects.for_org(other_organization).count() == 0


def test_row_level_security_hides_chunks_outside_their_organizations_scope(base, owner, other_organization):
    from django.db import ProgrammingError, transaction

    document = add(base, owner, HANDBOOK.encode())
    document_process(document)
    count = "SELECT count(*) FROM knowledge_chunk"
    with connection.cursor() as cursor:
        cursor.execute(count)
        assert cursor.fetchone()[0] == 0  # no organization named: no chunk at all
        cursor.execute("SELECT count(*) FROM (" + " UNION ALL ".join(
            f"SELECT 1 FROM knowledge_chunk_p{n:02d}" for n in range(16)) + ") AS every_partition")
        assert cursor.fetchone()[0] == 0  # naming a partition directly does not get around it
    with organization_scope(other_organization), connection.cursor() as cursor:
        cursor.execute(count)
        assert cursor.fetchone()[0] == 0  # a query that forgot its filter sees only its own organization's rows
        cursor.execute("UPDATE knowledge_chunk SET ordinal = ordinal + 1000")
        assert cursor.rowcount == 0
        # [!!] Nor can it write a row into another organization.
        with pytest.raises(ProgrammingError, match="row-level security"), transaction.atomic():
            cursor.execute(
                "INSERT INTO knowledge_chunk (id, organization_id, knowledge_base_id, document_id, ordinal, page_start,"
                " page_end, text, embedding, search_terms) SELECT gen_random_uuid(), %s, %s, %s, 999, 1, 1, 'x',"
                " array_fill(0.1, ARRAY[384])::halfvec, ''::tsvector",
                [base.organization_id, base.pk, document.pk],
            )
    document.refresh_from_db()
    with organization_scope(base.organization), connection.cursor() as cursor:
        cursor.execute(count)
        assert cursor.fetchone()[0] == document.chunks_total > 0


@pytest.mark.django_db(databases=["default", "owner"])
def test_the_start_up_check_passes_for_the_restricted_role_and_names_what_would_break_the_wall(settings):
    from django.core.management import call_command

    from knowledge.checks import chunk_security_problems

    assert chunk_security_problems(using="default") == []
    call_command("check", "--database", "default", "--fail-level", "ERROR")
    # The owner of the table (the migrations' role) is not subject to its policy: the check says so.
    problems = chunk_security_problems(using="owner")
    assert any("owns knowledge_chunk" in p or "bypasses" in p for p in problems), problems
