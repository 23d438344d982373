"""Contacts' services: create, update, delete (audited), and the CSV import and export (messaging/services/imports.py).

Real PostgreSQL: rows are read back through the ORM (decrypted) and, for what must stay secret, as raw bytes.
"""

from __future__ import annotations

import csv
import io

import pytest
from django.db import connection

from compliance.models import AuditEvent
from jagcall.kernel.errors import ApplicationError
from messaging.models import Contact, ContactImport, ImportStatus
from messaging.selectors import contact_by_number
from messaging.services.contacts import contact_create, contact_delete, contact_update
from messaging.services.imports import (
    ImportRefused,
    _run_batch,
    contact_import_confirm,
    contact_import_discard,
    contact_import_preview,
    contact_import_process,
    contact_import_upload,
    contacts_export,
    csv_cell,
    failed_rows_csv,
    parse_csv,
    plan_rows,
)

pytestmark = pytest.mark.django_db

ADA = "+14155550101"
BOB = "+14155550102"


def contacts(organization) -> list[Contact]:
    return list(Contact.objects.for_org(organization).order_by("phone_index"))


def events(organization, action: str) -> list[AuditEvent]:
    return list(AuditEvent.objects.for_org(organization).filter(action=action))


def upload(organization, actor, text: str | bytes, name: str = "contacts.csv") -> ContactImport:
    raw = text.encode() if isinstance(text, str) else text
    return contact_import_upload(organization=organization, actor=actor, file_name=name, raw=raw)


def run(organization, actor, text: str) -> ContactImport:
    """Upload and confirm a small file (imported at once)."""
    job = upload(organization, actor, text)
    return contact_import_confirm(organization=organization, actor=actor, contact_import=job)


def exported(organization, actor) -> str:
    return "".join(contacts_export(organization=organization, actor=actor))


def rows_of(text: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(text.lstrip("\ufeff"))))


# --- create, update, delete ---------------------------------------------------------------------


def test_create_update_and_delete_are_audited_without_the_number(organization, owner):
    contact = contact_create(
        organization=organization, actor=owner,
        data={"phone": "+1 (415) 555-0101", "name": " Ada ", "time_zone": "America/Los_Angeles",
              "custom_fields": {"Plan": "Gold"}, "notes": "Prefers mornings"},
    )  # fmt: skip
    assert contact.phone == ADA and contact.name == "Ada" and contact.custom_fields == {"Plan": "Gold"}
    contact_update(organization=organization, actor=owner, contact=contact, data={"name": "Ada Lovelace"})
    assert Contact.objects.for_org(organization).get().name == "Ada Lovelace"
    (created,) = events(organization, "contact.created")
    (updated,) = events(organization, "contact.updated")
    assert "4155550101" not in str(created.metadata) and updated.metadata == {"fields": ["name"]}
    contact_delete(organization=organization, actor=owner, contact=contact)
    assert not contacts(organization) and len(events(organization, "contact.deleted")) == 1


def test_a_second_contact_with_the_same_number_is_a_409(organization, owner):
    contact_create(organization=organization, actor=owner, data={"phone": ADA})
    with pytest.raises(ApplicationError) as refused:
        contact_create(organization=organization, actor=owner, data={"phone": "+1 415 555 0101"})
    assert refused.value.status == 409 and refused.value.field == "phone"
    assert len(contacts(organization)) == 1


def test_wrong_fields_are_refused_with_what_to_write(organization, owner):
    for data, field in (
        ({"phone": "4155550101"}, "phone"),
        ({"phone": ADA, "time_zone": "Mars/Olympus"}, "time_zone"),
        ({"phone": ADA, "name": "x" * 121}, "name"),
        ({"phone": ADA, "custom_fields": {"k": "v" * 501}}, "custom_fields"),
    ):
        with pytest.raises(ApplicationError) as refused:
            contact_create(organization=organization, actor=owner, data=data)
        assert refused.value.field == field and refused.value.status == 400, data
    assert not contacts(organization)


