"""Knowledge bases over the API: CRUD, uploads with their limits and refusals, processing state, search,
scopes, and one organization only. Uploads go through the test client as multipart bodies."""

from __future__ import annotations

import uuid

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from accounts.api_keys.services import api_key_create
from compliance.models import AuditEvent
from knowledge.models import Document, DocumentStatus, KnowledgeBase
from knowledge.services import document_add, document_process, knowledge_base_create
from knowledge.tests.pdfs import blank_pdf, encrypted_pdf, text_pdf

pytestmark = pytest.mark.django_db

BASES = "/api/v1/knowledge-bases"
MB = 1024 * 1024
BOTH = ("knowledge:read", "knowledge:write")

HANDBOOK = """# Riverside Dental patient handbook

## Opening hours

The practice is open Monday to Thursday from 8 am to 6 pm and on Friday from 8 am to 1 pm.
We are closed on weekends and public holidays.

## Emergencies

For a dental emergency outside opening hours call extension 4410 and the dentist on duty calls you back.
"""


def client_with(api_client, organization, owner, *scopes):
    _key, raw = api_key_create(organization=organization, actor=owner, name="Knowledge", scopes=list(scopes))
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw}")
    return api_client


def upload(client, base_id, content: bytes, filename="handbook.md", content_type="text/plain", **fields):
    data = {"file": SimpleUploadedFile(filename, content, content_type=content_type), **fields}
    return client.post(f"{BASES}/{base_id}/documents", data, format="multipart")


def stored(document_id) -> Document:
    return Document.objects.unscoped("test: inspects rows directly").get(pk=document_id)


@pytest.fixture
def base(organization, owner):
    return knowledge_base_create(organization=organization, actor=owner, name="Patient handbook")


@pytest.fixture
def client(api_client, organization, owner):
    return client_with(api_client, organization, owner, *BOTH)


# --- knowledge bases ---------------------------------------------------------------------


def test_create_list_get_patch_delete(client, organization):
    created = client.post(BASES, {"name": "Front desk", "description": "What reception knows"}, format="json")
    assert created.status_code == 201, created.json()
    body = created.json()
    assert (body["name"], body["description"], body["document_count"], body["chunk_count"]) == (
        "Front desk", "What reception knows", 0, 0
    )
    assert created["Location"] == f"{BASES}/{body['id']}"
    client.post(BASES, {"name": "Billing"}, format="json")

    listed = client.get(BASES).json()
    assert [b["name"] for b in listed["results"]] == ["Billing", "Front desk"] and listed["next"] is None
    assert client.get(f"{BASES}/{body['id']}").json()["description"] == "What reception knows"

    changed = client.patch(f"{BASES}/{body['id']}", {"description": "Hours and prices"}, format="json")
    assert changed.status_code == 200, changed.json()
    assert (changed.json()["name"], changed.json()["description"]) == ("Front desk", "Hours and prices")
    event = AuditEvent.objects.unscoped("test: inspects rows directly").get(action="knowledge.base_updated")
    assert event.actor_type == "api_key" and event.resource_id == body["id"]

    assert client.delete(f"{BASES}/{body['id']}").status_code == 204
    assert client.get(f"{BASES}/{body['id']}").status_code == 404
    assert list(KnowledgeBase.objects.for_org(organization).values_list("name", flat=True)) == ["Billing"]


def test_counts_follow_the_documents(client, base):
    document = upload(client, base.pk, HANDBOOK.encode()).json()
    upload(client, base.pk, b"Parking is behind the clinic on Elm Street.", filename="parking.txt")
    assert client.get(f"{BASES}/{base.pk}").json()["document_count"] == 2
    document_process(stored(document["id"]))
    shown = client.get(BASES).json()["results"][0]
    assert shown["document_count"] == 2
    assert shown["chunk_count"] == stored(document["id"]).chunks_total > 0


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"name": "  "}, "name", "Give the knowledge base a name"),
        ({"name": "patient HANDBOOK"}, "name", "already called"),
        ({"name": "x" * 121}, "name", "at most 120"),
        ({"description": "no name"}, "name", "required"),
        ({"name": "Ok", "description": "d" * 2001}, "description", "at most 2000"),
        ({"name": ["a list"]}, "name", "valid string"),
    ],
)
def test_refused_names_are_400_naming_the_field(client, base, body, field, words):
    response = client.post(BASES, body, format="json")
    assert response.status_code == 400, response.json()
    error = response.json()["error"]
    assert list(error["details"]) == [field] and words in error["details"][field][0]
    assert KnowledgeBase.objects.for_org(base.organization).count() == 1


