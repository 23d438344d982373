"""Contacts in and out as CSV: an import is previewed, then run (at once, or in Celery), and an export.

Import, in three steps:

1. ``contact_import_upload`` reads the file (at most ``MESSAGING_IMPORT_MAX_BYTES``; UTF-8, with or
   without a byte order mark, or UTF-16 with one; comma, semicolon or tab separated), maps its columns
   (a phone column is required; ``name``, ``time_zone`` and ``notes`` are known by name; every other
   column becomes a custom field named by its header), checks every row with ``clean_contact`` and
   keeps the file encrypted in a ``ContactImport`` waiting for confirmation, with each row's errors.
   A file that cannot be read at all is refused with what to fix; nothing is stored then.
2. ``contact_import_confirm`` imports a file of up to ``MESSAGING_IMPORT_INLINE_ROWS`` rows at once;
   a larger one is queued for the ``messaging.tasks.contact_import_run`` task.
3. ``contact_import_process`` imports the rows in batches, each batch in one transaction with the
   import's progress, so a retried or redelivered task resumes at ``processed_rows`` and never
   imports a row twice. A number already among the contacts updates that contact (cells left empty
   keep its values; custom fields are merged); rows with errors are skipped and kept, with their
   cells, for the summary and its CSV of failing rows. When the last row is done the file itself
   is cleared and one audit event records the counts.

Rows are numbered as a spreadsheet shows them: the header is row 1.

Export: ``contacts_export`` streams every contact as CSV (phone, name, time_zone, notes, then one
column per custom field), escaped against formula injection (``csv_cell``). The import reads such
a file back as it was written.
"""

from __future__ import annotations

import codecs
import csv
import io
import logging
import math
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from celery import current_app
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.principals import Principal, as_principal
from compliance.services import audit_record
from jagcall.kernel.errors import ApplicationError
from messaging.models import Contact, ContactImport, ImportStatus
from messaging.services.contacts import MAX_CUSTOM_FIELDS, MAX_CUSTOM_NAME, clean_contact

logger = logging.getLogger("jagcall.messaging")

IMPORT_TASK = "messaging.tasks.contact_import_run"
# Rows per transaction; a large file takes bigger batches so its progress is saved at most ~50 times
# (each save re-encrypts the errors kept so far).
BATCH_ROWS = 100
MAX_BATCHES = 50
PREVIEW_ROWS = 10
# How long one run of the task imports before it hands over to a fresh one (under the soft time limit).
RUN_SECONDS = 120

# A cell starting with one of these is read as a formula by spreadsheet programs (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

KNOWN_COLUMNS = {
    "phone": ("phone", "phone_number", "number", "mobile", "mobile_number", "cell", "cell_phone", "telephone", "tel"),
    "name": ("name", "full_name", "contact_name", "contact"),
    "time_zone": ("time_zone", "timezone", "tz"),
    "notes": ("notes", "note"),
}
_ALIASES = {alias: name for name, aliases in KNOWN_COLUMNS.items() for alias in aliases}
FIELD_LABELS = {"phone": "Phone", "name": "Name", "time_zone": "Time zone", "notes": "Notes"}
EXPORT_COLUMNS = ("phone", "name", "time_zone", "notes")

_SAVE_AS = "In your spreadsheet choose File › Save as (or Download) › CSV UTF-8, then upload that file."


class ImportRefused(ApplicationError):
    """The file as a whole cannot be imported (nothing was stored)."""

    def __init__(self, message: str, *, code: str = "invalid_file", status: int = 400):
        super().__init__(message, code=code, field="file", status=status)


def max_import_bytes() -> int:
    return int(settings.MESSAGING_IMPORT_MAX_BYTES)


def _size(size: int) -> str:
    if size < 1024 * 1024:
        return f"{max(1, size // 1024)} KB"
    return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")


def too_large_message() -> str:
    return (
        f"This file is larger than {_size(max_import_bytes())}, the most a contacts file may be. "
        "Split it into smaller files and import them one after the other."
    )


# --- reading a file ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Column:
    index: int
    header: str  # as written in the file
    field: str  # "phone", "name", "time_zone", "notes"; "custom" (named by its header); "" ignored

    @property
    def label(self) -> str:
        if self.field == "custom":
            return f"Custom field “{self.header}”"
        return FIELD_LABELS.get(self.field, "Ignored (no column name)")