def test_phone_and_notes_are_never_stored_in_clear(organization, owner):
    contact = contact_create(
        organization=organization, actor=owner,
        data={"phone": ADA, "name": "Ada", "notes": "Allergic to penicillin", "custom_fields": {"Plan": "Platinum"}},
    )  # fmt: skip
    job = run(organization, owner, f"phone,notes,Plan\n{BOB},Owes 40 dollars,Silver\nnot-a-number,Keeps her secret,Gold\n")
    assert job.status == ImportStatus.DONE
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT phone, phone_index, notes, custom_fields FROM messaging_contact WHERE organization_id = %s",
            [organization.id],
        )
        stored = [bytes(value) if isinstance(value, memoryview) else str(value).encode() for row in cursor.fetchall() for value in row]
        cursor.execute(
            "SELECT content, row_errors FROM messaging_contactimport WHERE organization_id = %s", [organization.id]
        )
        stored += [bytes(value) for row in cursor.fetchall() for value in row if value is not None]
    blob = b"|".join(stored)
    for secret in ("4155550101", "4155550102", "penicillin", "Platinum", "Owes 40", "Keeps her secret", "not-a-number"):
        assert secret.encode() not in blob and secret.encode().hex().encode() not in blob, secret
    assert contact_by_number(organization=organization, number=BOB).notes == "Owes 40 dollars"
    assert Contact.objects.for_org(organization).get(pk=contact.pk).notes == "Allergic to penicillin"


# --- reading a file -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "raw, name, code, says",
    [
        (b"PK\x03\x04\x14\x00\x06\x00rest-of-a-workbook", "contacts.xlsx", "not_csv", "not a CSV"),
        (b"PK\x03\x04\x14\x00\x06\x00rest-of-a-workbook", "contacts.csv", "not_csv", "Excel workbook"),
        (b"%PDF-1.7 ...", "contacts.csv", "not_csv", "PDF"),
        (b"phone,name\n+14155550101,\x00\x01\x02", "contacts.csv", "not_csv", "binary"),
        ("phone,name\n+14155550101,Jos\u00e9\n".encode("latin-1"), "contacts.csv", "bad_encoding", "line 2"),
        (b"", "contacts.csv", "invalid_file", "empty"),
        (b"name,email\nAda,ada@example.test\n", "contacts.csv", "no_phone_column", "No phone column"),
        (b"phone,name\n", "contacts.csv", "no_rows", "no contacts"),
        (b"phone,Phone\n+14155550101,+14155550102\n", "contacts.csv", "invalid_file", "both called"),
        (b"phone,mobile\n+14155550101,+14155550102\n", "contacts.csv", "invalid_file", "Keep one of them"),
    ],
)
def test_a_file_that_cannot_be_imported_is_refused_with_what_to_fix(organization, owner, raw, name, code, says):
    with pytest.raises(ImportRefused) as refused:
        upload(organization, owner, raw, name=name)
    assert refused.value.code == code and says in refused.value.message, refused.value.message
    assert refused.value.field == "file" and 400 <= refused.value.status < 500
    assert not ContactImport.objects.for_org(organization).exists()
    assert not events(organization, "contact_import.uploaded")


def test_a_file_over_the_size_limit_is_a_413(organization, owner, settings):
    settings.MESSAGING_IMPORT_MAX_BYTES = 100
    with pytest.raises(ImportRefused) as refused:
        upload(organization, owner, "phone\n" + "+14155550101\n" * 20)
    assert refused.value.status == 413 and "Split it" in refused.value.message


def test_semicolons_tabs_a_byte_order_mark_and_utf16_are_read(organization, owner):
    for raw in (
        "\ufeffPhone Number;Full Name\n+14155550101;Zoë\n".encode(),
        "phone\tname\n+14155550101\tZoë\n".encode(),
        "phone,name\r\n+14155550101,Zoë\r\n".encode("utf-16"),
    ):
        job = upload(organization, owner, raw)
        preview = contact_import_preview(job)
        assert [c.field for c in preview.columns] == ["phone", "name"]
        assert preview.rows[0]["values"] == ["+14155550101", "Zoë"] and preview.rows[0]["action"] == "create"


