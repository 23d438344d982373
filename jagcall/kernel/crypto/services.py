"""Writes on keys: create (at set-up or at the first write), rotate, re-wrap, destroy (crypto-shredding).

Retiring keys lives in ``retirement``: it must count the ciphertexts that
still use a key, which needs the selectors over every encrypted field, file
and sealed secret; this module stays below them so that fields, files and
sealed secrets can call it when they write.
"""

from __future__ import annotations

from django.db import IntegrityError, transaction
from django.utils import timezone

from jagcall.kernel.crypto import keys
from jagcall.kernel.crypto.errors import KeysetDestroyed, KeysetMissing
from jagcall.kernel.crypto.models import OrganizationKeyset, PlatformKeyset

# --- organization keysets ---------------------------------------------------------------


def organization_keys_create(*, organization_id) -> OrganizationKeyset:
    """Give an organization its data keysets (idempotent; safe under concurrent callers).

    Called when the organization is created, and by the first write of an
    encrypted value or file for an organization that has none yet.
    """
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


def organization_keys_for_write(organization_id) -> keys.OrganizationKeys:
    """The organization's keys for encrypting, created first if it has none (KeysetDestroyed once shredded)."""
    try:
        return keys.organization_keys(organization_id)
    except KeysetMissing:
        organization_keys_create(organization_id=organization_id)
        return keys.organization_keys(organization_id)


@transaction.atomic
def organization_keys_rotate(*, organization_id) -> OrganizationKeyset:
    """Add a new primary key to both keysets; older keys stay for decryption until retired."""
    row = OrganizationKeyset.objects.select_for_update().get(organization_id=organization_id)
    if row.destroyed_at:
        raise KeysetDestroyed(f"The keys of organization {organization_id} were destroyed.")
    for kind, column in (("aead", "aead_keyset"), ("streaming", "streaming_keyset")):
        handle = keys.add_primary_key(keys.unwrap(getattr(row, column), organization_id, kind), kind)
        setattr(row, column, keys.wrap(handle, organization_id, kind))
    row.master_key_id = keys.master.primary_key_id
    row.rotated_at = timezone.now()  # [!!] the retirement grace period counts from here
    row.save(update_fields=["aead_keyset", "streaming_keyset", "master_key_id", "rotated_at"])
    transaction.on_commit(lambda: keys.evict(organization_id))
    keys.evict(organization_id)
    return row


def organization_keys_rewrap_all(*, batch_size: int = 200) -> int:
    """Wrap every organization's and platform keyset under the current master primary key."""
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
    count += platform_keys_rewrap()
    keys.evict()
    return count


@transaction.atomic
def organization_keys_destroy(*, organization_id) -> OrganizationKeyset:
    """Crypto-shred an organization: destroy its wrapped keysets.

    [!!] Irreversible. Every field and file encrypted for the organization,
    including copies in database backups and object-storage versions, can no
    longer be decrypted by anyone. Deleting a registered tenant calls this
    (``registry.register_tenant_model``); the row stays, so a later write for
    the same id is refused instead of getting fresh keys.
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


# --- platform keysets ---------------------------------------------------------------------


def platform_keys_create(*, name: str) -> PlatformKeyset:
    """Create a platform keyset (idempotent; safe under concurrent callers)."""
    existing = PlatformKeyset.objects.filter(name=name).first()
    if existing is not None:
        return existing
    row = PlatformKeyset(
        name=name,
        aead_keyset=keys.wrap_platform(keys.new_handle("aead"), name),
        master_key_id=keys.master.primary_key_id,
    )
    try:
        with transaction.atomic():
            row.save(force_insert=True)
    except IntegrityError:
        return PlatformKeyset.objects.get(name=name)
    return row


def platform_keys_for_write(name: str) -> keys.PlatformKeys:
    try:
        return keys.platform_keys(name)
    except KeysetMissing:
        platform_keys_create(name=name)
        return keys.platform_keys(name)


@transaction.atomic
def platform_keys_rotate(*, name: str) -> PlatformKeyset:
    platform_keys_create(name=name)
    row = PlatformKeyset.objects.select_for_update().get(name=name)
    handle = keys.add_primary_key(keys.unwrap_platform(row.aead_keyset, name), "aead")
    row.aead_keyset = keys.wrap_platform(handle, name)
    row.master_key_id = keys.master.primary_key_id
    row.rotated_at = timezone.now()  # [!!] the retirement grace period counts from here
    row.save(update_fields=["aead_keyset", "master_key_id", "rotated_at"])
    transaction.on_commit(lambda: keys.evict_platform(name))
    keys.evict_platform(name)
    return row


def platform_keys_rewrap() -> int:
    count = 0
    with transaction.atomic():
        for row in PlatformKeyset.objects.select_for_update():
            row.aead_keyset = keys.wrap_platform(keys.unwrap_platform(row.aead_keyset, row.name), row.name)
            row.master_key_id = keys.master.primary_key_id
            row.save(update_fields=["aead_keyset", "master_key_id"])
            count += 1
    keys.evict_platform()
    return count
