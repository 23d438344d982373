"""Writes on keys: create, rotate, re-wrap, retire, destroy (crypto-shredding)."""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from jagcall.kernel.crypto import keys
from jagcall.kernel.crypto.models import OrganizationKeyset


def organization_keys_create(*, organization_id) -> OrganizationKeyset:
    """Give an organization its data keysets (idempotent; safe under concurrent callers)."""
    existing = OrganizationKeyset.objects.filter(organization_id=organization_id).first()
    if existing is not None:
        return existing
    row = OrganizationKeyset(
        organization_id=organization_id,
        aead_keyset=keys.wrap(keys.new_handle("aead"), organization_id, "aead"),
        streaming_keyset=keys.wrap(keys.new_handle("streaming"), organization_id, "streaming"),
        master_key_id=keys.master.primary_key_id,
    )
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        return OrganizationKeyset.objects.get(organization_id=organization_id)
    return row


@transaction.atomic
def organization_keys_rotate(*, organization_id) -> OrganizationKeyset:
    """Add a new primary key to both keysets; older keys stay until retired."""
    row = OrganizationKeyset.objects.select_for_update().get(organization_id=organization_id)
    if row.destroyed_at:
        raise keys.KeysetDestroyed(f"The keys of organization {organization_id} were destroyed.")
    for kind, column in (("aead", "aead_keyset"), ("streaming", "streaming_keyset")):
        handle = keys.add_primary_key(keys.unwrap(getattr(row, column), organization_id, kind), kind)
        setattr(row, column, keys.wrap(handle, organization_id, kind))
    row.master_key_id = keys.master.primary_key_id
    row.rotated_at = timezone.now()
    row.save(update_fields=["aead_keyset", "streaming_keyset", "master_key_id", "rotated_at"])
    transaction.on_commit(lambda: keys.evict(organization_id))
    keys.evict(organization_id)
    return row


@transaction.atomic
def organization_keys_retire(*, organization_id, aead_key_ids: set[int], streaming_key_ids: set[int]) -> OrganizationKeyset:
    """Remove keys from an organization's keysets. Callers check nothing still uses them."""
    row = OrganizationKeyset.objects.select_for_update().get(organization_id=organization_id)
    for kind, column, ids in (("aead", "aead_keyset", aead_key_ids), ("streaming", "streaming_keyset", streaming_key_ids)):
        if ids:
            handle = keys.remove_keys(keys.unwrap(getattr(row, column), organization_id, kind), ids)
            setattr(row, column, keys.wrap(handle, organization_id, kind))
    row.save(update_fields=["aead_keyset", "streaming_keyset"])
    keys.evict(organization_id)
    return row


def organization_keys_rewrap_all(*, batch_size: int = 200) -> int:
    """Wrap every organization's keysets under the current master primary key."""
    count = 0
    primary = keys.master.primary_key_id
    pending = OrganizationKeyset.objects.filter(destroyed_at__isnull=True)
    if primary is not None:
        pending = pending.exclude(master_key_id=primary)
    ids = list(pending.values_list("organization_id", flat=True))
    for start in range(0, len(ids), batch_size):
        with transaction.atomic():
            for row in OrganizationKeyset.objects.select_for_update().filter(organization_id__in=ids[start : start + batch_size]):
                for kind, column in (("aead", "aead_keyset"), ("streaming", "streaming_keyset")):
                    handle = keys.unwrap(getattr(row, column), row.organization_id, kind)
                    setattr(row, column, keys.wrap(handle, row.organization_id, kind))
                row.master_key_id = primary
                row.save(update_fields=["aead_keyset", "streaming_keyset", "master_key_id"])
                count += 1
    from jagcall.kernel.crypto.sealed import platform_keys_rewrap

    count += platform_keys_rewrap()
    keys.evict()
    return count


@transaction.atomic
def organization_keys_destroy(*, organization_id) -> OrganizationKeyset:
    """Crypto-shred an organization: destroy its wrapped keysets.

    [!!] Irreversible. Every field and file encrypted for the organization,
    including copies in database backups and object-storage versions, can no
    longer be decrypted by anyone. The retention purge calls this.
    """
    row = OrganizationKeyset.objects.select_for_update().filter(organization_id=organization_id).first()
    if row is None:
        row = OrganizationKeyset(organization_id=organization_id)
    row.aead_keyset = None
    row.streaming_keyset = None
    row.destroyed_at = timezone.now()
    row.save()
    keys.evict(organization_id)
    transaction.on_commit(lambda: keys.evict(organization_id))
    return row