def test_the_preview_maps_columns_and_lists_each_rows_errors_by_spreadsheet_row(organization, owner):
    contact_create(organization=organization, actor=owner, data={"phone": BOB, "name": "Bob"})
    text = (
        "Phone,Name,Time Zone,Notes,Plan,\n"
        f"{ADA},Ada,America/Los_Angeles,Mornings,Gold,\n"  # row 2: new
        f"{BOB},Bobby,,,,\n"  # row 3: updates Bob
        "\n"  # row 4: blank, skipped
        "4155550103,Cy,Mars/Olympus,,,\n"  # row 5: two errors
        f"{ADA},Ada again,,,,\n"  # row 6: the same number twice
        f"+14155550104,\"Dee, Jr\",,,{'x' * 501},\n"  # row 7: custom value too long
    )
    job = upload(organization, owner, text)
    assert job.status == ImportStatus.PREVIEW and job.total_rows == 5
    preview = contact_import_preview(job)
    mapped = [(c.header, c.field) for c in preview.columns]
    assert mapped == [("Phone", "phone"), ("Name", "name"), ("Time Zone", "time_zone"), ("Notes", "notes"),
                      ("Plan", "custom"), ("", "")]  # fmt: skip
    assert [(r["row"], r["action"]) for r in preview.rows] == [(2, "create"), (3, "update"), (5, ""), (6, ""), (7, "")]
    problems = [(e["row"], problem["field"], problem["message"]) for e in preview.error_rows for problem in e["errors"]]
    assert [(row, field) for row, field, _ in problems] == [
        (5, "phone"), (5, "time_zone"), (6, "phone"), (7, "Plan")
    ]  # fmt: skip
    assert "international format" in problems[0][2] and "IANA" in problems[1][2]
    assert "already on row 2" in problems[2][2] and "500" in problems[3][2]
    assert preview.valid_rows == 2
    assert not events(organization, "contact_import.completed")
    (uploaded,) = events(organization, "contact_import.uploaded")
    assert uploaded.metadata == {"rows": 5, "rows_with_errors": 3, "columns": 5}
    assert len(contacts(organization)) == 1, "nothing is imported before confirmation"


# --- importing -------------------------------------------------------------------------------------


def test_confirming_creates_new_contacts_updates_existing_ones_and_keeps_the_failing_rows(organization, owner):
    bob = contact_create(
        organization=organization, actor=owner,
        data={"phone": BOB, "name": "Bob", "notes": "Keep me", "custom_fields": {"Since": "2019", "Plan": "Free"}},
    )  # fmt: skip
    text = (
        "phone,name,time_zone,notes,Plan\n"
        f"{ADA},Ada,America/Los_Angeles,Mornings,Gold\n"
        f"+1 (415) 555-0102,Robert,,,Pro\n"
        "12,Nobody,,,\n"
    )
    job = run(organization, owner, text)
    assert job.status == ImportStatus.DONE and job.finished_at is not None
    assert (job.created_count, job.updated_count, job.processed_rows, job.total_rows) == (1, 1, 3, 3)
    assert job.content == "", "the file is cleared once imported"
    ada = contact_by_number(organization=organization, number=ADA)
    assert (ada.name, ada.time_zone, ada.notes, ada.custom_fields) == ("Ada", "America/Los_Angeles", "Mornings", {"Plan": "Gold"})
    bob = Contact.objects.for_org(organization).get(pk=bob.pk)
    assert bob.name == "Robert" and bob.notes == "Keep me", "an empty cell keeps the value"
    assert bob.custom_fields == {"Since": "2019", "Plan": "Pro"} and bob.phone == BOB
    assert len(contacts(organization)) == 2
    (error,) = job.row_errors
    assert error["row"] == 4
    assert error["values"] == [["phone", "12"], ["name", "Nobody"], ["time_zone", ""], ["notes", ""], ["Plan", ""]]
    (completed,) = events(organization, "contact_import.completed")
    assert completed.metadata == {"rows": 3, "created": 1, "updated": 1, "rows_with_errors": 1}
    assert completed.actor_id == owner.id
    assert len(events(organization, "contact.created")) == 1, "one event for the import, none per contact"
    failing = rows_of(failed_rows_csv(job))
    assert failing[0] == ["row", "phone", "name", "time_zone", "notes", "Plan", "errors"]
    assert failing[1][:3] == ["4", "12", "Nobody"] and failing[1][-1].startswith("phone: ")


