"""Retiring keys without losing data.

[!!] A key leaves its keyset only when both hold:
- nothing still uses it: no encrypted field value, file or sealed secret
  (for the master key: no wrapped keyset), counted through the selectors at
  the moment of retiring, inside the transaction that removes it;
- it stopped being primary longer ago than the grace period
  (``keys.retirement_grace()``, longer than any key cache): until then a
  process that cached the old keys may still be encrypting under it, so a
  count of zero is not final.

Otherwise the retirement is refused with KeyRetirementRefused, whose
message says what still uses the key and when retiring becomes possible.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone

import tink
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from jagcall.kernel.crypto import keys, registry, selectors
from jagcall.kernel.crypto.errors import KeyRetirementRefused, KeysetDestroyed
from jagcall.kernel.crypto.models import OrganizationKeyset, PlatformKeyset


def _when(moment: datetime) -> str:
    return moment.astimezone(dt_timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _describe(counts: Counter, noun: str) -> str:
    return ", ".join(f"{n} {noun}{'s' if n != 1 else ''} of {what}" for what, n in sorted(counts.items()))


def _check_grace(what: str, stopped_at, now) -> None:
    ready = keys.retirable_from(stopped_at)
    if now < ready:
        raise KeyRetirementRefused(
            f"{what} stopped being primary at {_when(stopped_at)}; a process may still hold it as primary in its "
            f"key cache (JAGCALL_KEY_CACHE_SECONDS={settings.JAGCALL_KEY_CACHE_SECONDS}). Retiring becomes possible at "
            f"{_when(ready)}, in {int((ready - now).total_seconds()) + 1} s."
        )


def _check_unused(what: str, in_use: list[str]) -> None:
    if in_use:
        raise KeyRetirementRefused(f"{what}: {'; '.join(in_use)}. Run `manage.py reencrypt`, then retire again.")


def _check_not_primary(what: str, key_ids: set[int], primary: int) -> None:
    if primary in key_ids:
        raise KeyRetirementRefused(f"{what}: key {primary} is the primary key; rotate first (`manage.py rotate_keys`).")


# --- organization keysets ------------------------------------------------------------------


@transaction.atomic
def organization_keys_retire(
    *, organization_id, aead_key_ids: set[int], streaming_key_ids: set[int], now: datetime | None = None
) -> OrganizationKeyset:
    """Remove keys from an organization's keysets, or raise KeyRetirementRefused saying why not yet."""
    now = now or timezone.now()
    row = OrganizationKeyset.objects.select_for_update().get(organization_id=organization_id)
    if row.destroyed_at is not None:
        raise KeysetDestroyed(f"The keys of organization {organization_id} were destroyed.")
    label = registry.tenant_labels([organization_id])[str(organization_id)]
    what = f"organization {label}"
    handles = {
        "aead": keys.unwrap(row.aead_keyset, organization_id, "aead"),
        "streaming": keys.unwrap(row.streaming_keyset, organization_id, "streaming"),
    }
    _check_not_primary(f"{what} field keys", set(aead_key_ids), keys.primary_key_id(handles["aead"]))
    _check_not_primary(f"{what} file keys", set(streaming_key_ids), keys.primary_key_id(handles["streaming"]))
    if not aead_key_ids and not streaming_key_ids:
        return row
    _check_grace(f"{what}: keys {sorted(set(aead_key_ids) | set(streaming_key_ids))}", row.rotated_at or row.created_at, now)
    fields = selectors.field_key_counts(organization_id=organization_id).get(str(organization_id), {})
    files = selectors.file_key_counts(organization_id=organization_id).get(str(organization_id), {})
    in_use = [f"field key {k} still encrypts {_describe(fields[k], 'value')}" for k in sorted(aead_key_ids) if fields.get(k)]
    in_use += [f"file key {k} still encrypts {_describe(files[k], 'file')}" for k in sorted(streaming_key_ids) if files.get(k)]
    _check_unused(what, in_use)
    for kind, column, ids in (("aead", "aead_keyset", aead_key_ids), ("streaming", "streaming_keyset", streaming_key_ids)):
        if ids:
            setattr(row, column, keys.wrap(keys.remove_keys(handles[kind], set(ids)), organization_id, kind))
    row.save(update_fields=["aead_keyset", "streaming_keyset"])
    keys.evict(organization_id)
    transaction.on_commit(lambda: keys.evict(organization_id))
    return row


# --- platform keysets ---------------------------------------------------------------------------


@transaction.atomic
def platform_keys_retire(*, name: str, key_ids: set[int], now: datetime | None = None) -> PlatformKeyset:
    now = now or timezone.now()
    row = PlatformKeyset.objects.select_for_update().get(name=name)
    handle = keys.unwrap_platform(row.aead_keyset, name)
    what = f"platform keyset {name!r}"
    _check_not_primary(what, set(key_ids), keys.primary_key_id(handle))
    if not key_ids:
        return row
    _check_grace(f"{what}: keys {sorted(key_ids)}", row.rotated_at or row.created_at, now)
    counts = selectors.sealed_key_counts()
    _check_unused(what, [f"key {k} still seals {_describe(counts[k], 'secret')}" for k in sorted(key_ids) if counts.get(k)])
    row.aead_keyset = keys.wrap_platform(keys.remove_keys(handle, set(key_ids)), name)
    row.save(update_fields=["aead_keyset"])
    keys.evict_platform(name)
    transaction.on_commit(lambda: keys.evict_platform(name))
    return row