def test_renaming_onto_another_name_is_refused(client, base, organization, owner):
    other = knowledge_base_create(organization=organization, actor=owner, name="Billing")
    response = client.patch(f"{BASES}/{other.pk}", {"name": "PATIENT handbook"}, format="json")
    assert response.status_code == 400 and list(response.json()["error"]["details"]) == ["name"]
    other.refresh_from_db()
    assert other.name == "Billing"


# --- documents -----------------------------------------------------------------------------


def test_upload_process_read_and_delete(client, base):
    response = upload(client, base.pk, HANDBOOK.encode(), filename="handbook.md")
    assert response.status_code == 201, response.json()
    document = response.json()
    assert (document["status"], document["kind"], document["name"]) == ("queued", "text", "handbook.md")
    assert document["size_bytes"] == len(HANDBOOK.encode()) and document["progress"] == 0
    assert document["knowledge_base"] == str(base.pk)
    url = f"{BASES}/{base.pk}/documents/{document['id']}"
    assert response["Location"] == url

    assert document_process(stored(document["id"])) == DocumentStatus.READY
    shown = client.get(url).json()
    assert (shown["status"], shown["error_code"], shown["error_message"], shown["progress"]) == ("ready", "", "", 100)
    assert shown["pages_total"] == shown["pages_done"] == 1
    assert shown["chunks_total"] == shown["chunks_done"] > 0 and shown["processed_at"]

    listed = client.get(f"{BASES}/{base.pk}/documents").json()
    assert [d["id"] for d in listed["results"]] == [document["id"]]

    assert client.delete(url).status_code == 204
    assert client.get(url).status_code == 404
    assert not Document.objects.for_org(base.organization).exists()
    base.refresh_from_db()
    assert base.chunk_count == 0


def test_a_name_may_be_given(client, base):
    response = upload(client, base.pk, HANDBOOK.encode(), filename="hb.md", name="Patient handbook 2026")
    assert response.status_code == 201 and response.json()["name"] == "Patient handbook 2026"


def test_the_declared_charset_of_the_part_is_used(client, base):
    latin = "Caf\xe9 cr\xe8me is served all day.".encode("latin-1")
    refused = upload(client, base.pk, latin, filename="menu.txt")
    assert refused.status_code == 415 and refused.json()["error"]["code"] == "unsupported_file"
    response = upload(client, base.pk, latin, filename="menu.txt", content_type="text/plain; charset=ISO-8859-1")
    assert response.status_code == 201, response.json()
    document = stored(response.json()["id"])
    assert document.charset == "iso-8859-1"
    assert document_process(document) == DocumentStatus.READY