def test_a_confirmed_import_cannot_be_confirmed_or_discarded_again(organization, owner):
    job = run(organization, owner, f"phone\n{ADA}\n")
    for service in (contact_import_confirm, contact_import_discard):
        with pytest.raises(ApplicationError) as refused:
            service(organization=organization, actor=owner, contact_import=job)
        assert refused.value.status == 409
    assert len(events(organization, "contact_import.completed")) == 1


def test_discarding_a_preview_drops_the_file_and_changes_no_contact(organization, owner):
    job = upload(organization, owner, f"phone\n{ADA}\n")
    contact_import_discard(organization=organization, actor=owner, contact_import=job)
    assert not ContactImport.objects.for_org(organization).exists() and not contacts(organization)
    assert len(events(organization, "contact_import.discarded")) == 1


def test_a_large_file_is_queued_not_imported_in_the_request(organization, owner, settings, django_capture_on_commit_callbacks):
    settings.MESSAGING_IMPORT_INLINE_ROWS = 2
    job = upload(organization, owner, f"phone\n{ADA}\n{BOB}\n+14155550103\n")
    with django_capture_on_commit_callbacks() as callbacks:
        job = contact_import_confirm(organization=organization, actor=owner, contact_import=job)
    assert job.status == ImportStatus.QUEUED and len(callbacks) == 1
    assert not contacts(organization)


def test_processing_resumes_at_processed_rows_and_a_rerun_imports_nothing_twice(organization, owner, settings):
    """What a retried or redelivered task does: batches already saved are not imported again."""
    settings.MESSAGING_IMPORT_INLINE_ROWS = 0
    numbers = [f"+1212555{n:04d}" for n in range(250)]
    job = upload(organization, owner, "phone,name\n" + "".join(f"{n},Person {i}\n" for i, n in enumerate(numbers)))
    job = contact_import_confirm(organization=organization, actor=owner, contact_import=job)
    plans = plan_rows(parse_csv(job.content))
    # One batch, then the worker dies: its contacts and its progress were committed together.
    job, finished = _run_batch(organization, job.pk, plans, 100, None)
    assert not finished and job.processed_rows == 100 and len(contacts(organization)) == 100
    job = contact_import_process(organization=organization, import_id=job.pk)
    assert job.status == ImportStatus.DONE and job.processed_rows == 250 and job.created_count == 250
    assert len(contacts(organization)) == 250
    again = contact_import_process(organization=organization, import_id=job.pk)
    assert again.status == ImportStatus.DONE and again.created_count == 250 and len(contacts(organization)) == 250
    assert len(events(organization, "contact_import.completed")) == 1
    (completed,) = events(organization, "contact_import.completed")
    assert completed.actor_id == owner.id, "a run in Celery acts for the member who uploaded the file"


def test_a_failed_import_can_be_confirmed_again_and_resumes(organization, owner, settings):
    from messaging.services.imports import contact_import_fail

    settings.MESSAGING_IMPORT_INLINE_ROWS = 0
    job = upload(organization, owner, f"phone\n{ADA}\n{BOB}\n")
    job = contact_import_confirm(organization=organization, actor=owner, contact_import=job)
    job = contact_import_fail(organization=organization, import_id=job.pk, reason="The database went away.")
    assert job.status == ImportStatus.FAILED and len(events(organization, "contact_import.failed")) == 1
    assert contact_import_process(organization=organization, import_id=job.pk).status == ImportStatus.FAILED
    job = contact_import_confirm(organization=organization, actor=owner, contact_import=job)
    assert job.status == ImportStatus.QUEUED and job.failure == ""
    assert contact_import_process(organization=organization, import_id=job.pk).status == ImportStatus.DONE
    assert len(contacts(organization)) == 2


# --- export ----------------------------------------------------------------------------------------