@dataclass
class ParsedFile:
    columns: list[Column]
    width: int  # how many cells the header has
    records: list[tuple[int, list[str]]]  # (row number as a spreadsheet shows it, cells), blank rows left out

    @property
    def headers(self) -> list[str]:
        return [column.header for column in self.columns if column.field]


def decode_upload(raw: bytes) -> str:
    """The file's text, or ImportRefused saying what kind of file it is instead and how to make a CSV."""
    if not raw or not raw.strip():
        raise ImportRefused("The file is empty. Export your contacts as CSV with a header row, e.g. phone,name.")
    if raw.startswith(b"PK\x03\x04"):
        raise ImportRefused(f"This is an Excel workbook or another zipped file, not a CSV. {_SAVE_AS}", code="not_csv")
    if raw.startswith(b"\xd0\xcf\x11\xe0"):
        raise ImportRefused(f"This is an old Excel workbook (.xls), not a CSV. {_SAVE_AS}", code="not_csv")
    if raw.startswith(b"%PDF"):
        raise ImportRefused(
            "This is a PDF, not a CSV. Export your contacts from where they are kept as CSV.", code="not_csv"
        )
    if raw.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        try:
            return raw.decode("utf-16")
        except UnicodeDecodeError:
            message = f"This file says it is UTF-16 text but is not. {_SAVE_AS}"
            raise ImportRefused(message, code="bad_encoding") from None
    if b"\x00" in raw:
        raise ImportRefused(
            f"This is not a text file (it holds binary data), so it is not a CSV. {_SAVE_AS}", code="not_csv"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        raise ImportRefused(
            f"This file is not UTF-8 text: line {line} has a character in another encoding (often Windows or Mac "
            f"“Latin” text from an older export). {_SAVE_AS}",
            code="bad_encoding",
        ) from None


def _delimiter(text: str) -> str:
    first = text.lstrip("\r\n").split("\n", 1)[0]
    counts = {delimiter: first.count(delimiter) for delimiter in (",", ";", "\t")}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def _normal(header: str) -> str:
    return re.sub(r"[\s\-]+", "_", header.strip().lower())


def unescape_cell(value: str) -> str:
    """A cell as it was before ``csv_cell`` escaped it: a quote in front of a formula character is dropped."""
    if len(value) > 1 and value[0] == "'" and value[1] in "=+-@\t\r":
        return value[1:]
    return value


def _columns(header: list[str]) -> list[Column]:
    columns, seen = [], {}
    for index, raw in enumerate(header):
        text = unescape_cell(raw).strip()
        if not text:
            columns.append(Column(index, "", ""))
            continue
        key = _normal(text)
        if key in seen:
            raise ImportRefused(
                f"Two columns are both called “{text}” (columns {seen[key] + 1} and {index + 1}). "
                "Give each column its own name in the first row."
            )
        seen[key] = index
        known = _ALIASES.get(key)
        if known is not None:
            twin = next((c for c in columns if c.field == known), None)
            if twin is not None:
                raise ImportRefused(
                    f"Both “{twin.header}” and “{text}” would be the contact's {FIELD_LABELS[known].lower()}. "
                    "Keep one of them, or rename the other to import it as a custom field."
                )
            columns.append(Column(index, text, known))
            continue
        if len(text) > MAX_CUSTOM_NAME:
            raise ImportRefused(
                f"The column name “{text[:40]}…” is longer than {MAX_CUSTOM_NAME} characters; shorten it "
                "(it becomes the name of a custom field)."
            )
        columns.append(Column(index, text, "custom"))
    if not any(column.field == "phone" for column in columns):
        found = ", ".join(f"“{c.header}”" for c in columns if c.header) or "none"
        raise ImportRefused(
            "No phone column. The first row must name the columns, one of them “phone” "
            f"(or phone_number, mobile, number, telephone). Columns found: {found}.",
            code="no_phone_column",
        )
    custom = [c for c in columns if c.field == "custom"]
    if len(custom) > MAX_CUSTOM_FIELDS:
        raise ImportRefused(
            f"This file has {len(custom)} columns that would be custom fields; a contact may have at most "
            f"{MAX_CUSTOM_FIELDS}. Remove the columns you do not need."
        )
    return columns


def parse_csv(text: str) -> ParsedFile:
    """The file's columns and its rows (each with its spreadsheet row number), or ImportRefused."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=_delimiter(text))
    header, records, number = None, [], 0
    try:
        for cells in reader:
            number += 1
            if not any(cell.strip() for cell in cells):
                continue
            if header is None:
                header = cells
                continue
            records.append((number, cells))
    except csv.Error as error:
        raise ImportRefused(
            f"Row {number + 1} is not valid CSV ({error}). Check its quotes: a cell that holds a comma or a line "
            "break must be in double quotes, and a double quote inside it written twice."
        ) from None
    if header is None:
        raise ImportRefused("The file is empty. Export your contacts as CSV with a header row, e.g. phone,name.")
    columns = _columns(header)
    if not records:
        raise ImportRefused("The file has a header row but no contacts under it.", code="no_rows")
    return ParsedFile(columns=columns, width=len(header), records=records)


# --- checking rows ----------------------------------------------------------------------------


@dataclass
class RowPlan:
    row: int
    values: list  # [[header, the cell as written], ...] in the file's column order
    cleaned: dict | None  # the contact's fields, or None when the row has errors
    errors: list[dict] = field(default_factory=list)  # [{"field": "phone", "message": "..."}]

    def as_error(self) -> dict:
        return {"row": self.row, "errors": self.errors, "values": self.values}


def _cell(cells: list[str], index: int) -> str:
    return cells[index] if index < len(cells) else ""


def _check_row(parsed: ParsedFile, row: int, cells: list[str], seen: dict[str, int]) -> RowPlan:
    values = [[c.header, _cell(cells, c.index)] for c in parsed.columns if c.field]
    errors, cleaned, custom = [], {}, {}
    extra = [cell for cell in cells[parsed.width :] if cell.strip()]
    if extra:
        errors.append({
            "field": "row",
            "message": f"This row has {len(cells)} cells but the header names {parsed.width} columns. "
            "A cell holding a comma must be in double quotes.",
        })  # fmt: skip
    for column in parsed.columns:
        if not column.field:
            continue
        value = unescape_cell(_cell(cells, column.index)).strip()
        if column.field == "phone":
            value = value.lstrip("'")  # a number escaped as text by a spreadsheet or by our export
            data = {"phone": value}
        elif not value:
            continue  # an empty cell keeps an existing contact's value
        elif column.field == "custom":
            data = {"custom_fields": {column.header: value}}
        else:
            data = {column.field: value}
        try:
            checked = clean_contact(data, partial=True)
        except ApplicationError as error:
            name = column.header if column.field == "custom" else (error.field or column.field)
            errors.append({"field": name, "message": error.message})
            continue
        if column.field == "custom":
            custom.update(checked["custom_fields"])
        else:
            cleaned.update(checked)
    phone = cleaned.get("phone")
    if phone is not None:
        if phone in seen:
            errors.append({
                "field": "phone",
                "message": f"{phone} is already on row {seen[phone]} of this file; each number may be there once.",
            })  # fmt: skip
        else:
            seen[phone] = row
    if custom:
        cleaned["custom_fields"] = custom
    return RowPlan(row=row, values=values, cleaned=None if errors else cleaned, errors=errors)


def plan_rows(parsed: ParsedFile) -> list[RowPlan]:
    """Every row checked (``clean_contact`` per cell, each number once in the file), in file order."""
    seen: dict[str, int] = {}
    return [_check_row(parsed, row, cells, seen) for row, cells in parsed.records]


# --- upload and preview -----------------------------------------------------------------------


def _require(actor, organization) -> Principal:
    principal = as_principal(actor, organization)
    principal.require("product.use")
    return principal


@transaction.atomic
def contact_import_upload(*, organization, actor, file_name: str, raw: bytes) -> ContactImport:
    """Read and check a CSV of contacts and keep it, encrypted, until it is confirmed (or discarded)."""
    principal = _require(actor, organization)
    if len(raw) > max_import_bytes():
        raise ImportRefused(too_large_message(), code="file_too_large", status=413)
    name = (file_name or "contacts.csv").replace("\\", "/").rsplit("/", 1)[-1][:255] or "contacts.csv"
    if not name.lower().endswith((".csv", ".txt", ".tsv")):
        raise ImportRefused(
            f"“{name}” is not a CSV file. Choose a file ending in .csv. {_SAVE_AS}", code="not_csv", status=415
        )
    text = decode_upload(raw)
    parsed = parse_csv(text)
    plans = plan_rows(parsed)
    errors = [plan.as_error() for plan in plans if plan.errors]
    contact_import = ContactImport.objects.create(
        organization=organization,
        created_by=principal.user,
        file_name=name,
        content=text,
        total_rows=len(plans),
        row_errors=errors,
    )
    audit_record(
        action="contact_import.uploaded", organization=organization, actor=principal, resource=contact_import,
        metadata={"rows": len(plans), "rows_with_errors": len(errors), "columns": len(parsed.headers)},
    )  # fmt: skip
    return contact_import


@dataclass
class Preview:
    columns: list[Column]
    rows: list[dict]  # the first rows: {"row", "values" (in column order), "action": "create"/"update"/"", "errors"}
    total_rows: int
    error_rows: list[dict]
    valid_rows: int


def contact_import_preview(contact_import: ContactImport) -> Preview:
    """What the preview page shows: the columns' mapping, the first rows (and whether each creates or
    updates a contact), and every row's errors (as checked on upload)."""
    from messaging.selectors import contact_by_number

    parsed = parse_csv(contact_import.content)
    seen: dict[str, int] = {}
    rows = []
    for number, cells in parsed.records[:PREVIEW_ROWS]:
        plan = _check_row(parsed, number, cells, seen)
        action = ""
        if plan.cleaned is not None:
            found = contact_by_number(organization=contact_import.organization, number=plan.cleaned["phone"])
            action = "update" if found is not None else "create"
        rows.append({
            "row": plan.row,
            "values": [value for _header, value in plan.values],
            "action": action,
            "errors": plan.errors,
        })  # fmt: skip
    # Every row was checked on upload; its errors were kept then.
    error_rows = list(contact_import.row_errors or [])
    return Preview(
        columns=parsed.columns,
        rows=rows,
        total_rows=len(parsed.records),
        error_rows=error_rows,
        valid_rows=len(parsed.records) - len(error_rows),
    )