def test_exactly_20_mb_passes_and_one_byte_more_is_413(client, base):
    line = b"The quick brown fox jumps over the lazy dog again and again.\n"
    content = (line * (20 * MB // len(line) + 1))[: 20 * MB]
    response = upload(client, base.pk, content, filename="big.txt")
    assert response.status_code == 201, response.json()
    assert response.json()["size_bytes"] == 20 * MB
    content += b"!"
    response = upload(client, base.pk, content, filename="bigger.txt")
    del content
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "file_too_large" and list(error["details"]) == ["file"]
    # Cut off while the body was read (the service, given the whole file, would have named its size).
    assert error["message"].startswith("This file is larger than 20 MB")
    assert Document.objects.for_org(base.organization).count() == 1


def test_a_body_declared_far_over_the_limit_is_refused_before_it_is_read(client, base):
    # The test client's payload holds these few bytes: reading past them would fail the request.
    response = client.generic(
        "POST",
        f"{BASES}/{base.pk}/documents",
        b"--x\r\n",
        content_type="multipart/form-data; boundary=x",
        CONTENT_LENGTH=str(64 * MB),
    )
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "file_too_large"
    assert "20 MB" in response.json()["error"]["message"]


def test_a_signed_in_session_is_limited_before_its_csrf_check_reads_the_form(owner, organization, base, settings):
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = 1024
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(owner)
    browser.get("/o/acme-dental/team/")  # sets the csrftoken cookie
    headers = {"X-CSRFToken": browser.cookies[settings.CSRF_COOKIE_NAME].value, "X-Organization": organization.slug}
    url = f"{BASES}/{base.pk}/documents"
    exact = SimpleUploadedFile("a.txt", b"a" * 1024, content_type="text/plain")
    assert browser.post(url, {"file": exact}, headers=headers).status_code == 201
    over = SimpleUploadedFile("b.txt", b"b" * 1025, content_type="text/plain")
    response = browser.post(url, {"file": over}, headers=headers)
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"
    # The limit's own message: the upload was cut off while the CSRF check read the form.
    assert response.json()["error"]["message"].startswith("This file is larger than")
    assert Document.objects.for_org(organization).count() == 1


@pytest.mark.parametrize(
    "content, words",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(200), "binary"),
        (b"<!DOCTYPE html><html><body>Hello</body></html>", "Web pages"),
    ],
)
def test_a_renamed_image_or_web_page_is_415(client, base, content, words):
    response = upload(client, base.pk, content, filename="notes.pdf", content_type="application/pdf")
    assert response.status_code == 415
    error = response.json()["error"]
    assert error["code"] == "unsupported_file" and words in error["message"]
    assert not Document.objects.for_org(base.organization).exists()


def test_the_same_file_twice_is_409_naming_the_document_that_holds_it(client, base):
    first = upload(client, base.pk, HANDBOOK.encode(), filename="a.md").json()
    response = upload(client, base.pk, HANDBOOK.encode(), filename="b.md")
    assert response.status_code == 409
    error = response.json()["error"]
    assert error["code"] == "duplicate_document" and "“a.md”" in error["message"]
    assert error["details"]["document_id"] == [first["id"]]
    assert Document.objects.for_org(base.organization).count() == 1


def test_over_the_plans_quota_is_413(client, base):
    from accounts.entitlements import plan_limit

    limit = plan_limit(base.organization, "knowledge_storage_bytes")
    filler = Document.objects.create(
        organization=base.organization, knowledge_base=base, name="filler", kind="text",
        size_bytes=limit - 10, content_hash="filler",
    )
    response = upload(client, base.pk, b"Eleven byte", filename="small.txt")
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "storage_quota_exceeded"
    assert list(Document.objects.for_org(base.organization)) == [filler]


def test_without_a_file_is_400_and_json_is_415(client, base):
    response = client.post(f"{BASES}/{base.pk}/documents", {"name": "x"}, format="multipart")
    assert response.status_code == 400 and list(response.json()["error"]["details"]) == ["file"]
    response = client.post(f"{BASES}/{base.pk}/documents", {"file": "text"}, format="json")
    assert response.status_code == 415 and response.json()["error"]["code"] == "unsupported_media_type"
    assert not Document.objects.for_org(base.organization).exists()


@pytest.mark.parametrize(
    "content, code, words",
    [
        (encrypted_pdf(text_pdf([["Secret prices."]])), "encrypted", "password"),
        (blank_pdf(2), "no_text", "text recognition"),
    ],
)
def test_a_pdf_that_cannot_be_indexed_shows_failed_with_its_reason(client, base, content, code, words):
    response = upload(client, base.pk, content, filename="scan.pdf", content_type="application/pdf")
    assert response.status_code == 201, response.json()
    url = f"{BASES}/{base.pk}/documents/{response.json()['id']}"
    assert document_process(stored(response.json()["id"])) == DocumentStatus.FAILED
    shown = client.get(url).json()
    assert (shown["status"], shown["error_code"], shown["progress"]) == ("failed", code, 0)
    assert words in shown["error_message"] and shown["chunks_total"] == 0

    again = client.post(f"{url}/reprocess")
    assert again.status_code == 202, again.json()
    assert (again.json()["status"], again.json()["error_code"]) == ("queued", "")
    busy = client.post(f"{url}/reprocess")
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "busy"
    assert stored(shown["id"]).status == DocumentStatus.QUEUED