def test_csv_cell_escapes_every_formula_start_and_phone_numbers():
    for text in ("=SUM(A1)", "+14155550101", "-2", "@cmd", "\tx", "\rx"):
        assert csv_cell(text) == "'" + text
    assert csv_cell("Ada") == "Ada" and csv_cell(None) == "" and csv_cell("a=b") == "a=b"


def test_the_export_escapes_formulas_and_phones_and_is_audited(organization, owner):
    contact_create(
        organization=organization, actor=owner,
        data={"phone": ADA, "name": "=HYPERLINK(\"http://evil\")", "notes": "@SUM(1)",
              "custom_fields": {"Plan": "-5", "mobile": "spare line"}},
    )  # fmt: skip
    contact_create(organization=organization, actor=owner, data={"phone": BOB, "name": "Bob"})
    text = exported(organization, owner)
    assert text.startswith("\ufeff")
    header, *rows = rows_of(text)
    assert header == ["phone", "name", "time_zone", "notes", "mobile (custom field)", "Plan"]
    by_phone = {row[0]: row for row in rows}
    assert by_phone["'+14155550101"] == ["'+14155550101", "'=HYPERLINK(\"http://evil\")", "", "'@SUM(1)", "spare line", "'-5"]
    assert by_phone["'+14155550102"] == ["'+14155550102", "Bob", "", "", "", ""]
    (event,) = events(organization, "contacts.exported")
    assert event.metadata == {"contacts": 2, "custom_columns": 2, "format": "csv"}


def test_an_exported_file_imports_back_unchanged(organization, owner, other_organization, other_owner):
    original = {
        "phone": ADA, "name": "=1+1", "time_zone": "Europe/London", "notes": "-dash\nsecond line",
        "custom_fields": {"Plan": "+Gold", "Since": "2019"},
    }  # fmt: skip
    contact_create(organization=organization, actor=owner, data=original)
    contact_create(organization=organization, actor=owner, data={"phone": BOB})
    text = exported(organization, owner)
    job = run(other_organization, other_owner, text)
    assert job.status == ImportStatus.DONE and job.created_count == 2 and job.row_errors == []
    copy = contact_by_number(organization=other_organization, number=ADA)
    assert {
        "phone": copy.phone, "name": copy.name, "time_zone": copy.time_zone, "notes": copy.notes,
        "custom_fields": copy.custom_fields,
    } == original  # fmt: skip
    assert contact_by_number(organization=other_organization, number=BOB).custom_fields == {}
    # Imported again where it came from: the same contacts, updated, none added.
    job = run(organization, owner, text)
    assert (job.created_count, job.updated_count) == (0, 2) and len(contacts(organization)) == 2


def test_a_run_out_of_time_stops_after_a_saved_batch(organization, owner, settings):
    settings.MESSAGING_IMPORT_INLINE_ROWS = 0
    job = upload(organization, owner, "phone\n" + "".join(f"+1212555{n:04d}\n" for n in range(150)))
    job = contact_import_confirm(organization=organization, actor=owner, contact_import=job)
    job = contact_import_process(organization=organization, import_id=job.pk, seconds=0)
    assert job.status == ImportStatus.RUNNING and job.processed_rows == 100 and job.percent == 66
    job = contact_import_process(organization=organization, import_id=job.pk, seconds=0)
    assert job.status == ImportStatus.DONE and len(contacts(organization)) == 150


def test_the_task_marks_an_import_it_cannot_read_failed_with_the_reason(organization, owner, settings):
    from messaging.tasks import contact_import_run

    settings.MESSAGING_IMPORT_INLINE_ROWS = 0
    job = upload(organization, owner, f"phone\n{ADA}\n")
    job = contact_import_confirm(organization=organization, actor=owner, contact_import=job)
    job.content = "name\nAda\n"  # a file whose phone column is gone cannot be imported
    job.save(update_fields=["content"])
    assert contact_import_run(str(organization.id), str(job.id)) == "failed"
    job.refresh_from_db()
    assert job.status == ImportStatus.FAILED and job.failure.startswith("The import stopped: No phone column.")
    assert not contacts(organization) and len(events(organization, "contact_import.failed")) == 1
    assert contact_import_run(str(organization.id), "00000000-0000-0000-0000-000000000000") == "gone"