@transaction.atomic
def contact_import_discard(*, organization, actor, contact_import: ContactImport) -> None:
    """Drop an import that was not confirmed (or that failed), with its file."""
    principal = _require(actor, organization)
    contact_import = ContactImport.objects.for_org(organization).select_for_update().get(pk=contact_import.pk)
    if contact_import.status not in (ImportStatus.PREVIEW, ImportStatus.FAILED):
        raise ApplicationError(
            "This import has already run; its summary stays for your records.", code="import_started", status=409
        )
    audit_record(
        action="contact_import.discarded", organization=organization, actor=principal, resource=contact_import,
        metadata={"rows": contact_import.total_rows, "processed_rows": contact_import.processed_rows},
    )  # fmt: skip
    contact_import.delete()


# --- running ----------------------------------------------------------------------------------


def contact_import_confirm(*, organization, actor, contact_import: ContactImport) -> ContactImport:
    """Import the previewed file: at once up to MESSAGING_IMPORT_INLINE_ROWS rows, else in Celery.

    A failed import is queued again and resumes where it stopped.
    """
    principal = _require(actor, organization)
    with transaction.atomic():
        job = ContactImport.objects.for_org(organization).select_for_update().get(pk=contact_import.pk)
        if job.status not in (ImportStatus.PREVIEW, ImportStatus.FAILED):
            raise ApplicationError(
                "This import was already confirmed; its progress and summary are on this page.",
                code="import_started", status=409,
            )  # fmt: skip
        inline = job.status == ImportStatus.PREVIEW and job.total_rows <= int(settings.MESSAGING_IMPORT_INLINE_ROWS)
        job.status = ImportStatus.RUNNING if inline else ImportStatus.QUEUED
        job.failure = ""
        job.save(update_fields=["status", "failure"])
        if not inline:
            arguments = [str(organization.pk), str(job.pk)]
            transaction.on_commit(lambda: current_app.send_task(IMPORT_TASK, args=arguments))
    if inline:
        return contact_import_process(organization=organization, import_id=job.pk, actor=principal)
    return job