def test_an_upload_with_an_idempotency_key_is_stored_once(client, base):
    key = {"HTTP_IDEMPOTENCY_KEY": str(uuid.uuid4())}
    data = {"file": SimpleUploadedFile("a.md", HANDBOOK.encode(), content_type="text/plain")}
    first = client.post(f"{BASES}/{base.pk}/documents", data, format="multipart", **key)
    data = {"file": SimpleUploadedFile("a.md", HANDBOOK.encode(), content_type="text/plain")}
    second = client.post(f"{BASES}/{base.pk}/documents", data, format="multipart", **key)
    assert first.status_code == second.status_code == 201
    assert second["Idempotent-Replayed"] == "true" and second.json()["id"] == first.json()["id"]
    assert Document.objects.for_org(base.organization).count() == 1


# --- search ---------------------------------------------------------------------------------


@pytest.fixture
def ready(base, owner):
    """A two-page PDF and the handbook, processed."""
    pages = [
        [f"Page one talks about invoices and payment plans {n}." for n in range(10)],
        ["The parking garage is on Elm Street behind the clinic."],
    ]
    guide = document_add(
        organization=base.organization, actor=owner, knowledge_base=base, name="guide.pdf", content=text_pdf(pages)
    )
    handbook = document_add(
        organization=base.organization, actor=owner, knowledge_base=base, name="handbook.md", content=HANDBOOK.encode()
    )
    for document in (guide, handbook):
        assert document_process(document) == DocumentStatus.READY
    return {"guide": guide, "handbook": handbook}


def test_search_returns_passages_with_pages_and_scores(client, base, ready):
    response = client.post(f"{BASES}/{base.pk}/search", {"query": "Where do I park my car?", "k": 1}, format="json")
    assert response.status_code == 200, response.json()
    [hit] = response.json()["results"]
    assert "parking garage" in hit["text"]
    assert hit["document"] == {"id": str(ready["guide"].pk), "name": "guide.pdf"}
    # The parking garage is on page 2; a passage may start on the page before it.
    assert hit["page_end"] == 2 and hit["page_start"] in (1, 2)
    assert hit["pages"] == ("2" if hit["page_start"] == 2 else "1-2")
    assert hit["vector_rank"] == 1 and 0 < hit["similarity"] <= 1 and hit["score"] > 0

    response = client.post(f"{BASES}/{base.pk}/search", {"query": "extension 4410", "mode": "keyword"}, format="json")
    hits = response.json()["results"]
    assert hits and "4410" in hits[0]["text"] and hits[0]["keyword_rank"] == 1
    assert hits[0]["vector_rank"] is None and hits[0]["similarity"] is None
    assert hits[0]["document"]["name"] == "handbook.md"

    response = client.post(f"{BASES}/{base.pk}/search", {"query": "When are you open on Friday?"}, format="json")
    hits = response.json()["results"]
    chunks = Document.objects.for_org(base.organization).values_list("chunks_total", flat=True)
    assert len(hits) == min(5, sum(chunks))
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)


@pytest.mark.parametrize(
    "body, field",
    [
        ({"query": "hours", "k": 0}, "k"),
        ({"query": "hours", "k": 51}, "k"),
        ({"query": "hours", "k": "5"}, "k"),
        ({"query": "hours", "k": True}, "k"),
        ({"query": "hours", "k": 2.5}, "k"),
        ({"query": ""}, "query"),
        ({"query": "   "}, "query"),
        ({"query": 42}, "query"),
        ({"query": None}, "query"),
        ({"query": ["hours"]}, "query"),
        ({"k": 3}, "query"),
        ({"query": "x" * 1001}, "query"),
        ({"query": "hours", "mode": "fuzzy"}, "mode"),
        ({"query": "hours", "mode": ["hybrid"]}, "mode"),
        (["hours"], "non_field_errors"),
    ],
)
def test_bad_search_input_is_400_naming_the_field(client, base, body, field):
    response = client.post(f"{BASES}/{base.pk}/search", body, format="json")
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert field in error["details"], error


