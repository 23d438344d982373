"""Reads over encrypted data: which models hold it, and which keys it still uses (counted, per source).

The sources of ciphertexts are: every encrypted field of every installed
model, every file of an encrypted file field, the sealed secrets the apps
registered (``registry.register_sealed_source``), and for the master key the
wrapped keysets. Rows are read through ``_base_manager``: these are system
reads across every organization.
"""

from __future__ import annotations

from collections import Counter, defaultdict

from django.apps import apps
from django.db import connection, models

from jagcall.kernel.crypto import registry
from jagcall.kernel.crypto.blind_index import BlindIndexField
from jagcall.kernel.crypto.fields import FORMAT, encrypted_fields
from jagcall.kernel.crypto.models import OrganizationKeyset, PlatformKeyset
from jagcall.kernel.crypto.sealed import is_bound, sealed_key_id
from jagcall.kernel.crypto.storage import EncryptedFileStorage

# organization id (text) -> key id -> Counter of "app.model.field" -> how many ciphertexts
Usage = dict[str, dict[int, Counter]]


def models_with_encrypted_fields() -> list[type[models.Model]]:
    return [m for m in apps.get_models() if encrypted_fields(m)]


def blind_index_fields(model) -> list[BlindIndexField]:
    return [f for f in model._meta.concrete_fields if isinstance(f, BlindIndexField)]


def encrypted_file_fields(model) -> list[models.FileField]:
    return [
        f for f in model._meta.concrete_fields
        if isinstance(f, models.FileField) and isinstance(f.storage, EncryptedFileStorage)
    ]


def models_with_encrypted_files() -> list[type[models.Model]]:
    return [m for m in apps.get_models() if encrypted_file_fields(m)]


def field_key_counts(*, organization_id=None) -> Usage:
    """How many stored field values each organization has under each AEAD key."""
    usage: Usage = defaultdict(lambda: defaultdict(Counter))
    start = len(FORMAT) + 2  # 1-based SQL offset of the 4-byte key id after Tink's version byte
    with connection.cursor() as cursor:
        for model in models_with_encrypted_fields():
            table = connection.ops.quote_name(model._meta.db_table)
            organization_column = connection.ops.quote_name(model._meta.get_field("organization").column)
            for field in encrypted_fields(model):
                column = connection.ops.quote_name(field.column)
                where, params = f"{column} IS NOT NULL", []
                if organization_id is not None:
                    where, params = f"{where} AND {organization_column} = %s", [str(organization_id)]
                cursor.execute(
                    f"SELECT {organization_column}::text, substring({column} from {start} for 4), count(*) "
                    f"FROM {table} WHERE {where} GROUP BY 1, 2",
                    params,
                )
                for org, key_id, count in cursor.fetchall():
                    usage[org][int.from_bytes(bytes(key_id), "big")][f"{model._meta.label_lower}.{field.name}"] += count
    return usage


def file_key_counts(*, organization_id=None) -> Usage:
    """How many stored files each organization has under each streaming key (reads each file's header)."""
    usage: Usage = defaultdict(lambda: defaultdict(Counter))
    for model in models_with_encrypted_files():
        for field in encrypted_file_fields(model):
            rows = model._base_manager.exclude(**{field.attname: ""}).exclude(**{f"{field.attname}__isnull": True})
            if organization_id is not None:
                rows = rows.filter(organization_id=organization_id)
            for org, name in rows.values_list("organization_id", field.attname).iterator():
                key_id = field.storage.key_id(name)
                usage[str(org)][key_id][f"{model._meta.label_lower}.{field.name}"] += 1
    return usage


def field_key_usage() -> dict[str, set[int]]:
    """organization id -> AEAD key ids that some stored field value was encrypted under."""
    return {org: set(counts) for org, counts in field_key_counts().items()}


def file_key_usage() -> dict[str, set[int]]:
    """organization id -> streaming key ids that some stored file was encrypted under."""
    return {org: set(counts) for org, counts in file_key_counts().items()}


def sealed_key_counts() -> dict[int, Counter]:
    """Platform-keyset key id -> Counter of source name -> how many sealed values use it."""
    usage: dict[int, Counter] = defaultdict(Counter)
    for source in registry.SEALED_SOURCES.values():
        for obj in source.iterate():
            for value in source.values(obj):
                key_id = sealed_key_id(value)
                if key_id is not None:
                    usage[key_id][source.name] += 1
    return usage


def sealed_key_usage() -> set[int]:
    """Platform-keyset key ids that sealed secrets registered by the apps still use."""
    return set(sealed_key_counts())


def sealed_unbound_count() -> int:
    """Sealed values still in the old format that is not bound to its owner (``reencrypt`` reseals them)."""
    return sum(
        1
        for source in registry.SEALED_SOURCES.values()
        for obj in source.iterate()
        for value in source.values(obj)
        if not is_bound(value)
    )


def master_key_counts() -> Counter:
    """Master key id -> how many keysets (organization and platform) it wraps."""
    counts: Counter = Counter()
    for key_id in OrganizationKeyset.objects.filter(destroyed_at__isnull=True, master_key_id__isnull=False).values_list(
        "master_key_id", flat=True
    ):
        counts[key_id] += 1
    for key_id in PlatformKeyset.objects.filter(master_key_id__isnull=False).values_list("master_key_id", flat=True):
        counts[key_id] += 1
    return counts


def master_key_usage() -> set[int]:
    return set(master_key_counts())
