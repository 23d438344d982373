"""Rewrite every encrypted value and file under the current primary keys.

Resumable: progress is checkpointed per model after each batch
(ReencryptionCheckpoint), so an interrupted run continues where it stopped.
Verifying: each rewritten row is read back, decrypted and compared, and
must now carry the primary key's id; each rewritten file is re-read and its
SHA-256 compared with the original plaintext. Sealed secrets registered by
the apps are resealed under the primary key and bound to their owner.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from django.core.files import File
from django.db import transaction
from django.utils import timezone

from jagcall.kernel.crypto import registry, sealed
from jagcall.kernel.crypto.blind_index import current_version
from jagcall.kernel.crypto.errors import KeysetDestroyed
from jagcall.kernel.crypto.fields import ciphertext_key_id, encrypted_fields
from jagcall.kernel.crypto.keys import organization_keys
from jagcall.kernel.crypto.models import ReencryptionCheckpoint
from jagcall.kernel.crypto.selectors import (
    blind_index_fields,
    encrypted_file_fields,
    models_with_encrypted_fields,
    models_with_encrypted_files,
)


class VerificationError(Exception):
    pass


@dataclass
class Progress:
    target: str
    done: int
    total: int
    rewritten: int


def _needs_rewrite(instance, fields, indexes) -> bool:
    try:
        primary = organization_keys(instance.organization_id).aead_primary_id
    except KeysetDestroyed:
        return False  # shredded: nothing can or should be rewritten
    for field in fields:
        raw = instance.__dict__.get(field.attname)
        if raw is not None and ciphertext_key_id(raw) != primary:
            return True
    version = current_version()
    return any(
        getattr(instance, index.attname) and not getattr(instance, index.attname).startswith(f"{version}$")
        for index in indexes
    )


def _rewrite_row(model, pk, fields, indexes) -> None:
    instance = model._base_manager.select_for_update().get(pk=pk)
    plaintexts = {field.attname: getattr(instance, field.attname) for field in fields}
    instance.save(update_fields=[f.name for f in fields] + [i.name for i in indexes])
    stored = model._base_manager.get(pk=pk)
    primary = organization_keys(stored.organization_id).aead_primary_id
    for field in fields:
        raw = stored.__dict__.get(field.attname)
        if raw is not None and ciphertext_key_id(raw) != primary:
            raise VerificationError(f"{model._meta.label} {pk}: {field.name} is not under the primary key after rewrite")
        if getattr(stored, field.attname) != plaintexts[field.attname]:
            raise VerificationError(f"{model._meta.label} {pk}: {field.name} reads back differently")


def _checkpoint(target: str, restart: bool) -> ReencryptionCheckpoint:
    checkpoint, created = ReencryptionCheckpoint.objects.get_or_create(target=target)
    if restart or (not created and checkpoint.finished_at is not None):
        checkpoint.last_pk, checkpoint.done, checkpoint.rewritten = "", 0, 0
        checkpoint.started_at, checkpoint.finished_at = timezone.now(), None
        checkpoint.save()
    return checkpoint


def _run_in_batches(model, target, *, rewrite, batch_size, restart, max_batches, report) -> ReencryptionCheckpoint:
    """Walk ``model`` by primary key in batches, one transaction and one checkpoint per batch.

    ``rewrite(instance)`` returns how many values it rewrote. Stopping (for
    ``max_batches`` or an interruption) leaves the checkpoint where the next
    run resumes.
    """
    checkpoint = _checkpoint(target, restart)
    manager = model._base_manager  # a system job over every organization
    total = manager.count()
    batches = 0
    while max_batches is None or batches < max_batches:
        rows = manager.order_by("pk")
        if checkpoint.last_pk:
            rows = rows.filter(pk__gt=checkpoint.last_pk)
        batch = list(rows[:batch_size])
        if not batch:
            checkpoint.finished_at = timezone.now()
            checkpoint.save(update_fields=["finished_at", "updated_at"])
            break
        with transaction.atomic():
            for instance in batch:
                checkpoint.rewritten += rewrite(instance)
            checkpoint.last_pk = str(batch[-1].pk)
            checkpoint.done += len(batch)
            checkpoint.save(update_fields=["last_pk", "done", "rewritten", "updated_at"])
        batches += 1
        report(Progress(target, min(checkpoint.done, total), total, checkpoint.rewritten))
    return checkpoint


def reencrypt_fields(
    model, *, batch_size: int = 500, restart: bool = False, max_batches: int | None = None,
    report: Callable[[Progress], None] = lambda p: None,
) -> ReencryptionCheckpoint:
    fields, indexes = encrypted_fields(model), blind_index_fields(model)

    def rewrite(instance) -> int:
        if not _needs_rewrite(instance, fields, indexes):
            return 0
        _rewrite_row(model, instance.pk, fields, indexes)
        return 1

    return _run_in_batches(
        model, model._meta.label_lower, rewrite=rewrite, batch_size=batch_size, restart=restart,
        max_batches=max_batches, report=report,
    )


def _copy_hash(source, sink=None) -> str:
    digest = hashlib.sha256()
    for chunk in iter(lambda: source.read(1024 * 1024), b""):
        digest.update(chunk)
        if sink is not None:
            sink.write(chunk)
    return digest.hexdigest()


def _rewrite_file(instance, field) -> None:
    storage = field.storage
    old_name = getattr(instance, field.attname).name
    folder = os.path.dirname(old_name)
    new_name = f"{folder}/{uuid.uuid4().hex}{os.path.splitext(old_name)[1]}"
    organization_id = instance.organization_id  # [!!] from the row, never from the file's name

    with tempfile.TemporaryFile() as plain:
        with storage.open_for(organization_id=organization_id, name=old_name) as source:
            expected = _copy_hash(source, plain)
        plain.seek(0)
        storage.save_for(organization_id=organization_id, name=new_name, content=File(plain, name=os.path.basename(new_name)))
    with storage.open_for(organization_id=organization_id, name=new_name) as check:
        if _copy_hash(check) != expected:
            storage.delete(new_name)
            raise VerificationError(f"{new_name} reads back differently")
    primary = organization_keys(instance.organization_id).streaming_primary_id
    if storage.key_id(new_name) != primary:
        raise VerificationError(f"{new_name} is not under the primary streaming key")
    type(instance)._base_manager.filter(pk=instance.pk).update(**{field.attname: new_name})
    transaction.on_commit(lambda: storage.delete(old_name))


def reencrypt_files(
    model, *, batch_size: int = 100, restart: bool = False, max_batches: int | None = None,
    report: Callable[[Progress], None] = lambda p: None,
) -> ReencryptionCheckpoint:
    fields = encrypted_file_fields(model)

    def rewrite(instance) -> int:
        try:
            primary = organization_keys(instance.organization_id).streaming_primary_id
        except KeysetDestroyed:
            return 0  # shredded: nothing can or should be rewritten
        count = 0
        for field in fields:
            name = getattr(instance, field.attname).name
            if name and field.storage.key_id(name) != primary:
                _rewrite_file(instance, field)
                count += 1
        return count

    return _run_in_batches(
        model, f"{model._meta.label_lower}:files", rewrite=rewrite, batch_size=batch_size, restart=restart,
        max_batches=max_batches, report=report,
    )


def reencrypt_sealed(*, report=lambda p: None) -> ReencryptionCheckpoint:
    """Sealed secrets kept by libraries (TOTP secrets, recovery-code seeds): few rows, one pass.

    A value is resealed when it is under an older key or still in the old
    format that is not bound to its owner.
    """
    checkpoint = _checkpoint("sealed-secrets", restart=True)
    primary = sealed.primary_key_id()

    def stale(obj) -> bool:
        return any(sealed.sealed_key_id(v) != primary or not sealed.is_bound(v) for v in source.values(obj))

    for source in registry.SEALED_SOURCES.values():
        for obj in list(source.iterate()):
            if stale(obj):
                with transaction.atomic():
                    source.reseal(obj)
                primary = sealed.primary_key_id()  # the first seal ever creates the keyset
                if stale(obj):
                    raise VerificationError(f"sealed secret of {obj!r} is not bound and under the primary key after rewrite")
                checkpoint.rewritten += 1
            checkpoint.done += 1
        report(Progress("sealed-secrets", checkpoint.done, checkpoint.done, checkpoint.rewritten))
    checkpoint.finished_at = timezone.now()
    checkpoint.save()
    return checkpoint


def reencrypt_all(*, batch_size: int = 500, restart: bool = False, max_batches: int | None = None, report=lambda p: None):
    results = [reencrypt_sealed(report=report)]
    for model in models_with_encrypted_fields():
        results.append(reencrypt_fields(model, batch_size=batch_size, restart=restart, max_batches=max_batches, report=report))
    for model in models_with_encrypted_files():
        results.append(reencrypt_files(model, batch_size=max(1, batch_size // 5), restart=restart, max_batches=max_batches, report=report))
    return results
