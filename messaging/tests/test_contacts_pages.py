"""The contacts pages: list and search, create, a contact's page (conversations, calls by blind index), edit,
delete; the CSV import (upload, preview, confirm, progress, summary, rows not imported) and the export;
another organization's contact or import is a 404."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.urls import reverse

from compliance.models import AuditEvent
from messaging.models import Contact, ContactImport, ImportStatus
from messaging.selectors import contact_by_number
from messaging.services.contacts import contact_create
from messaging.services.imports import contact_import_upload
from messaging.tests.support import make_conversation
from telephony.models import Call, CallDirection, CallStatus

pytestmark = pytest.mark.django_db

ADA = "+14155550101"
BOB = "+14155550102"


def url(organization, name="messaging:contact-list", **kwargs):
    return reverse(name, kwargs={"org_slug": organization.slug, **kwargs})


def add(organization, actor, phone=ADA, **data) -> Contact:
    return contact_create(organization=organization, actor=actor, data={"phone": phone, **data})


def upload(client, organization, text: str | bytes, name="contacts.csv"):
    raw = text.encode() if isinstance(text, str) else text
    return client.post(url(organization, "messaging:contact-import"), {"file": SimpleUploadedFile(name, raw)})


def actions(organization, action) -> int:
    return AuditEvent.objects.for_org(organization).filter(action=action).count()


# --- list and search ------------------------------------------------------------------------------


def test_empty_list_says_how_to_add_or_import(owner_client, organization):
    html = owner_client.get(url(organization)).content.decode()
    assert "No contacts yet" in html and "Add a contact" in html and "Import a CSV file" in html
    assert url(organization, "messaging:contact-create") in html and url(organization, "messaging:contact-import") in html


def test_list_shows_contacts_and_finds_a_name_part_or_a_whole_number(owner_client, organization, owner):
    add(organization, owner, ADA, name="Ada Lovelace")
    add(organization, owner, BOB, name="Bob Stone")
    html = owner_client.get(url(organization)).content.decode()
    assert "Ada Lovelace" in html and "Bob Stone" in html and ADA in html
    html = owner_client.get(url(organization), {"q": "lovel"}).content.decode()
    assert "Ada Lovelace" in html and "Bob Stone" not in html
    html = owner_client.get(url(organization), {"q": "+1 (415) 555-0102"}).content.decode()
    assert "Bob Stone" in html and "Ada Lovelace" not in html
    html = owner_client.get(url(organization), {"q": "Nobody"}).content.decode()
    assert "No contact matches “Nobody”" in html and "Show all contacts" in html


def test_the_list_is_paginated(owner_client, organization):
    for n in range(55):
        Contact.objects.create(organization=organization, phone=f"+1212555{n:04d}", name=f"Person {n:02d}")
    first = owner_client.get(url(organization)).content.decode()
    assert "1–50 of 55" in first and "page=2" in first and "Person 54" not in first
    second = owner_client.get(url(organization), {"page": 2}).content.decode()
    assert "51–55 of 55" in second and "Person 54" in second and "Person 00" not in second
    searched = owner_client.get(url(organization), {"q": "Person", "page": 2}).content.decode()
    assert "q=Person&amp;page=1" in searched


# --- create, edit, delete ------------------------------------------------------------------------


def test_create_shows_the_services_refusal_on_its_field_then_adds_the_contact(owner_client, organization, owner):
    response = owner_client.post(url(organization, "messaging:contact-create"), {"phone": "4155550101", "name": "Ada"})
    assert response.status_code == 400
    assert "international format" in response.content.decode() and not Contact.objects.for_org(organization).exists()
    response = owner_client.post(
        url(organization, "messaging:contact-create"),
        {"phone": ADA, "name": "Ada", "time_zone": "America/New_York", "custom_fields": "Plan: Gold\nSince: 2019",
         "notes": "Prefers mornings"},
    )  # fmt: skip
    contact = Contact.objects.for_org(organization).get()
    assert response.status_code == 302 and response["Location"] == url(organization, "messaging:contact-detail", contact_id=contact.id)
    assert contact.custom_fields == {"Plan": "Gold", "Since": "2019"} and contact.notes == "Prefers mornings"
    assert actions(organization, "contact.created") == 1


def test_create_refuses_a_duplicate_number_and_a_malformed_custom_field_line(owner_client, organization, owner):
    add(organization, owner)
    response = owner_client.post(url(organization, "messaging:contact-create"), {"phone": "+1 415 555 0101"})
    assert response.status_code == 409 and "already one of your contacts" in response.content.decode()
    response = owner_client.post(url(organization, "messaging:contact-create"), {"phone": BOB, "custom_fields": "Plan Gold"})
    assert response.status_code == 400 and "Line 1: write the field" in response.content.decode()
    assert Contact.objects.for_org(organization).count() == 1


def test_edit_and_delete_a_contact(owner_client, organization, owner):
    contact = add(organization, owner, name="Ada", custom_fields={"Plan": "Gold"})
    edit = url(organization, "messaging:contact-update", contact_id=contact.id)
    html = owner_client.get(edit).content.decode()
    assert "Plan: Gold" in html and ADA in html
    response = owner_client.post(edit, {"phone": ADA, "name": "Ada Lovelace", "time_zone": "Mars/Olympus"})
    assert response.status_code == 400 and "IANA" in response.content.decode()
    response = owner_client.post(edit, {"phone": ADA, "name": "Ada Lovelace", "custom_fields": "Plan: Pro"})
    assert response.status_code == 302
    contact.refresh_from_db()
    assert contact.name == "Ada Lovelace" and contact.custom_fields == {"Plan": "Pro"}
    make_conversation(organization, contact_number=ADA)
    delete = url(organization, "messaging:contact-delete", contact_id=contact.id)
    html = owner_client.get(delete).content.decode()
    assert "Delete the contact “Ada Lovelace”?" in html and "their text conversation" in html
    response = owner_client.post(delete)
    assert response.status_code == 302 and response["Location"] == url(organization)
    assert not Contact.objects.for_org(organization).exists()
    assert actions(organization, "contact.deleted") == 1


# --- a contact's page ----------------------------------------------------------------------------


def _call(organization, direction, other, ours="+14155550199", **fields):
    inbound = direction == CallDirection.INBOUND
    return Call.objects.create(
        organization=organization, direction=direction, status=CallStatus.COMPLETED,
        from_number=other if inbound else ours, to_number=ours if inbound else other, **fields,
    )  # fmt: skip


def test_a_contacts_page_shows_its_details_conversations_and_calls(owner_client, organization, owner, other_organization):
    contact = add(organization, owner, name="Ada", notes="Prefers mornings", custom_fields={"Plan": "Gold"})
    conversation = make_conversation(organization, contact_number=ADA)
    make_conversation(organization, contact_number=BOB)
    received = _call(organization, CallDirection.INBOUND, "+1 415-555-0101", duration_seconds=42)
    placed = _call(organization, CallDirection.OUTBOUND, ADA)
    someone_else = _call(organization, CallDirection.INBOUND, BOB)
    theirs = _call(other_organization, CallDirection.INBOUND, ADA)
    html = owner_client.get(url(organization, "messaging:contact-detail", contact_id=contact.id)).content.decode()
    assert "Prefers mornings" in html and "Plan" in html and "Gold" in html
    assert "America/Los_Angeles" in html and "from the number" in html
    thread = reverse("messaging:thread", kwargs={"org_slug": organization.slug, "conversation_id": conversation.id})
    assert f'href="{thread}"' in html and conversation.phone_number.number in html
    assert str(received.id) in html and str(placed.id) in html and "42 s" in html
    assert str(someone_else.id) not in html and str(theirs.id) not in html


def test_a_contact_with_no_texts_or_calls_says_how_they_come(owner_client, organization, owner):
    contact = add(organization, owner, "+12129870100")
    html = owner_client.get(url(organization, "messaging:contact-detail", contact_id=contact.id)).content.decode()
    assert "No texts with" in html and "No calls with" in html and "No notes" in html


def test_another_organizations_contact_is_a_404_on_every_page(owner_client, organization, other_organization, other_owner):
    theirs = add(other_organization, other_owner, name="Secret Person")
    for name in ("messaging:contact-detail", "messaging:contact-update", "messaging:contact-delete"):
        assert owner_client.get(url(organization, name, contact_id=theirs.id)).status_code == 404
    assert owner_client.post(url(organization, "messaging:contact-update", contact_id=theirs.id), {"phone": BOB}).status_code == 404
    assert owner_client.post(url(organization, "messaging:contact-delete", contact_id=theirs.id)).status_code == 404
    assert owner_client.get(url(other_organization, "messaging:contact-detail", contact_id=theirs.id)).status_code == 404
    assert Contact.objects.for_org(other_organization).get().name == "Secret Person"


# --- import ---------------------------------------------------------------------------------------

FILE = (
    "phone,name,time_zone,Plan\n"
    f"{ADA},Ada,America/Los_Angeles,Gold\n"
    f"{BOB},Bobby,,\n"
    "555-0103,Cy,,\n"
)


def test_the_import_page_explains_the_file(owner_client, organization):
    html = owner_client.get(url(organization, "messaging:contact-import")).content.decode()
    assert "phone_number" in html and "custom field" in html and "CSV UTF-8" in html and 'type="file"' in html


def test_upload_preview_confirm_and_summary(owner_client, organization, owner):
    add(organization, owner, BOB, name="Bob", notes="Keep")
    response = upload(owner_client, organization, FILE)
    job = ContactImport.objects.for_org(organization).get()
    detail = url(organization, "messaging:contact-import-detail", import_id=job.id)
    assert response.status_code == 302 and response["Location"] == detail
    html = owner_client.get(detail).content.decode()
    assert "Check the import of “contacts.csv”" in html
    assert 'data-field="phone"' in html and "Custom field “Plan”" in html and "Time zone" in html
    assert 'data-action="create"' in html and 'data-action="update"' in html
    assert 'data-error-row="4"' in html and "international format" in html
    assert "Import 2 contacts" in html
    assert Contact.objects.for_org(organization).count() == 1

    response = owner_client.post(url(organization, "messaging:contact-import-confirm", import_id=job.id))
    assert response.status_code == 302 and response["Location"] == detail
    html = owner_client.get(detail).content.decode()
    assert "Import finished" in html and 'data-count="created">1<' in html and 'data-count="updated">1<' in html
    assert 'data-count="errors">1<' in html and 'data-error-row="4"' in html
    assert "Download the rows not imported" in html and "hx-trigger" not in html
    bob = contact_by_number(organization=organization, number=BOB)
    assert bob.name == "Bobby" and bob.notes == "Keep"
    assert contact_by_number(organization=organization, number=ADA).custom_fields == {"Plan": "Gold"}
    job.refresh_from_db()
    assert job.status == ImportStatus.DONE and job.content == ""

    download = owner_client.get(url(organization, "messaging:contact-import-errors", import_id=job.id))
    assert download["Content-Disposition"] == 'attachment; filename="contacts-rows-not-imported.csv"'
    rows = list(csv.reader(io.StringIO(download.content.decode().lstrip("\ufeff"))))
    assert rows[0] == ["row", "phone", "name", "time_zone", "Plan", "errors"]
    assert rows[1][:3] == ["4", "555-0103", "Cy"] and "international format" in rows[1][-1]

    again = owner_client.post(url(organization, "messaging:contact-import-confirm", import_id=job.id), follow=True)
    assert "already confirmed" in again.content.decode()
    assert actions(organization, "contact_import.completed") == 1


@pytest.mark.parametrize(
    "raw, name, status, says",
    [
        (b"PK\x03\x04 a workbook", "contacts.xlsx", 415, "is not a CSV file"),
        ("phone\n+14155550101,Jos\u00e9\n".encode("latin-1"), "contacts.csv", 400, "not UTF-8"),
        (b"name,email\nAda,ada@example.test\n", "contacts.csv", 400, "No phone column"),
    ],
)
def test_an_unreadable_upload_comes_back_with_what_to_fix(owner_client, organization, raw, name, status, says):
    response = upload(owner_client, organization, raw, name=name)
    assert response.status_code == status and says in response.content.decode()
    assert 'type="file"' in response.content.decode()
    assert not ContactImport.objects.for_org(organization).exists()


def test_an_upload_without_a_file_says_to_choose_one(owner_client, organization):
    response = owner_client.post(url(organization, "messaging:contact-import"), {})
    assert response.status_code == 400 and "This field is required" in response.content.decode()


def test_an_upload_over_the_limit_is_a_413_and_is_not_kept(owner_client, organization, settings):
    settings.MESSAGING_IMPORT_MAX_BYTES = 1024
    response = upload(owner_client, organization, "phone\n" + "+14155550101\n" * 200)
    assert response.status_code == 413 and "larger than" in response.content.decode()
    assert not ContactImport.objects.for_org(organization).exists()


def test_the_upload_checks_the_csrf_token(client, owner, organization):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(owner)
    response = strict.post(url(organization, "messaging:contact-import"), {"file": SimpleUploadedFile("c.csv", FILE.encode())})
    assert response.status_code == 403 and not ContactImport.objects.for_org(organization).exists()


def test_discarding_a_preview(owner_client, organization, owner):
    upload(owner_client, organization, FILE)
    job = ContactImport.objects.for_org(organization).get()
    response = owner_client.post(url(organization, "messaging:contact-import-discard", import_id=job.id))
    assert response.status_code == 302 and response["Location"] == url(organization, "messaging:contact-import")
    assert not ContactImport.objects.for_org(organization).exists() and not Contact.objects.for_org(organization).exists()


def test_a_large_import_shows_a_polling_progress_bar(owner_client, organization, owner, settings):
    settings.MESSAGING_IMPORT_INLINE_ROWS = 1
    upload(owner_client, organization, FILE)
    job = ContactImport.objects.for_org(organization).get()
    owner_client.post(url(organization, "messaging:contact-import-confirm", import_id=job.id))
    job.refresh_from_db()
    assert job.status == ImportStatus.QUEUED
    progress = url(organization, "messaging:contact-import-progress", import_id=job.id)
    html = owner_client.get(url(organization, "messaging:contact-import-detail", import_id=job.id)).content.decode()
    assert f'hx-get="{progress}"' in html and 'hx-trigger="every 1s"' in html and "<progress" in html
    ContactImport.objects.for_org(organization).filter(pk=job.pk).update(status=ImportStatus.RUNNING, processed_rows=1)
    partial = owner_client.get(progress).content.decode()
    assert "33%" in partial and "1 of 3 rows" in partial and 'hx-trigger="every 1s"' in partial
    assert "<html" not in partial


def test_another_organizations_import_is_a_404(owner_client, organization, other_organization, other_owner):
    job = contact_import_upload(organization=other_organization, actor=other_owner, file_name="theirs.csv", raw=FILE.encode())
    for name in ("messaging:contact-import-detail", "messaging:contact-import-progress", "messaging:contact-import-errors"):
        assert owner_client.get(url(organization, name, import_id=job.id)).status_code == 404
    for name in ("messaging:contact-import-confirm", "messaging:contact-import-discard"):
        assert owner_client.post(url(organization, name, import_id=job.id)).status_code == 404
    job.refresh_from_db()
    assert job.status == ImportStatus.PREVIEW and not Contact.objects.for_org(other_organization).exists()


# --- export ---------------------------------------------------------------------------------------


def test_the_export_downloads_every_contact_escaped(owner_client, organization, owner, other_organization, other_owner):
    add(organization, owner, ADA, name="=cmd|' /C calc'!A0", custom_fields={"Plan": "Gold"})
    add(other_organization, other_owner, BOB, name="Not ours")
    response = owner_client.get(url(organization, "messaging:contact-export"))
    assert response.status_code == 200 and response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"].startswith('attachment; filename="contacts-acme-dental-')
    body = b"".join(response.streaming_content).decode()
    rows = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert rows == [["phone", "name", "time_zone", "notes", "Plan"], ["'+14155550101", "'=cmd|' /C calc'!A0", "", "", "Gold"]]
    assert actions(organization, "contacts.exported") == 1


def test_a_failed_import_says_why_and_offers_to_try_again(owner_client, organization, owner):
    from messaging.services.imports import contact_import_fail

    job = contact_import_upload(organization=organization, actor=owner, file_name="big.csv", raw=FILE.encode())
    ContactImport.objects.for_org(organization).filter(pk=job.pk).update(status=ImportStatus.QUEUED)
    contact_import_fail(organization=organization, import_id=job.pk, reason="The import stopped: the database went away.")
    html = owner_client.get(url(organization, "messaging:contact-import-detail", import_id=job.id)).content.decode()
    assert "The import stopped" in html and "the database went away" in html
    assert "Try again from where it stopped" in html and "hx-trigger" not in html
    response = owner_client.post(url(organization, "messaging:contact-import-confirm", import_id=job.id))
    assert response.status_code == 302
    job.refresh_from_db()
    assert job.status == ImportStatus.QUEUED and job.failure == ""
