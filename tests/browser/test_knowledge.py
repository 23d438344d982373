"""Knowledge bases in a real browser: create one, drop two files at once, watch both reach "Ready" live,
see a refused file's message under it, then ask the playground a question.

The documents are processed in a thread of the test (the live server runs in this process), so the
page hears each progress notice over its websocket exactly as it would from the embeddings worker.
"""

from __future__ import annotations

import threading

import pytest

from accounts.permissions import Role
from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from knowledge.models import Document, DocumentStatus
from knowledge.tests.pdfs import text_pdf

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]

HOURS = (
    "# Harbour Dental opening hours\n\n"
    "The practice is open Monday to Thursday from 8 am to 6 pm and on Friday from 8 am to 1 pm.\n"
    "We are closed on weekends and public holidays. For an emergency call extension 4410.\n"
)
GUIDE_PAGES = [
    [f"Invoices are sent by email at the end of each month, reminder number {n}." for n in range(40)],
    ["Parking: the garage on Elm Street behind the clinic is free for patients for two hours."],
]


def sign_in(page, base, email, password):
    page.goto(f"{base}/auth/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def process_queued(organization):
    """Process the organization's queued documents as the embeddings worker would, outside the browser's thread."""
    from django.db import connection

    from knowledge.services import document_process

    failures = []

    def run():
        try:
            for document in Document.objects.for_org(organization).filter(status=DocumentStatus.QUEUED):
                document_process(document)
        except Exception as error:  # reported to the test below
            failures.append(error)
        finally:
            connection.close()

    worker = threading.Thread(target=run, name="embeddings-worker")
    worker.start()
    worker.join(timeout=60)
    assert not worker.is_alive() and not failures, failures


def test_upload_two_files_watch_them_process_and_ask_the_playground(asgi_live_server, browser, shot):
    base = asgi_live_server
    organization = OrganizationFactory(name="Harbour Dental", slug="harbour-dental")
    owner = UserFactory(email="owner@harbour-dental.test", name="Hana Owner")
    MembershipFactory(organization=organization, user=owner, role=Role.OWNER)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, base, owner.email, DEFAULT_PASSWORD)
        page.wait_for_url(f"{base}/o/harbour-dental/")
        page.get_by_role("link", name="Knowledge", exact=True).click()
        page.get_by_text("No knowledge bases yet").wait_for()

        # Create: a missing name is refused on its field, then the knowledge base is made.
        page.get_by_role("button", name="Create knowledge base").click()
        page.locator("#id_create_name_error").get_by_text("Give the knowledge base a name").wait_for()
        page.get_by_label("Name").fill("Front desk handbook")
        page.get_by_label("Description").fill("Opening hours, parking and invoices")
        page.get_by_role("button", name="Create knowledge base").click()
        page.get_by_role("heading", name="Front desk handbook", level=1).wait_for()
        page.locator("[data-knowledge-live-status][data-state='live']").wait_for(timeout=10000)
        page.evaluate("window.__stayedOnPage = true")
        usage = page.locator("[data-storage-usage]")
        assert usage.inner_text().startswith("0\xa0bytes of your plan")

        # Two files dropped at once: each is uploaded in its own request and gets its row.
        page.locator("#id_file").set_input_files([
            {"name": "hours.md", "mimeType": "text/markdown", "buffer": HOURS.encode()},
            {"name": "guide.pdf", "mimeType": "application/pdf", "buffer": text_pdf(GUIDE_PAGES)},
        ])  # fmt: skip
        rows = page.locator("tbody[data-documents] tr[data-document-id]")
        page.locator("[data-upload][data-state='done']").nth(1).wait_for(timeout=15000)
        assert rows.count() == 2
        assert not usage.inner_text().startswith("0\xa0bytes")  # the storage in use follows the uploads
        for name in ("hours.md", "guide.pdf"):
            row = rows.filter(has_text=name)
            assert row.locator("[data-doc-label]").inner_text() == "Waiting to be processed…"

        # Processing runs; both bars reach "Ready" on the open page, pages and chunks filled in.
        process_queued(organization)
        for name in ("hours.md", "guide.pdf"):
            row = rows.filter(has_text=name)
            row.locator("[data-doc-label]", has_text="Ready").wait_for(timeout=15000)
            assert row.locator("[data-doc-progress]").evaluate("bar => bar.value") == 100
            assert row.locator("[data-doc-status]").inner_text() == "Ready"
        guide = Document.objects.for_org(organization).get(name="guide.pdf")
        guide_row = rows.filter(has_text="guide.pdf")
        assert guide_row.locator("[data-doc-pages]").inner_text() == "2"
        assert guide_row.locator("[data-doc-chunks]").inner_text() == str(guide.chunks_total)

        # Refusals: a renamed binary (415) and the same file again (409), each under its own file.
        page.locator("#id_file").set_input_files([
            {"name": "scan.pdf", "mimeType": "application/pdf", "buffer": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 8},
            {"name": "hours again.md", "mimeType": "text/markdown", "buffer": HOURS.encode()},
        ])  # fmt: skip
        refused_binary = page.locator("[data-upload='scan.pdf'][data-state='refused'] [data-upload-message]")
        refused_binary.wait_for(timeout=10000)
        assert refused_binary.inner_text().strip()
        duplicate = page.locator("[data-upload='hours again.md'][data-state='refused'] [data-upload-message]")
        duplicate.get_by_text("already in this knowledge base, as “hours.md”").wait_for(timeout=10000)
        assert rows.count() == 2
        assert page.evaluate("window.__stayedOnPage === true")  # all of it without a reload
        shot(page, "knowledge-base-page")

        # The playground: what an agent would be given, with its document and page.
        page.get_by_role("button", name="Try a question").click()
        page.get_by_role("heading", name="Playground").wait_for()
        page.get_by_label("Question").fill("Where can I park my car?")
        page.get_by_label("Passages (k)").fill("2")
        page.get_by_role("button", name="Search").click()
        passages = page.locator("[data-passages] > li")
        passages.first.wait_for(timeout=15000)
        first = passages.first
        assert "Elm Street" in first.locator("[data-passage-text]").inner_text()
        assert "guide.pdf" in first.inner_text()
        assert first.locator("[data-passage-pages]").inner_text() in ("2", "1-2")
        assert "meaning #" in first.locator("[data-passage-found]").inner_text()
        assert passages.count() == 2
        shot(page, "knowledge-playground")

        # An empty question is refused on its field.
        page.get_by_label("Question").fill("")
        page.get_by_role("button", name="Search").click()
        page.locator("#id_query_error").get_by_text("Write a question to search for.").wait_for()
    finally:
        context.close()