def _importer(job: ContactImport, organization) -> Principal:
    """Who an import run in Celery acts for: the member who uploaded it, or the platform once they have left."""
    from accounts.selectors import membership_for_user

    membership = membership_for_user(organization=organization, user=job.created_by) if job.created_by_id else None
    if membership is None:
        return Principal.system("contact-import", organization=organization)
    membership.organization = organization
    return Principal.member(membership, via="import")


def _batch_size(total: int) -> int:
    return max(BATCH_ROWS, math.ceil(total / MAX_BATCHES))


def _existing(organization, plans: list[RowPlan]) -> dict[str, Contact]:
    """The organization's contacts among the batch's numbers, by E.164 (one query, by blind index)."""
    index_field = Contact._meta.get_field("phone_index")
    by_candidate = {}
    for plan in plans:
        for candidate in index_field.candidates(plan.cleaned["phone"], organization_id=organization.id):
            by_candidate[candidate] = plan.cleaned["phone"]
    found = {}
    if by_candidate:
        for contact in Contact.objects.for_org(organization).filter(phone_index__in=list(by_candidate)):
            found[by_candidate[contact.phone_index]] = contact
    return found


def _apply(organization, plans: list[RowPlan]) -> tuple[int, int, list[dict]]:
    """Create or update the contacts of the valid rows; (created, updated, rows refused here)."""
    valid = [plan for plan in plans if plan.cleaned is not None]
    existing = _existing(organization, valid)
    now = timezone.now()
    new, updated, refused = [], 0, []
    for plan in valid:
        cleaned = dict(plan.cleaned)
        contact = existing.get(cleaned["phone"])
        if contact is None:
            new.append(Contact(organization=organization, created_at=now, updated_at=now, **cleaned))
            continue
        custom = cleaned.pop("custom_fields", None)
        if custom:
            merged = {**(contact.custom_fields or {}), **custom}
            if len(merged) > MAX_CUSTOM_FIELDS:
                refused.append({
                    "row": plan.row, "values": plan.values,
                    "errors": [{"field": "custom_fields", "message": f"This contact would have {len(merged)} custom "
                                f"fields; a contact may have at most {MAX_CUSTOM_FIELDS}."}],
                })  # fmt: skip
                continue
            cleaned["custom_fields"] = merged
        cleaned.pop("phone")  # the same number, maybe written another way: keep the stored form
        for name, value in cleaned.items():
            setattr(contact, name, value)
        contact.updated_at = now
        contact.save(update_fields=[*cleaned, "updated_at"])
        updated += 1
    if new:
        Contact.objects.bulk_create(new)
    return len(new), updated, refused


