"""Contacts in a real browser: an empty list says how to start, a CSV is uploaded, its preview shows where each
column goes and the row with a problem, the import is confirmed, the summary offers the failing row, and the
imported contact's page opens from the list."""

from __future__ import annotations

import pytest

from accounts.permissions import Role
from accounts.tests.factories import DEFAULT_PASSWORD, MembershipFactory, OrganizationFactory, UserFactory
from messaging.models import Contact, ContactImport, ImportStatus

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True),
    pytest.mark.filterwarnings("ignore:StreamingHttpResponse must consume synchronous iterators"),
]

CSV = (
    "Phone,Name,Time zone,Notes,Plan\n"
    "'+14155550101,Ada Lovelace,America/Los_Angeles,Prefers mornings,Gold\n"
    "+442079460958,Bob Stone,Europe/London,,Silver\n"
    "415 555 0103,Cy Young,,Calls back,\n"
)


def sign_in(page, base, email, password):
    page.goto(f"{base}/auth/login/")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_upload_preview_with_a_row_error_confirm_and_see_the_result(asgi_live_server, browser, shot):
    base = asgi_live_server
    organization = OrganizationFactory(name="Harbour Dental", slug="harbour-dental")
    owner = UserFactory(email="owner@harbour-dental.test", name="Hana Owner")
    MembershipFactory(organization=organization, user=owner, role=Role.MEMBER)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    try:
        page = context.new_page()
        sign_in(page, base, owner.email, DEFAULT_PASSWORD)
        page.wait_for_url(f"{base}/o/harbour-dental/")
        page.goto(f"{base}/o/harbour-dental/messages/contacts/")
        page.get_by_role("heading", name="No contacts yet").wait_for()
        page.get_by_role("link", name="Import a CSV file").click()
        page.get_by_role("heading", name="Import contacts from a CSV file").wait_for()

        page.get_by_label("CSV file").set_input_files(
            files=[{"name": "patients.csv", "mimeType": "text/csv", "buffer": CSV.encode()}]
        )
        page.get_by_role("button", name="Upload and preview").click()
        page.get_by_role("heading", name="Check the import of “patients.csv”").wait_for()

        mapping = page.locator("[data-import-mapping]")
        assert mapping.locator("tr[data-column='Phone'] td").inner_text().startswith("Phone")
        assert mapping.locator("tr[data-column='Plan'] td").inner_text() == "Custom field “Plan”"
        rows = page.locator("[data-import-rows] tbody tr")
        assert rows.count() == 3
        assert rows.nth(0).locator("[data-action='create']").is_visible()
        problem = page.locator("[data-import-errors] tr[data-error-row='4']")
        assert "international format" in problem.inner_text() and "phone" in problem.inner_text()
        assert page.locator("[data-count='valid']").inner_text() == "2"
        assert not Contact.objects.for_org(organization).exists()
        shot(page, "contacts-import-preview")

        page.get_by_role("button", name="Import 2 contacts").click()
        page.get_by_role("heading", name="Import finished").wait_for()
        summary = page.locator("[data-import-summary]")
        assert summary.locator("[data-count='created']").inner_text() == "2"
        assert summary.locator("[data-count='errors']").inner_text() == "1"
        assert page.get_by_role("link", name="Download the rows not imported (CSV)").is_visible()
        assert page.locator("[data-import-errors] tr[data-error-row='4']").is_visible()
        shot(page, "contacts-import-summary")

        with page.expect_download() as download_info:
            page.get_by_role("link", name="Download the rows not imported (CSV)").click()
        failing = download_info.value.path().read_text(encoding="utf-8-sig")
        assert failing.splitlines()[0] == "row,Phone,Name,Time zone,Notes,Plan,errors"
        assert failing.splitlines()[1].startswith("4,415 555 0103,Cy Young")

        page.get_by_role("link", name="See your contacts").click()
        page.get_by_role("heading", name="Contacts", level=1).wait_for()
        assert page.locator("table.contacts-table tbody tr").count() == 2
        shot(page, "contacts-list")
        page.get_by_role("link", name="Ada Lovelace").click()
        page.get_by_role("heading", name="Ada Lovelace", level=1).wait_for()
        assert "Prefers mornings" in page.locator("main").inner_text()
        assert "Gold" in page.locator(".contact-facts").inner_text()
        shot(page, "contacts-detail")
    finally:
        context.close()

    job = ContactImport.objects.for_org(organization).get()
    assert job.status == ImportStatus.DONE and job.content == ""
    assert sorted(Contact.objects.for_org(organization).values_list("name", flat=True)) == ["Ada Lovelace", "Bob Stone"]