# --- scopes and organizations ------------------------------------------------------------------


def test_scopes_are_enforced(api_client, organization, owner, base, ready):
    document_url = f"{BASES}/{base.pk}/documents/{ready['handbook'].pk}"
    reader = client_with(api_client, organization, owner, "knowledge:read")
    assert reader.get(BASES).status_code == 200
    assert reader.get(f"{BASES}/{base.pk}/documents").status_code == 200
    assert reader.get(document_url).status_code == 200
    searched = reader.post(f"{BASES}/{base.pk}/search", {"query": "Friday hours"}, format="json")
    assert searched.status_code == 200 and searched.json()["results"]

    refused = upload(reader, base.pk, b"Parking is behind the clinic.", filename="parking.txt")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "missing_scope"
    assert "knowledge:write" in refused.json()["error"]["message"]
    for response in (
        reader.post(BASES, {"name": "New"}, format="json"),
        reader.patch(f"{BASES}/{base.pk}", {"name": "New"}, format="json"),
        reader.delete(f"{BASES}/{base.pk}"),
        reader.delete(document_url),
        reader.post(f"{document_url}/reprocess"),
    ):
        assert response.status_code == 403, response.content
    assert Document.objects.for_org(organization).count() == 2
    assert list(KnowledgeBase.objects.for_org(organization).values_list("name", flat=True)) == ["Patient handbook"]

    writer = client_with(api_client, organization, owner, "knowledge:write")
    assert writer.get(BASES).status_code == 403
    assert writer.post(f"{BASES}/{base.pk}/search", {"query": "Friday"}, format="json").status_code == 403
    assert upload(writer, base.pk, b"Parking is behind the clinic.", filename="parking.txt").status_code == 201

    calls_only = client_with(api_client, organization, owner, "calls:read", "calls:write")
    assert calls_only.get(BASES).status_code == 403


def test_another_organizations_ids_answer_404(client, other_organization, other_owner):
    theirs = knowledge_base_create(organization=other_organization, actor=other_owner, name="Their handbook")
    document = document_add(
        organization=other_organization, actor=other_owner, knowledge_base=theirs, name="theirs.md",
        content=HANDBOOK.encode(),
    )
    document_process(document)
    base_url = f"{BASES}/{theirs.pk}"
    document_url = f"{base_url}/documents/{document.pk}"
    answers = [
        client.get(base_url),
        client.patch(base_url, {"name": "Mine now"}, format="json"),
        client.delete(base_url),
        client.get(f"{base_url}/documents"),
        upload(client, theirs.pk, b"Planted text.", filename="planted.txt"),
        client.get(document_url),
        client.delete(document_url),
        client.post(f"{document_url}/reprocess"),
        client.post(f"{base_url}/search", {"query": "Friday hours"}, format="json"),
        client.get(f"{BASES}/{uuid.uuid4()}"),
    ]
    assert [a.status_code for a in answers] == [404] * len(answers), [a.content for a in answers]
    assert all(a.json()["error"]["code"] == "not_found" for a in answers)
    assert client.get(BASES).json()["results"] == []
    theirs.refresh_from_db()
    assert theirs.name == "Their handbook"
    assert stored(document.pk).status == DocumentStatus.READY
    assert Document.objects.for_org(other_organization).count() == 1


def test_their_document_under_our_knowledge_base_is_404(client, base, other_organization, other_owner):
    theirs = knowledge_base_create(organization=other_organization, actor=other_owner, name="Theirs")
    document = document_add(
        organization=other_organization, actor=other_owner, knowledge_base=theirs, name="t.md",
        content=HANDBOOK.encode(),
    )
    url = f"{BASES}/{base.pk}/documents/{document.pk}"
    assert [client.get(url).status_code, client.delete(url).status_code] == [404, 404]
    assert stored(document.pk).status == DocumentStatus.QUEUED