# Not confirmed yet, finished, or given up (until confirmed again): a task finding one does nothing.
_NOT_RUNNABLE = (ImportStatus.PREVIEW, ImportStatus.DONE, ImportStatus.FAILED)


def contact_import_process(
    *, organization, import_id, actor=None, seconds: float | None = None
) -> ContactImport | None:
    """Import the rows not imported yet, a batch per transaction, for at most ``seconds``.

    Safe to run again at any point (a retry, a redelivered task, two workers at once): each batch
    locks the import, starts at its ``processed_rows`` and saves the contacts with the new progress,
    so a row is imported once. Returns the import (RUNNING when time ran out before the last row),
    or None when it no longer exists.
    """
    deadline = None if seconds is None else time.monotonic() + seconds
    job = ContactImport.objects.for_org(organization).filter(pk=import_id).first()
    if job is None or job.status in _NOT_RUNNABLE:
        return job
    plans = plan_rows(parse_csv(job.content))
    size = _batch_size(len(plans))
    while True:
        for attempt in range(3):
            try:
                job, finished = _run_batch(organization, import_id, plans, size, actor)
                break
            except IntegrityError:
                # A contact with one of these numbers was created meanwhile (a text came in): the batch
                # was rolled back whole; take it again, updating that contact this time.
                if attempt == 2:
                    raise
        if job is None or finished:
            return job
        if deadline is not None and time.monotonic() >= deadline:
            return job


def _run_batch(organization, import_id, plans: list[RowPlan], size: int, actor):
    with transaction.atomic():
        job = ContactImport.objects.for_org(organization).select_for_update().filter(pk=import_id).first()
        if job is None or job.status in _NOT_RUNNABLE:
            return job, True
        start = job.processed_rows
        batch = plans[start : start + size]
        errors = [] if start == 0 else list(job.row_errors or [])
        if start == 0:
            job.created_count = job.updated_count = 0
        created, updated, refused = _apply(organization, batch)
        errors += [plan.as_error() for plan in batch if plan.errors]
        errors += refused
        errors.sort(key=lambda item: item["row"])
        job.row_errors = errors
        job.created_count += created
        job.updated_count += updated
        job.processed_rows = min(len(plans), start + len(batch))
        job.total_rows = len(plans)
        job.status = ImportStatus.RUNNING
        finished = job.processed_rows >= len(plans)
        if finished:
            job.status = ImportStatus.DONE
            job.finished_at = timezone.now()
            job.content = ""  # the file held numbers and notes: gone once imported
            audit_record(
                action="contact_import.completed", organization=organization,
                actor=actor or _importer(job, organization), resource=job,
                metadata={
                    "rows": job.total_rows, "created": job.created_count, "updated": job.updated_count,
                    "rows_with_errors": len(errors),
                },
            )  # fmt: skip
        job.save()
        return job, finished