# --- the master keyset ------------------------------------------------------------------------


def master_keys_retire(*, key_ids: set[int], now: datetime | None = None) -> tink.KeysetHandle:
    """The master keyset without ``key_ids`` (the caller writes or prints it), or KeyRetirementRefused."""
    now = now or timezone.now()
    handle = keys.master.handle
    if handle is None:
        raise KeyRetirementRefused("The master key lives in a KMS: retire its old versions there.")
    _check_not_primary("the master keyset", set(key_ids), keys.master.primary_key_id)
    _check_grace(f"master keys {sorted(key_ids)}", keys.master.changed_at(), now)
    counts = selectors.master_key_counts()
    _check_unused(
        "the master keyset",
        [f"key {k} still wraps {counts[k]} keyset{'s' if counts[k] != 1 else ''} (run `manage.py rotate_keys --rewrap`)"
         for k in sorted(key_ids) if counts.get(k)],
    )
    return keys.remove_keys(handle, set(key_ids))


# --- everything that nothing uses --------------------------------------------------------------


@dataclass
class RetirementReport:
    retired: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    master_handle: tink.KeysetHandle | None = None  # a master keyset without retired keys, to write or deploy


def _old(ids, primary) -> set[int]:
    return set(ids) - {primary}


def keys_retire_unused(*, now: datetime | None = None) -> RetirementReport:
    """Retire every non-primary key that nothing uses; report the others with the reason they stay."""
    now = now or timezone.now()
    report = RetirementReport()

    def attempt(retire, success: str | None) -> bool:
        try:
            retire()
        except KeyRetirementRefused as refusal:
            report.refused.append(str(refusal))
            return False
        if success:
            report.retired.append(success)
        return True

    rows = list(OrganizationKeyset.objects.filter(destroyed_at__isnull=True).order_by("created_at"))
    labels = registry.tenant_labels([row.organization_id for row in rows])
    fields, files = selectors.field_key_counts(), selectors.file_key_counts()
    for row in rows:
        org, org_id = str(row.organization_id), row.organization_id
        org_keys = keys.organization_keys(org_id)
        old_aead = _old(org_keys.aead_key_ids, org_keys.aead_primary_id)
        old_files = _old(org_keys.streaming_key_ids, org_keys.streaming_primary_id)
        if not old_aead and not old_files:
            continue
        what = f"organization {labels[org]}: keys {sorted(old_aead | old_files)}"
        if not attempt(lambda: _check_grace(what, row.rotated_at or row.created_at, now), None):
            continue
        used_aead = {k for k in old_aead if fields.get(org, {}).get(k)}
        used_files = {k for k in old_files if files.get(org, {}).get(k)}
        if used_aead or used_files:  # refused, with what still uses them
            attempt(lambda: organization_keys_retire(
                organization_id=org_id, aead_key_ids=used_aead, streaming_key_ids=used_files, now=now), None)
        unused_aead, unused_files = old_aead - used_aead, old_files - used_files
        if unused_aead or unused_files:
            attempt(
                lambda: organization_keys_retire(
                    organization_id=org_id, aead_key_ids=unused_aead, streaming_key_ids=unused_files, now=now),
                f"organization {labels[org]}: field keys {sorted(unused_aead)}, file keys {sorted(unused_files)}",
            )

    sealed_in_use = selectors.sealed_key_counts()
    for row in PlatformKeyset.objects.order_by("name"):
        platform = keys.platform_keys(row.name)
        old = _old(platform.key_ids, platform.primary_id)
        if not old or not attempt(lambda: _check_grace(
                f"platform keyset {row.name!r}: keys {sorted(old)}", row.rotated_at or row.created_at, now), None):
            continue
        used = {k for k in old if sealed_in_use.get(k)}
        if used:
            attempt(lambda: platform_keys_retire(name=row.name, key_ids=used, now=now), None)
        if old - used:
            attempt(lambda: platform_keys_retire(name=row.name, key_ids=old - used, now=now),
                    f"platform keyset {row.name!r}: keys {sorted(old - used)}")

    if keys.master.handle is not None:
        old = _old(keys.key_ids(keys.master.handle), keys.master.primary_key_id)
        if old and attempt(lambda: _check_grace(f"master keys {sorted(old)}", keys.master.changed_at(), now), None):
            master_in_use = selectors.master_key_counts()
            used = {k for k in old if master_in_use.get(k)}
            if used:
                attempt(lambda: master_keys_retire(key_ids=used, now=now) and None, None)
            if old - used:

                def retire_master():
                    report.master_handle = master_keys_retire(key_ids=old - used, now=now)

                attempt(retire_master, f"master keys {sorted(old - used)}")
    return report
