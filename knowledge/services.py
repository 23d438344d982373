"""Knowledge bases and their documents: create, upload, process, delete.

Upload rules (one place, used by the portal, the API and the back office):

- at most ``KNOWLEDGE_MAX_UPLOAD_BYTES`` (20 MB): exactly that passes, one
  byte more is refused (413). The web process refuses a larger body before
  reading it (``upload_limit_handler`` here, the front door's body limit in
  jagcall/kernel/serving.py, and nginx's ``client_max_body_size``);
- PDF or UTF-8 (or declared-charset) text and Markdown, decided by the
  bytes, never by the name or the declared type (415 otherwise);
- the same content twice in one knowledge base is reported, not stored
  (409, naming the document that holds it);
- the organization's stored documents stay within its plan's quota (413).

Processing (``document_process``, run by knowledge.tasks on the embeddings
queue): extract page by page in a child process, chunk, embed locally,
then, in one transaction, replace the document's chunks and mark it ready.
[!!] A document is never half visible: its chunks appear together with the
"ready" status, and a worker killed on the way leaves it "processing" with
no chunk, to be delivered again (acks late) or picked up by the sweeper.
"""

from __future__ import annotations

import codecs
import hashlib
import logging
import os
import re
import uuid
from dataclasses import dataclass

from django.conf import settings
from django.core.files.uploadhandler import FileUploadHandler
from django.db import IntegrityError, transaction
from django.db.models import Sum
from django.utils import timezone

from accounts.entitlements import limit_refusal, plan_limit
from accounts.events import publish_org_event
from accounts.models import Organization
from accounts.principals import Principal, as_principal
from compliance.services import audit_changes, audit_record, audit_snapshot
from jagcall.kernel.crypto.blind_index import blind_index, blind_index_candidates
from jagcall.kernel.errors import ApplicationError
from knowledge.models import Chunk, Document, DocumentKind, DocumentStatus, KnowledgeBase
from knowledge.processing import chunking, embeddings, extraction, sniffing
from knowledge.scope import organization_scope
from knowledge.search_terms import index_terms

logger = logging.getLogger("jagcall.knowledge")

MAX_NAME = 120
MAX_DESCRIPTION = 2000
MAX_DOCUMENT_NAME = 255
CONTENT_PURPOSE = "knowledge.document.content"
# How many chunks are embedded between two progress notices.
PROGRESS_BATCH = 16
# A document is tried this many times (a worker killed, a timeout) before it is marked failed.
MAX_ATTEMPTS = 3


def max_upload_bytes() -> int:
    return int(settings.KNOWLEDGE_MAX_UPLOAD_BYTES)


