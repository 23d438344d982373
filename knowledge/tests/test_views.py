"""The knowledge base pages: list and create, uploads through the view (JSON and form), the documents table,
reprocess and delete, the playground, per role and across organizations."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from accounts.principals import Principal
from knowledge.models import Document, DocumentStatus, KnowledgeBase
from knowledge.services import document_add, document_fail, document_process, knowledge_base_create
from knowledge.tests.pdfs import text_pdf

pytestmark = pytest.mark.django_db

MB = 1024 * 1024
JSON = {"HTTP_ACCEPT": "application/json"}
OPENING_HOURS = (
    "Opening hours\n\nThe practice is open Monday to Thursday from 8 am to 6 pm and on Friday from 8 am to 1 pm.\n"
    "We are closed on weekends. For a dental emergency call extension 4410.\n"
)


def url(organization, name="knowledge:base-list", **kwargs):
    return reverse(name, kwargs={"org_slug": organization.slug, **kwargs})


@pytest.fixture
def base(organization, owner):
    return knowledge_base_create(organization=organization, actor=owner, name="Patient handbook")


def base_url(base, name="knowledge:base-detail", **kwargs):
    return url(base.organization, name, knowledge_base_id=base.pk, **kwargs)


def upload(client, base, name, content, **headers):
    from django.core.files.uploadedfile import SimpleUploadedFile

    return client.post(
        base_url(base, "knowledge:document-upload"), {"file": SimpleUploadedFile(name, content)}, **headers
    )


def text_of_size(size: int) -> bytes:
    line = b"The practice is open Monday to Thursday from 8 am to 6 pm.\n"
    return (line * (size // len(line) + 1))[:size]


# --- list and create -------------------------------------------------------------------------


def test_empty_list_says_what_a_knowledge_base_is_for(owner_client, organization):
    html = owner_client.get(url(organization)).content.decode()
    assert "No knowledge bases yet" in html and "documents an agent answers from" in html
    assert "Create your first knowledge base" in html and 'name="name"' in html


@pytest.mark.parametrize("role_user", ["owner", "admin_user", "member"])
def test_every_role_creates_and_uses_knowledge_bases(request, client, organization, role_user):
    client.force_login(request.getfixturevalue(role_user))
    response = client.post(url(organization), {"name": "Price list", "description": "What things cost"})
    base = KnowledgeBase.objects.for_org(organization).get(name="Price list")
    assert response.status_code == 302 and response["Location"] == base_url(base)
    page = client.get(base_url(base))
    assert page.status_code == 200 and "Drop PDF, text or Markdown files here" in page.content.decode()
    assert client.get(base_url(base, "knowledge:playground")).status_code == 200
    listing = client.get(url(organization)).content.decode()
    assert "Price list" in listing and "0 documents" in listing


def test_create_errors_come_back_on_their_field(owner_client, organization, base):
    response = owner_client.post(url(organization), {"name": "  "})
    assert response.status_code == 400
    assert response.context["form"].errors["name"] == ["Give the knowledge base a name, e.g. “Patient handbook”."]
    response = owner_client.post(url(organization), {"name": "patient HANDBOOK"})
    assert response.status_code == 400
    assert "Another knowledge base is already called" in response.context["form"].errors["name"][0]
    assert 'id="id_create_name_error"' in response.content.decode()
    assert KnowledgeBase.objects.for_org(organization).count() == 1


def test_list_shows_counts_and_status_summary(owner_client, organization, owner, base):
    ready = document_add(
        organization=organization, actor=owner, knowledge_base=base, name="hours.md", content=OPENING_HOURS.encode()
    )
    assert document_process(ready) == DocumentStatus.READY
    failed = document_add(
        organization=organization, actor=owner, knowledge_base=base, name="other.txt", content=b"Parking is on Elm."
    )
    document_fail(failed, "no_text", "No text could be read.")
    document_add(organization=organization, actor=owner, knowledge_base=base, name="new.txt", content=b"Fresh text.")
    ready.refresh_from_db()
    response = owner_client.get(url(organization))
    summary = next(b for b in response.context["knowledge_bases"] if b.pk == base.pk)
    assert (summary.documents_total, summary.documents_ready, summary.documents_working, summary.documents_failed) == (
        3, 1, 1, 1
    )  # fmt: skip
    html = response.content.decode()
    assert "3 documents" in html and f"{ready.chunks_total} passage" in html
    assert "1 ready" in html and "1 processing" in html and "1 failed" in html


# --- uploads ---------------------------------------------------------------------------------


def test_upload_of_exactly_the_limit_passes_and_one_byte_more_is_413(owner_client, base):
    response = upload(owner_client, base, "exact.txt", text_of_size(20 * MB), **JSON)
    assert response.status_code == 201, response.content[:300]
    body = response.json()
    document = Document.objects.for_org(base.organization).get(pk=body["document"]["id"])
    assert document.size_bytes == 20 * MB and body["document"]["status"] == "queued"
    assert f'data-document-id="{document.pk}"' in body["row"] and "exact.txt" in body["row"]
    assert body["storage"] == "20.0\xa0MB of your plan's 100.0\xa0MB in use."

    response = upload(owner_client, base, "over.txt", text_of_size(20 * MB + 1), **JSON)
    assert response.status_code == 413
    error = response.json()["error"]
    assert error["code"] == "file_too_large" and "20 MB" in error["message"]
    assert error["message"].endswith("Split it into smaller files.")
    assert Document.objects.for_org(base.organization).count() == 1


def test_a_renamed_binary_is_415(owner_client, base):
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
    response = upload(owner_client, base, "handbook.pdf", png, **JSON)
    assert response.status_code == 415
    assert response.json()["error"]["code"] == "unsupported_file" and response.json()["error"]["message"]
    assert not Document.objects.for_org(base.organization).exists()


def test_a_duplicate_is_409_naming_the_existing_document(owner_client, base):
    assert upload(owner_client, base, "hours.md", OPENING_HOURS.encode(), **JSON).status_code == 201
    response = upload(owner_client, base, "copy of hours.txt", OPENING_HOURS.encode(), **JSON)
    assert response.status_code == 409
    error = response.json()["error"]
    assert "already in this knowledge base, as “hours.md”" in error["message"]
    assert error["existing"]["name"] == "hours.md"
    assert Document.objects.for_org(base.organization).count() == 1


def test_quota_refusal_is_413_with_the_plan_message(owner_client, base, settings):
    from accounts.entitlements import plan_limit

    quota = plan_limit(base.organization, "knowledge_storage_bytes")
    settings.KNOWLEDGE_MAX_UPLOAD_BYTES = quota  # a single file that fills the plan
    assert upload(owner_client, base, "big.txt", text_of_size(quota - 10), **JSON).status_code == 201
    response = upload(owner_client, base, "more.txt", text_of_size(11), **JSON)
    assert response.status_code == 413 and response.json()["error"]["code"] == "storage_quota_exceeded"
    assert "Your Starter plan allows 100 MB knowledge storage" in response.json()["error"]["message"]
    assert "The Pro plan allows 1 GB" in response.json()["error"]["message"]


def test_upload_without_script_redirects_with_a_flash(owner_client, base):
    response = upload(owner_client, base, "hours.md", OPENING_HOURS.encode())
    assert response.status_code == 302 and response["Location"] == base_url(base)
    page = owner_client.get(response["Location"]).content.decode()
    assert "“hours.md” was added; it is processed in the background." in page
    assert "Waiting to be processed" in page

    response = upload(owner_client, base, "notes.txt", b"\x00\x01\x02binary\xff" * 50)
    assert response.status_code == 302
    assert "“notes.txt”: " in owner_client.get(response["Location"]).content.decode()
    response = owner_client.post(base_url(base, "knowledge:document-upload"), {})
    assert "Choose a PDF, text or Markdown file to upload." in owner_client.get(response["Location"]).content.decode()


def test_upload_checks_csrf_after_the_limit(owner, base, settings):
    client = Client(enforce_csrf_checks=True)
    client.force_login(owner)
    response = upload(client, base, "hours.md", OPENING_HOURS.encode(), **JSON)
    assert response.status_code == 403
    assert not Document.objects.for_org(base.organization).exists()
    page = client.get(base_url(base))
    token = page.cookies[settings.CSRF_COOKIE_NAME].value
    response = upload(client, base, "hours.md", OPENING_HOURS.encode(), HTTP_X_CSRFTOKEN=token, **JSON)
    assert response.status_code == 201


def test_a_declared_body_far_over_the_limit_is_refused_before_reading(owner_client, base):
    from django.core.files.uploadedfile import SimpleUploadedFile

    response = owner_client.post(
        base_url(base, "knowledge:document-upload"),
        {"file": SimpleUploadedFile("a.txt", b"small")},
        CONTENT_LENGTH=str(21 * MB + 512 * 1024),
        **JSON,
    )
    assert response.status_code == 413 and response.json()["error"]["code"] == "file_too_large"


# --- the documents table, reprocess, delete ------------------------------------------------------


def test_documents_table_shows_each_documents_state(owner_client, organization, owner, base):
    pdf = text_pdf([["Page one talks about invoices."], ["The parking garage is on Elm Street."]])
    ready = document_add(organization=organization, actor=owner, knowledge_base=base, name="guide.pdf", content=pdf)
    document_process(ready)
    failed = document_add(organization=organization, actor=owner, knowledge_base=base, name="scan.txt", content=b"x y")
    document_fail(failed, "no_text", "This PDF has no text layer; it looks scanned.")
    ready.refresh_from_db()
    html = owner_client.get(base_url(base)).content.decode()
    assert "guide.pdf" in html and "PDF" in html and f'data-doc-chunks>{ready.chunks_total}<' in html
    assert "data-doc-pages>2<" in html and f"by {owner.name or owner.email}" in html
    assert "This PDF has no text layer; it looks scanned." in html
    row = html.split(f'data-document-id="{failed.pk}"')[1].split("</tr>")[0]
    assert "Try again" in row and "data-doc-retry hidden" not in row
    ready_row = html.split(f'data-document-id="{ready.pk}"')[1].split("</tr>")[0]
    assert "data-doc-retry hidden" in ready_row and ">Ready<" in ready_row


def test_reprocess_a_failed_document(owner_client, organization, owner, base):
    document = document_add(
        organization=organization, actor=owner, knowledge_base=base, name="hours.md", content=OPENING_HOURS.encode()
    )
    response = owner_client.post(base_url(base, "knowledge:document-reprocess", document_id=document.pk), follow=True)
    assert "already being processed" in response.content.decode()
    document_fail(document, "timeout", "Processing took too long.")
    response = owner_client.post(base_url(base, "knowledge:document-reprocess", document_id=document.pk), follow=True)
    assert "“hours.md” is being processed again." in response.content.decode()
    document.refresh_from_db()
    assert document.status == DocumentStatus.QUEUED and document.error_message == ""


def test_delete_a_document_after_confirming(owner_client, organization, owner, base):
    document = document_add(
        organization=organization, actor=owner, knowledge_base=base, name="hours.md", content=OPENING_HOURS.encode()
    )
    delete_url = base_url(base, "knowledge:document-delete", document_id=document.pk)
    confirm = owner_client.get(delete_url).content.decode()
    assert "Delete “hours.md”?" in confirm and "Delete the document" in confirm
    assert Document.objects.for_org(organization).filter(pk=document.pk).exists()
    response = owner_client.post(delete_url, follow=True)
    assert "“hours.md” deleted" in response.content.decode()
    assert not Document.objects.for_org(organization).filter(pk=document.pk).exists()


def test_rename_describe_and_delete_the_knowledge_base(owner_client, organization, base):
    from telephony.tests.factories import AgentFactory

    response = owner_client.post(base_url(base, "knowledge:base-update"), {"name": "", "description": "x"})
    assert response.status_code == 400 and "Give the knowledge base a name" in response.content.decode()
    response = owner_client.post(
        base_url(base, "knowledge:base-update"), {"name": "Front desk handbook", "description": "Hours and prices"}
    )
    assert response.status_code == 302
    base.refresh_from_db()
    assert (base.name, base.description) == ("Front desk handbook", "Hours and prices")

    agent = AgentFactory(organization=organization, name="Reception")
    agent.knowledge_bases.add(base)
    confirm = owner_client.get(base_url(base, "knowledge:base-delete")).content.decode()
    assert "Reception" in confirm and "stop answering from it" in confirm
    response = owner_client.post(base_url(base, "knowledge:base-delete"), follow=True)
    assert "Knowledge base “Front desk handbook” deleted." in response.content.decode()
    assert not KnowledgeBase.objects.for_org(organization).exists()


# --- the playground --------------------------------------------------------------------------------


def test_playground_shows_what_an_agent_would_retrieve(owner_client, organization, owner, base):
    pdf = text_pdf([[f"Invoices are sent by email at the end of each month, reminder {n}." for n in range(40)],
                    ["The parking garage is on Elm Street behind the clinic, free for patients."]])  # fmt: skip
    document = document_add(organization=organization, actor=owner, knowledge_base=base, name="guide.pdf", content=pdf)
    assert document_process(document) == DocumentStatus.READY
    response = owner_client.get(base_url(base, "knowledge:playground"), {"query": "Where can I park?", "k": "1"})
    assert response.status_code == 200
    hits = response.context["hits"]
    assert len(hits) == 1 and "Elm Street" in hits[0].text and hits[0].page_end == 2
    html = response.content.decode()
    assert "guide.pdf" in html and f"data-passage-pages>{hits[0].pages}<" in html and "Elm Street" in html
    assert f"{hits[0].score:.4f}" in html and "meaning #1" in html
    if hits[0].keyword_rank:
        assert f"words #{hits[0].keyword_rank}" in html


def test_playground_errors_are_shown_on_the_field(owner_client, base):
    response = owner_client.get(base_url(base, "knowledge:playground"), {"query": "   ", "k": "5"})
    assert response.status_code == 400
    assert response.context["form"].errors["query"] == ["Write a question to search for."]
    assert 'id="id_query_error"' in response.content.decode()
    response = owner_client.get(base_url(base, "knowledge:playground"), {"query": "hours", "k": "500"})
    assert response.status_code == 400 and "k" in response.context["form"].errors


# --- other organizations ---------------------------------------------------------------------------


def test_another_organizations_ids_are_404(owner_client, organization, other_organization, other_owner, base):
    theirs = knowledge_base_create(organization=other_organization, actor=other_owner, name="Their handbook")
    their_document = document_add(
        organization=other_organization, actor=other_owner, knowledge_base=theirs, name="secret.txt",
        content=b"Their secret prices.",
    )  # fmt: skip
    mine = document_add(
        organization=organization, actor=Principal.system("operator"), knowledge_base=base, name="mine.txt",
        content=b"My prices.",
    )  # fmt: skip
    for name in ("knowledge:base-detail", "knowledge:base-delete", "knowledge:playground"):
        assert owner_client.get(url(organization, name, knowledge_base_id=theirs.pk)).status_code == 404
    for name in ("knowledge:base-update", "knowledge:base-delete", "knowledge:document-upload"):
        assert owner_client.post(url(organization, name, knowledge_base_id=theirs.pk), {"name": "x"}).status_code == 404
    for name in ("knowledge:document-reprocess", "knowledge:document-delete"):
        # Their document under their base, and their document under my base: both unknown here.
        for base_id in (theirs.pk, base.pk):
            target = url(organization, name, knowledge_base_id=base_id, document_id=their_document.pk)
            assert owner_client.post(target).status_code == 404
    # My document named under another of my bases is not found there either.
    other_base = knowledge_base_create(organization=organization, actor=Principal.system("operator"), name="Other")
    target = url(organization, "knowledge:document-delete", knowledge_base_id=other_base.pk, document_id=mine.pk)
    assert owner_client.post(target).status_code == 404
    assert Document.objects.for_org(other_organization).filter(pk=their_document.pk).exists()
    assert KnowledgeBase.objects.for_org(other_organization).get(pk=theirs.pk).name == "Their handbook"


def test_a_stranger_gets_404_and_a_signed_out_visitor_signs_in(client, other_owner, organization, base):
    client.force_login(other_owner)
    assert client.get(base_url(base)).status_code == 404
    client.logout()
    response = client.get(base_url(base))
    assert response.status_code == 302 and "/auth/login/" in response["Location"]


def test_the_original_file_downloads_decrypted_as_an_attachment_never_inline(owner_client, organization, owner, base):
    from knowledge.services import document_add

    content = b"A note: <script>alert(1)</script> is how a page would run code; downloaded, it stays text.\n"
    document = document_add(
        organization=organization, actor=owner, knowledge_base=base, name='notes "draft".txt', content=content
    )
    url = reverse(
        "knowledge:document-file",
        kwargs={"org_slug": organization.slug, "knowledge_base_id": base.pk, "document_id": document.pk},
    )
    response = owner_client.get(url)
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == content
    assert response["Content-Disposition"].startswith("attachment;") and "notes" in response["Content-Disposition"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Content-Type"] == "text/plain; charset=utf-8"
    assert response["Cache-Control"] == "private, no-store" and response["Content-Length"] == str(len(content))
    page = owner_client.get(reverse("knowledge:base-detail", kwargs={"org_slug": organization.slug,
                                                                     "knowledge_base_id": base.pk}))
    assert url in page.content.decode()