@transaction.atomic
def contact_import_fail(*, organization, import_id, reason: str) -> ContactImport | None:
    """Give up on an import (its task failed for good): its file stays so that it can be tried again."""
    job = ContactImport.objects.for_org(organization).select_for_update().filter(pk=import_id).first()
    if job is None or job.status in (ImportStatus.DONE, ImportStatus.PREVIEW):
        return job
    job.status = ImportStatus.FAILED
    job.failure = reason[:500]
    job.save(update_fields=["status", "failure"])
    audit_record(
        action="contact_import.failed", organization=organization, actor=_importer(job, organization), resource=job,
        metadata={"rows": job.total_rows, "processed_rows": job.processed_rows, "created": job.created_count,
                  "updated": job.updated_count},
    )  # fmt: skip
    return job


def failed_rows_csv(contact_import: ContactImport) -> str:
    """The rows that were not imported, as written in the file, with an ``errors`` column saying why."""
    errors = contact_import.row_errors or []
    headers = []
    for item in errors:
        for header, _value in item.get("values", []):
            if header not in headers:
                headers.append(header)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow([csv_cell(h) for h in ["row", *headers, "errors"]])
    for item in errors:
        why = "; ".join(f"{e['field']}: {e['message']}" for e in item.get("errors", []))
        values = dict(item.get("values", []))
        writer.writerow([csv_cell(item["row"]), *(csv_cell(values.get(h, "")) for h in headers), csv_cell(why)])
    return "\ufeff" + buffer.getvalue()


# --- export -----------------------------------------------------------------------------------


def csv_cell(value) -> str:
    """A value made safe for a spreadsheet: text starting with ``=``, ``+``, ``-``, ``@``, a tab or a
    carriage return is prefixed with a single quote, so it is shown as text and never run as a formula.

    Phone numbers are escaped too: an E.164 number starts with ``+``, and a spreadsheet reads
    ``+14155550100`` as a formula (or turns it into a number and loses the ``+``); exported, it reads
    ``'+14155550100``. The import accepts a phone with that leading quote (``unescape_cell``), so an
    exported file imports back unchanged.
    """
    if value is None:
        return ""
    text = str(value)
    if text.startswith(FORMULA_START):
        return "'" + text
    return text


_EXPORT_BATCH = 500


def _custom_columns(organization) -> list[str]:
    names: dict[str, None] = {}
    for contact in Contact.objects.for_org(organization).only("id", "organization_id", "custom_fields").iterator(
        chunk_size=_EXPORT_BATCH
    ):
        for name in contact.custom_fields or {}:
            names.setdefault(name, None)
    return sorted(names, key=str.lower)


def _custom_header(name: str) -> str:
    """A custom field's column: its name, unless the import would read that name as a contact's own field."""
    return f"{name} (custom field)" if _normal(name) in _ALIASES else name


def _export_chunks(organization, custom: list[str]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    buffer.write("\ufeff")  # spreadsheet programs read the file as UTF-8 only with it
    writer.writerow([csv_cell(name) for name in (*EXPORT_COLUMNS, *(_custom_header(name) for name in custom))])
    contacts = Contact.objects.for_org(organization).order_by("name", "created_at", "id")
    for count, contact in enumerate(contacts.iterator(chunk_size=_EXPORT_BATCH), start=1):
        fields = contact.custom_fields or {}
        writer.writerow([
            csv_cell(contact.phone), csv_cell(contact.name), csv_cell(contact.time_zone), csv_cell(contact.notes),
            *(csv_cell(fields.get(name, "")) for name in custom),
        ])  # fmt: skip
        if count % _EXPORT_BATCH == 0:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


def contacts_export(*, organization, actor) -> Iterator[str]:
    """Record the export, then the CSV of every contact, produced a batch at a time as it is read."""
    principal = _require(actor, organization)
    count = Contact.objects.for_org(organization).count()
    custom = _custom_columns(organization)
    audit_record(
        action="contacts.exported", organization=organization, actor=principal,
        resource_type="contacts", resource_id=str(organization.pk),
        metadata={"contacts": count, "custom_columns": len(custom), "format": "csv"},
    )  # fmt: skip
    return _export_chunks(organization, custom)