def _megabytes(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MB".replace(".0 MB", " MB")


def too_large_message(size: int | None = None) -> str:
    limit = _megabytes(max_upload_bytes())
    if size is None:
        return f"This file is larger than {limit}, the most a document may be. Split it into smaller files."
    return f"This file is {_megabytes(size)}; a document may be at most {limit}. Split it into smaller files."


# --- knowledge bases --------------------------------------------------------------------


def _require(organization, actor) -> Principal:
    principal = as_principal(actor, organization)
    principal.require("product.use")
    return principal


def _clean_base(organization, *, name, description, knowledge_base=None) -> tuple[str, str]:
    errors: dict[str, str] = {}
    name = name.strip() if isinstance(name, str) else ""
    description = description.strip() if isinstance(description, str) else ""
    if not name:
        errors["name"] = "Give the knowledge base a name, e.g. “Patient handbook”."
    elif len(name) > MAX_NAME:
        errors["name"] = f"The name may be at most {MAX_NAME} characters; it has {len(name)}."
    elif "\x00" in name:
        errors["name"] = "The name contains a NUL character; remove it."
    else:
        clash = KnowledgeBase.objects.for_org(organization).filter(name__iexact=name)
        if knowledge_base is not None:
            clash = clash.exclude(pk=knowledge_base.pk)
        if clash.exists():
            errors["name"] = f"Another knowledge base is already called “{name}”; choose another name."
    if len(description) > MAX_DESCRIPTION:
        errors["description"] = f"The description may be at most {MAX_DESCRIPTION} characters; it has {len(description)}."
    elif "\x00" in description:
        errors["description"] = "The description contains a NUL character; remove it."
    if errors:
        field = next(iter(errors))
        raise ApplicationError(errors[field], code="invalid", field=field)
    return name, description


def knowledge_base_create(*, organization, actor, name: str, description: str = "") -> KnowledgeBase:
    principal = _require(organization, actor)
    name, description = _clean_base(organization, name=name, description=description)
    try:
        with transaction.atomic():
            knowledge_base = KnowledgeBase.objects.create(organization=organization, name=name, description=description)
            audit_record(
                action="knowledge.base_created",
                organization=organization,
                actor=principal,
                resource=knowledge_base,
                changes=audit_changes(None, knowledge_base, fields=("name", "description")),
            )
    except IntegrityError:
        raise ApplicationError(
            f"Another knowledge base is already called “{name}”; choose another name.", field="name"
        ) from None
    return knowledge_base


def knowledge_base_update(*, organization, actor, knowledge_base: KnowledgeBase, name=None, description=None):
    principal = _require(organization, actor)
    with transaction.atomic():
        knowledge_base = KnowledgeBase.objects.for_org(organization).select_for_update().get(pk=knowledge_base.pk)
        name, description = _clean_base(
            organization,
            name=knowledge_base.name if name is None else name,
            description=knowledge_base.description if description is None else description,
            knowledge_base=knowledge_base,
        )
        before = audit_snapshot(knowledge_base)
        knowledge_base.name, knowledge_base.description = name, description
        changes = audit_changes(before, knowledge_base, fields=("name", "description"))
        if changes:
            try:
                with transaction.atomic():
                    knowledge_base.save(update_fields=["name", "description", "updated_at"])
            except IntegrityError:
                raise ApplicationError(
                    f"Another knowledge base is already called “{name}”; choose another name.", field="name"
                ) from None
            audit_record(
                action="knowledge.base_updated",
                organization=organization,
                actor=principal,
                resource=knowledge_base,
                changes=changes,
            )
    return knowledge_base


def knowledge_base_delete(*, organization, actor, knowledge_base: KnowledgeBase) -> None:
    """Delete a knowledge base, its documents, their files and chunks; agents stop answering from it."""
    principal = _require(organization, actor)
    with transaction.atomic():
        knowledge_base = KnowledgeBase.objects.for_org(organization).select_for_update().get(pk=knowledge_base.pk)
        files = list(
            Document.objects.for_org(organization).filter(knowledge_base=knowledge_base).values_list("file", flat=True)
        )
        documents = len(files)
        base_id, name = knowledge_base.pk, knowledge_base.name
        knowledge_base.delete()  # documents by Django, chunks by the database (ON DELETE CASCADE)
        audit_record(
            action="knowledge.base_deleted",
            organization=organization,
            actor=principal,
            resource_type="knowledgebase",
            resource_id=str(base_id),
            metadata={"name": name, "documents": documents},
        )
        transaction.on_commit(lambda: _delete_files(organization.pk, files))


def _delete_files(organization_id, names) -> None:
    from jagcall.kernel.crypto.storage import EncryptedFileStorage

    storage = Document._meta.get_field("file").storage
    assert isinstance(storage, EncryptedFileStorage)
    for name in names:
        if not name:
            continue
        try:
            storage.delete(name)
        except OSError:
            logger.exception("could not delete the file of a deleted document (%s)", name)


# --- uploads ----------------------------------------------------------------------------


class UploadTooLarge(ApplicationError):
    def __init__(self, size: int | None = None):
        super().__init__(too_large_message(size), code="file_too_large", field="file", status=413)


class UnsupportedFile(ApplicationError):
    def __init__(self, message: str):
        super().__init__(message, code="unsupported_file", field="file", status=415)


class DuplicateDocument(ApplicationError):
    def __init__(self, existing: Document):
        super().__init__(
            f"This file is already in this knowledge base, as “{existing.name}”. It was not added again.",
            code="duplicate_document",
            field="file",
            status=409,
        )
        self.existing = existing


class QuotaExceeded(ApplicationError):
    def __init__(self, *, organization, used: int, size: int):
        # The plan's sentence names the plan that stores more.
        plan = limit_refusal(organization, "knowledge_storage_bytes", used=used, adding=size) or ""
        shown = _megabytes(size) if size >= 1024 * 1024 else f"{max(1, round(size / 1024))} KB"
        super().__init__(
            f"{plan} This file is {shown}: delete documents you no longer need to make room.".strip(),
            code="storage_quota_exceeded",
            field="file",
            status=413,
        )


class UploadLimitHandler(FileUploadHandler):
    """First of a request's upload handlers: stops reading an upload at the first byte over the limit.

    [!!] It raises UploadTooLarge from inside the multipart parser, so the
    rest of the file is never read into memory or written to disk; the view
    answers 413.
    """

    def __init__(self, request=None, *, limit: int | None = None):
        super().__init__(request)
        self.limit = max_upload_bytes() if limit is None else limit
        self.received = 0

    def new_file(self, *args, **kwargs):
        self.received = 0
        super().new_file(*args, **kwargs)

    def receive_data_chunk(self, raw_data, start):
        self.received += len(raw_data)
        if self.received > self.limit:
            raise UploadTooLarge()
        return raw_data

    def file_complete(self, file_size):
        return None


def limit_uploads(request) -> None:
    """Call before reading ``request.FILES`` / ``request.POST``: a declared body far over the limit is refused
    at once, and a file is cut off at the first byte over it."""
    declared = request.META.get("CONTENT_LENGTH")
    if declared and declared.isdigit() and int(declared) > max_upload_bytes() + settings.KNOWLEDGE_UPLOAD_OVERHEAD_BYTES:
        raise UploadTooLarge()
    request.upload_handlers.insert(0, UploadLimitHandler(request))


@dataclass(frozen=True)
class _Inspected:
    kind: str
    size: int
    digest: str


def _read_chunks(content):
    if isinstance(content, (bytes, bytearray)):
        for start in range(0, len(content), 1024 * 1024):
            yield bytes(content[start : start + 1024 * 1024])
        return
    if hasattr(content, "seek"):
        content.seek(0)
    if hasattr(content, "chunks"):
        yield from content.chunks()
        return
    while True:
        block = content.read(1024 * 1024)
        if not block:
            return
        yield block


def _inspect(content, *, charset: str | None) -> _Inspected:
    """Size, hash and kind of an upload, read once in blocks; UploadTooLarge / UnsupportedFile when refused."""
    limit = max_upload_bytes()
    hasher = hashlib.sha256()
    size = 0
    head = b""
    for block in _read_chunks(content):
        size += len(block)
        if size > limit:
            raise UploadTooLarge(getattr(content, "size", None) if not isinstance(content, bytes) else len(content))
        hasher.update(block)
        if len(head) < 1024 * 1024:
            head += block[: 1024 * 1024 - len(head)]
    if size == 0:
        raise UnsupportedFile("The file is empty.")
    sniffed = sniffing.sniff(head)
    if sniffed.kind == sniffing.PDF:
        return _Inspected(DocumentKind.PDF, size, hasher.hexdigest())
    if sniffed.kind == sniffing.REFUSED and not (charset and "UTF-8" in sniffed.reason):
        raise UnsupportedFile(sniffed.reason)
    # Text: the whole file must decode (as UTF-8, or as its declared character set).
    encoding = "utf-8-sig"
    if charset:
        try:
            encoding = codecs.lookup(charset).name
        except LookupError:
            raise UnsupportedFile(f"The declared character set {charset!r} is unknown; save the file as UTF-8.") from None
    decoder = codecs.getincrementaldecoder(encoding)()
    try:
        for block in _read_chunks(content):
            text = decoder.decode(block)
            if "\x00" in text:
                raise UnsupportedFile("This is a binary file. Upload a PDF, or a text or Markdown file.")
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        named = charset or "UTF-8"
        raise UnsupportedFile(f"This file is neither a PDF nor valid {named} text. Save text files as UTF-8.") from None
    if sniffed.kind == sniffing.REFUSED:  # not UTF-8 but valid in its declared charset: check it is not markup
        decoded = sniffing.sniff(head.decode(encoding, "replace").encode("utf-8"))
        if decoded.kind == sniffing.REFUSED:
            raise UnsupportedFile(decoded.reason)
    return _Inspected(DocumentKind.TEXT, size, hasher.hexdigest())


_UNSAFE_NAME = re.compile(r"[\x00-\x1f\x7f/\\]+")


def _clean_document_name(name: str) -> str:
    name = os.path.basename(str(name or "").replace("\\", "/"))
    name = _UNSAFE_NAME.sub(" ", name).strip()
    if not name:
        return "Untitled document"
    if len(name) > MAX_DOCUMENT_NAME:
        stem, extension = os.path.splitext(name)
        name = stem[: MAX_DOCUMENT_NAME - len(extension[:10])] + extension[:10]
    return name


def storage_used(organization) -> int:
    total = Document.objects.for_org(organization).aggregate(total=Sum("size_bytes"))["total"]
    return int(total or 0)


def storage_quota(organization) -> int:
    return int(plan_limit(organization, "knowledge_storage_bytes"))


def document_add(
    *, organization, actor, knowledge_base: KnowledgeBase, name: str, content, charset: str | None = None
) -> Document:
    """Store an uploaded file (encrypted) as a document to process; queued on commit.

    ``content``: bytes, an UploadedFile or a binary file object.
    Raises UploadTooLarge (413), UnsupportedFile (415), DuplicateDocument (409) or QuotaExceeded (413).
    """
    principal = _require(organization, actor)
    if knowledge_base.organization_id != organization.pk:
        raise ApplicationError("No such knowledge base.", code="not_found", status=404)
    charset = (charset or "").strip().lower() or None
    if charset in ("utf-8", "utf8", "us-ascii", "ascii"):
        charset = None
    inspected = _inspect(content, charset=charset)
    name = _clean_document_name(name)
    content_hash = blind_index(inspected.digest, purpose=CONTENT_PURPOSE, organization_id=organization.pk)
    candidates = blind_index_candidates(inspected.digest, purpose=CONTENT_PURPOSE, organization_id=organization.pk)

    from django.core.files.base import ContentFile, File

    with transaction.atomic():
        # One upload at a time per organization decides the quota (and the duplicate check) on what is stored.
        Organization.objects.select_for_update().filter(pk=organization.pk).first()
        existing = (
            Document.objects.for_org(organization)
            .filter(knowledge_base=knowledge_base, content_hash__in=candidates)
            .first()
        )
        if existing is not None:
            raise DuplicateDocument(existing)
        used, limit = storage_used(organization), storage_quota(organization)
        if used + inspected.size > limit:
            raise QuotaExceeded(organization=organization, used=used, size=inspected.size)
        document = Document(
            organization=organization,
            knowledge_base=knowledge_base,
            name=name,
            kind=inspected.kind,
            charset=charset or "",
            size_bytes=inspected.size,
            content_hash=content_hash,
            uploaded_by=principal.user if principal.kind == "member" else None,
        )
        extension = ".pdf" if inspected.kind == DocumentKind.PDF else ".txt"
        if isinstance(content, (bytes, bytearray)):
            upload = ContentFile(bytes(content))
        else:
            if hasattr(content, "seek"):
                content.seek(0)
            upload = content if hasattr(content, "chunks") else File(content)
        document.file.save(f"document{extension}", upload, save=False)
        try:
            with transaction.atomic():
                document.save()
            audit_record(
                action="knowledge.document_added",
                organization=organization,
                actor=principal,
                resource=document,
                metadata={
                    "name": name,
                    "knowledge_base": str(knowledge_base.pk),
                    "size_bytes": inspected.size,
                    "kind": inspected.kind,
                },
            )
        except BaseException:
            _delete_files(organization.pk, [document.file.name])
            raise
        _enqueue(document)
    publish_org_event(organization.pk, "knowledge.document", document_payload(document))
    return document


PROCESS_TASK = "knowledge.tasks.document_process_task"


def _enqueue(document: Document) -> None:
    """Queue the document's processing once the transaction commits (the task is routed to "embeddings")."""
    from celery import current_app

    arguments = [str(document.organization_id), str(document.pk)]
    transaction.on_commit(lambda: current_app.send_task(PROCESS_TASK, args=arguments))


def document_reprocess(*, organization, actor, document: Document) -> Document:
    """Process a document again from its stored file (after a failure, or to rebuild its chunks)."""
    principal = _require(organization, actor)
    with transaction.atomic():
        document = Document.objects.for_org(organization).select_for_update().get(pk=document.pk)
        if document.status in (DocumentStatus.QUEUED, DocumentStatus.PROCESSING):
            raise ApplicationError(
                f"“{document.name}” is already being processed; wait for it to finish.", code="busy", status=409
            )
        document.status = DocumentStatus.QUEUED
        document.error_code = document.error_message = ""
        document.pages_done = document.chunks_done = 0
        document.attempts = 0
        document.save(
            update_fields=["status", "error_code", "error_message", "pages_done", "chunks_done", "attempts", "updated_at"]
        )
        audit_record(
            action="knowledge.document_reprocessed", organization=organization, actor=principal, resource=document
        )
        _enqueue(document)
    publish_org_event(organization.pk, "knowledge.document", document_payload(document))
    return document


def document_delete(*, organization, actor, document: Document) -> None:
    """Delete a document, its stored file and its chunks."""
    principal = _require(organization, actor)
    with transaction.atomic():
        document = Document.objects.for_org(organization).select_for_update().get(pk=document.pk)
        file_name, document_id, name = document.file.name, document.pk, document.name
        knowledge_base_id = document.knowledge_base_id
        document.delete()  # chunks go with it (ON DELETE CASCADE)
        _recount(organization, knowledge_base_id)
        audit_record(
            action="knowledge.document_deleted",
            organization=organization,
            actor=principal,
            resource_type="document",
            resource_id=str(document_id),
            metadata={"name": name, "knowledge_base": str(knowledge_base_id)},
        )
        transaction.on_commit(lambda: _delete_files(organization.pk, [file_name]))
    publish_org_event(
        organization.pk, "knowledge.document", {"id": str(document_id), "status": "deleted", "name": name}
    )


def _recount(organization, knowledge_base_id) -> None:
    total = (
        Document.objects.for_org(organization)
        .filter(knowledge_base_id=knowledge_base_id, status=DocumentStatus.READY)
        .aggregate(total=Sum("chunks_total"))["total"]
    )
    KnowledgeBase.objects.for_org(organization).filter(pk=knowledge_base_id).update(chunk_count=int(total or 0))


# --- processing -------------------------------------------------------------------------


def document_payload(document: Document) -> dict:
    """What the portal's live view and the API show of a document's state."""
    return {
        "id": str(document.pk),
        "knowledge_base": str(document.knowledge_base_id),
        "name": document.name,
        "status": document.status,
        "status_label": document.get_status_display(),
        "error_code": document.error_code,
        "error_message": document.error_message,
        "pages_total": document.pages_total,
        "pages_done": document.pages_done,
        "chunks_total": document.chunks_total,
        "chunks_done": document.chunks_done,
        "progress": document.progress_percent,
    }


def _progress(document: Document, **values) -> None:
    for name, value in values.items():
        setattr(document, name, value)
    Document.objects.for_org(document.organization_id).filter(pk=document.pk).update(**values, updated_at=timezone.now())
    publish_org_event(document.organization_id, "knowledge.document", document_payload(document))


def document_fail(document: Document, code: str, message: str) -> None:
    """Mark the document failed with a reason fit to show; a failed document has no chunk to find."""
    with organization_scope(document.organization_id):
        now = timezone.now()
        updated = (
            Document.objects.for_org(document.organization_id)
            .filter(pk=document.pk)
            .update(
                status=DocumentStatus.FAILED,
                error_code=code[:20],
                error_message=message[:300],
                processed_at=now,
                updated_at=now,
            )
        )
        if updated:
            Chunk.objects.for_org(document.organization_id).filter(document_id=document.pk).delete()
            _recount(document.organization_id, document.knowledge_base_id)
            document.status, document.error_code, document.error_message = DocumentStatus.FAILED, code, message
            publish_org_event(document.organization_id, "knowledge.document", document_payload(document))


def _pages_of(document: Document) -> list[tuple[int, str]]:
    with document.file.open("rb") as handle:
        data = handle.read()
    if document.kind == DocumentKind.PDF:
        return extraction.extract_pdf(data, timeout=float(settings.KNOWLEDGE_PDF_TIMEOUT_SECONDS))
    return extraction.extract_text(data, charset=document.charset or None)


def document_process(document: Document) -> str:
    """Extract, chunk, embed and store one document; returns its final status.

    Safe to run again on the same document (a redelivered task, a
    reprocess): its chunks are replaced, never added twice.
    """
    organization_id = document.organization_id
    with transaction.atomic():
        document = Document.objects.for_org(organization_id).select_for_update().filter(pk=document.pk).first()
        if document is None:
            return "gone"
        if document.attempts >= MAX_ATTEMPTS and document.status != DocumentStatus.READY:
            document.status = DocumentStatus.FAILED
            document.error_code = "gave_up"
            document.error_message = (
                f"Processing stopped {document.attempts} times before it could finish. Try again, or split the file."
            )
            document.save(update_fields=["status", "error_code", "error_message", "updated_at"])
            publish_org_event(organization_id, "knowledge.document", document_payload(document))
            return document.status
        document.status = DocumentStatus.PROCESSING
        document.attempts += 1
        document.error_code = document.error_message = ""
        document.pages_total = document.pages_done = document.chunks_total = document.chunks_done = 0
        document.processing_started_at = timezone.now()
        document.save()
        publish_org_event(organization_id, "knowledge.document", document_payload(document))

    try:
        pages = _pages_of(document)
    except extraction.ExtractionError as error:
        logger.info("document %s not indexed: %s", document.pk, error)
        document_fail(document, error.code, error.message)
        return DocumentStatus.FAILED
    _progress(document, pages_total=len(pages), pages_done=len(pages))

    embedder = embeddings.get_embedder()
    pieces = chunking.chunk_pages(pages, count_tokens=embedder.count_tokens)
    if not pieces:
        document_fail(document, "no_text", extraction.MESSAGES["no_text"])
        return DocumentStatus.FAILED
    _progress(document, chunks_total=len(pieces))
    texts = [piece.text for piece in pieces]
    vectors = []
    for start in range(0, len(texts), PROGRESS_BATCH):
        vectors.extend(embedder.embed(texts[start : start + PROGRESS_BATCH]))
        _progress(document, chunks_done=min(len(texts), start + PROGRESS_BATCH))
    terms = index_terms(texts, organization_id=organization_id)

    rows = [
        Chunk(
            id=uuid.uuid4(),
            organization_id=organization_id,
            knowledge_base_id=document.knowledge_base_id,
            document_id=document.pk,
            ordinal=piece.ordinal,
            page_start=piece.page_start,
            page_end=piece.page_end,
            text=piece.text,
            embedding=vector,
            search_terms=term,
        )
        for piece, vector, term in zip(pieces, vectors, terms, strict=True)
    ]
    with organization_scope(organization_id):
        locked = Document.objects.for_org(organization_id).select_for_update().filter(pk=document.pk).first()
        if locked is None:  # deleted while it was being processed
            return "gone"
        Chunk.objects.for_org(organization_id).filter(document_id=document.pk).delete()
        Chunk.objects.bulk_create(rows, batch_size=500)
        now = timezone.now()
        Document.objects.for_org(organization_id).filter(pk=document.pk).update(
            status=DocumentStatus.READY, chunks_done=len(rows), processed_at=now, updated_at=now
        )
        _recount(organization_id, document.knowledge_base_id)
        document.status, document.chunks_done = DocumentStatus.READY, len(rows)
        publish_org_event(organization_id, "knowledge.document", document_payload(document))
    return DocumentStatus.READY


def documents_requeue_stalled() -> int:
    """Queue again documents whose processing stopped (its worker killed); returns how many.

    A running document's row changes at every batch of chunks, and no task
    outlives KNOWLEDGE_TASK_TIME_LIMIT: one unchanged for longer is no
    longer being processed. Queued documents are left alone: they wait their
    turn in the queue, however long it is.
    """
    late = timezone.now() - timezone.timedelta(seconds=int(settings.KNOWLEDGE_TASK_TIME_LIMIT) + 60)
    stalled = Document.objects.unscoped("sweeper: documents of every organization that stopped processing").filter(
        status=DocumentStatus.PROCESSING, updated_at__lt=late
    )
    count = 0
    for document in stalled.only("pk", "organization_id"):
        with transaction.atomic():
            touched = (
                Document.objects.for_org(document.organization_id)
                .filter(pk=document.pk, status=DocumentStatus.PROCESSING, updated_at__lt=late)
                .update(status=DocumentStatus.QUEUED, updated_at=timezone.now())
            )
            if touched:
                _enqueue(document)
                count += 1
    return count
